"""The inventory scenario times each pass right after its own bare fetch (after the set-up),
and compares each pass with the fetches paired with it."""

from __future__ import annotations

from bench.scenarios import inventory


def test_each_pass_is_timed_right_after_its_own_bare_fetch():
    calls: list[str] = []
    passes, baselines = inventory.paired_samples(
        lambda: calls.append("sync"),
        lambda: calls.append("fetch"),
        3,
        before=lambda: calls.append("before"),
        warmup=1,
    )
    assert calls == ["before", "fetch", "sync"] * 4
    assert len(passes) == len(baselines) == 3


def test_a_changed_answer_is_fetched_once_untimed_before_the_timed_pair(monkeypatch):
    calls: list[str] = []
    clock = iter(range(1000))
    monkeypatch.setattr(inventory, "timed", lambda fn: (fn(), next(clock))[1])
    passes, baselines = inventory.paired_samples(
        lambda: calls.append("sync"),
        lambda: calls.append("fetch"),
        2,
        before=lambda: calls.append("move"),
        prime=True,
        warmup=1,
    )
    assert calls == ["move", "fetch", "fetch", "sync"] * 3
    # the warm-up pair (0, 1) is dropped; each pass keeps the fetch timed just before it
    assert baselines == (2, 4)
    assert passes == (3, 5)

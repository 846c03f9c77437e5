"""vlm.ui.memo: a page's answers are reused until a write, per actor, per extra key."""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd
import pytest

from vlm.domain import Actor, Role
from vlm.ui import memo

MIA = Actor("mia", Role.MANAGER)
ANA = Actor("ana", Role.ANALYST)


@pytest.fixture
def session(monkeypatch) -> dict:
    state: dict = {}
    monkeypatch.setattr(memo.st, "session_state", state)
    return state


def page_of(actor: Actor, db: SimpleNamespace) -> SimpleNamespace:
    return SimpleNamespace(actor=actor, ctx=SimpleNamespace(db=db))


def counter():
    calls: list[int] = []

    def compute() -> int:
        calls.append(1)
        return len(calls)

    return calls, compute


def test_a_rerun_without_a_write_reuses_the_answer_and_a_write_recomputes_it(session):
    db = SimpleNamespace(generation=7)
    calls, compute = counter()
    page = page_of(MIA, db)
    assert memo.per_generation(page, "kpis", compute) == 1
    assert memo.per_generation(page, "kpis", compute) == 1
    assert len(calls) == 1
    db.generation = 8
    assert memo.per_generation(page, "kpis", compute) == 2
    assert memo.per_generation(page, "kpis", compute) == 2


def test_answers_are_kept_apart_by_actor_name_and_extra_key(session):
    db = SimpleNamespace(generation=1)
    calls, compute = counter()
    assert memo.per_generation(page_of(MIA, db), "kpis", compute) == 1
    assert memo.per_generation(page_of(ANA, db), "kpis", compute) == 2
    assert memo.per_generation(page_of(MIA, db), "trend", compute) == 3
    assert memo.per_generation(page_of(MIA, db), "trend", compute, 7) == 4
    assert memo.per_generation(page_of(MIA, db), "trend", compute, 30) == 5
    assert memo.per_generation(page_of(MIA, db), "trend", compute, 7) == 4
    assert memo.per_generation(page_of(MIA, db), "kpis", compute) == 1


def test_a_write_drops_every_older_answer_and_the_memo_stays_bounded(session):
    db = SimpleNamespace(generation=1)
    page = page_of(MIA, db)
    for n in range(memo.MAX_ENTRIES + 10):
        memo.per_generation(page, "trend", lambda n=n: n, n)
    assert len(session[memo.MEMO_KEY]) == memo.MAX_ENTRIES
    db.generation = 2
    memo.per_generation(page, "kpis", lambda: 0)
    assert list(session[memo.MEMO_KEY]) == [("kpis", MIA)]


def memo_names() -> list[tuple[str, str]]:
    """(file, name) of every per_generation / remembered call in the app's pages and UI."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    found = []
    for path in [*root.glob("pages/*.py"), *root.glob("vlm/ui/**/*.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            called = getattr(node.func, "id", getattr(node.func, "attr", ""))
            if called not in ("per_generation", "_trend_memo", "remembered"):
                continue
            name = node.args[1] if len(node.args) > 1 else None
            if isinstance(name, ast.Tuple):
                name = name.elts[0]
            text = ast.unparse(name) if name is not None else ""
            found.append((str(path.relative_to(root)), text))
    return found


def test_every_memo_name_is_used_at_one_call_site():
    """One session's memo is shared by every page: two call sites under one name (and actor)
    would hand one page the other's answer."""
    names = [name for _, name in memo_names() if name not in ("name", "key")]
    assert len(names) >= 20
    assert sorted(n for n in set(names) if names.count(n) > 1) == []


def test_what_is_derived_from_a_frame_is_kept_for_that_very_object(session):
    frame, twin = pd.DataFrame({"a": [1]}), pd.DataFrame({"a": [1]})
    calls, compute = counter()
    assert memo.per_frame(frame, "shown", compute) == 1
    assert memo.per_frame(frame, "shown", compute) == 1
    assert memo.per_frame(frame, "other", compute) == 2
    assert memo.per_frame(twin, "shown", compute) == 3  # an equal frame is another object
    assert memo.per_frame(frame, "shown", compute) == 1
    assert len(calls) == 3


def test_the_frame_memo_keeps_its_frames_and_only_the_most_recent(session):
    frames = [pd.DataFrame({"a": [n]}) for n in range(memo.MAX_FRAMES + 3)]
    for n, frame in enumerate(frames):
        memo.per_frame(frame, "shown", lambda n=n: n)
    kept = session[memo.FRAMES_KEY]
    assert len(kept) == memo.MAX_FRAMES
    assert [entry[0] for entry in kept.values()] == frames[3:]
    assert memo.per_frame(frames[3], "shown", lambda: -1) == 3  # used again: the most recent
    assert list(kept.values())[-1][0] is frames[3]

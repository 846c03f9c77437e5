"""vlm.ui.memo: a page's answers are reused until a write, per actor, per extra key."""

from __future__ import annotations

from types import SimpleNamespace

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

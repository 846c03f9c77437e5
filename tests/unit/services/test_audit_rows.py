"""What services.audit stores with each row for a pool's trend: the pool it concerns and, for an
allocation, its change of count."""

from __future__ import annotations

from tests.conftest import ADMIN
from vlm.services import audit


def _stored(ctx) -> list[tuple[str, str, str, int | None]]:
    return ctx.db.query("SELECT action, target_type, target_id, pool_id FROM audit_log ORDER BY id")


def test_a_row_stores_the_pool_it_concerns(ctx) -> None:
    ctx.db.write(
        lambda cur: [
            audit.record(cur, ADMIN, "pool.update", "pool", 6, {"name": "a"}, {"name": "b"}),
            audit.record(cur, ADMIN, "pool.update", "pool", "x6", None, {"name": "b"}),
            audit.record(cur, ADMIN, "vlm.update", "vlm", 2, {"pool_id": 4}, None),
            audit.record(cur, ADMIN, "user.add", "user", "bob", None, {"pool_id": True}),
        ]
    )
    assert _stored(ctx) == [
        ("pool.update", "pool", "6", 6),
        ("pool.update", "pool", "x6", None),
        ("vlm.update", "vlm", "2", 4),
        ("user.add", "user", "bob", None),
    ]


def test_many_rows_store_the_pool_their_after_or_else_before_names(ctx) -> None:
    rows = [
        ("allocation.add", "allocation", 1, None, {"pool_id": 3, "count": 2}),
        ("allocation.remove", "allocation", 2, {"pool_id": 5, "count": 1}, None),
        ("allocation.edit", "allocation", 3, {"pool_id": 5}, {"pool_id": 7}),
        ("allocation.edit", "allocation", 4, {"pool_id": 5}, {"count": 1}),
        ("allocation.edit", "allocation", 5, None, {"pool_id": "8"}),
        ("server.add", "server", "lls-1", None, "text"),
    ]
    ctx.db.write(lambda cur: audit.record_many(cur, ADMIN, rows))
    assert [row[3] for row in _stored(ctx)] == [3, 5, 7, None, None, None]
    ctx.db.write(lambda cur: audit.record_many(cur, ADMIN, rows[-1:]))
    assert [row[3] for row in _stored(ctx)][-1] is None


def test_an_allocation_row_stores_its_change_of_count(ctx) -> None:
    rows = [
        ("allocation.add", "allocation", 1, None, {"pool_id": 3, "count": 2}),
        ("allocation.edit", "allocation", 1, {"count": 2}, {"count": 5}),
        ("allocation.retry", "allocation", 1, {"count": 5}, {"count": 5}),
        ("allocation.remove", "allocation", 1, {"count": 5}, None),
        ("allocation.edit", "allocation", 2, {"count": "2"}, {"count": True}),
        ("pool.update", "pool", 3, {"count": 1}, {"count": 4}),
    ]
    ctx.db.write(lambda cur: audit.record_many(cur, ADMIN, rows))
    changes = ctx.db.query("SELECT count_change FROM audit_log ORDER BY id")
    assert [row[0] for row in changes] == [2, 3, 0, -5, 0, None]

"""Permissions that depend on changing data are re-checked inside the write (issue #7 item 8).

A manager's allocation, an admin's pool creation: each passes its early check, then another
admin's change (a pool handover, a disabling, a demotion) commits before its write runs. The
write must then be refused, because the inside check reads the pool's manager, the role and
the disabled flag as stored when the write runs. The window tests open that gap for certain
(the change commits while the victim waits for the write lock, after its early check passed);
the race test runs 200 unsteered races and checks the audit order of each.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest

from tests.conftest import ADMIN, ANALYST, MANAGER, OTHER_MANAGER
from tests.unit.services.estate import add_people, add_server, feature_ids
from vlm.context import ServiceContext
from vlm.domain import Actor, PermissionDenied, Role, VlmError
from vlm.services import allocations, permissions, pools, users, vlms

CAD = ("cad", "1.0")
RACES = 200
WAIT_SECONDS = 30  # a bound for a hung thread, never a timing assertion


@pytest.fixture
def pool(ctx: ServiceContext) -> tuple[ServiceContext, int, int]:
    """bob's pool of 300 cad on a server of 1000; returns (ctx, vlm id, pool id)."""
    add_people(ctx)
    add_server(ctx, "east", {CAD: 1000})
    vlm_id = vlms.create_vlm(ctx, ADMIN, "eng", feature_ids(ctx))
    pool_id = pools.create_pool(ctx, ADMIN, vlm_id, "team", MANAGER.username, {CAD: 300})
    return ctx, vlm_id, pool_id


def in_window(
    ctx: ServiceContext,
    monkeypatch: pytest.MonkeyPatch,
    early_check: tuple[ModuleType, str],
    victim: Callable[[], Any],
    change: Callable[[], None],
) -> dict[str, Any]:
    """Run victim in a thread; once its early check has passed, commit change before its write.

    The change runs inside a write this thread holds, so the victim, already past its early
    check, waits for the write lock until the change has committed. Returns the victim's
    {"value": …} or {"error": …}.
    """
    module, name = early_check
    original = getattr(module, name)
    passed = threading.Event()
    victim_thread: list[threading.Thread] = []

    def spy(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        if threading.current_thread() in victim_thread:
            passed.set()
        return result

    monkeypatch.setattr(module, name, spy)
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = victim()
        except VlmError as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    victim_thread.append(thread)

    def hold(cur) -> None:
        thread.start()
        assert passed.wait(WAIT_SECONDS), "the victim never passed its early check"
        change()  # nested: commits with this transaction, before the victim's write

    ctx.db.write(hold)
    thread.join(WAIT_SECONDS)
    assert not thread.is_alive()
    monkeypatch.setattr(module, name, original)
    return outcome


def allocations_of(ctx: ServiceContext, pool_id: int, username: str) -> list[str]:
    return [
        r[0]
        for r in ctx.db.query(
            "SELECT host_id FROM allocations WHERE pool_id = ? AND created_by = ? ORDER BY id",
            [pool_id, username],
        )
    ]


def test_an_allocation_after_the_pool_was_handed_over_is_refused(pool, monkeypatch):
    ctx, _, pool_id = pool
    outcome = in_window(
        ctx,
        monkeypatch,
        (allocations, "require_pool_write"),
        lambda: allocations.allocate(ctx, MANAGER, pool_id, CAD, "USER", "late", 1),
        lambda: pools.update_pool(ctx, ADMIN, pool_id, manager=OTHER_MANAGER.username),
    )
    assert isinstance(outcome.get("error"), PermissionDenied)
    assert outcome["error"].message == f"pool {pool_id} is managed by someone else"
    assert allocations_of(ctx, pool_id, MANAGER.username) == []
    # the new manager may allocate at once
    allocations.allocate(ctx, OTHER_MANAGER, pool_id, CAD, "USER", "carols", 1)
    assert allocations_of(ctx, pool_id, OTHER_MANAGER.username) == ["carols"]


def test_a_manager_disabled_while_allocating_is_refused(pool, monkeypatch):
    ctx, _, pool_id = pool
    outcome = in_window(
        ctx,
        monkeypatch,
        (allocations, "require_pool_write"),
        lambda: allocations.allocate(ctx, MANAGER, pool_id, CAD, "USER", "late", 1),
        lambda: users.set_disabled(ctx, ADMIN, MANAGER.username, True),
    )
    assert isinstance(outcome.get("error"), PermissionDenied)
    assert outcome["error"].message == "user 'bob' is disabled"
    assert allocations_of(ctx, pool_id, MANAGER.username) == []


def test_edits_retries_and_removals_are_rechecked_too(pool, monkeypatch):
    ctx, _, pool_id = pool
    allocation_id = allocations.allocate(ctx, MANAGER, pool_id, CAD, "USER", "kept", 1)
    ctx.db.write(
        lambda cur: cur.execute(
            "UPDATE allocations SET state = 'failed', last_error = 'refused' WHERE id = ?",
            [allocation_id],
        )
    )
    victims = {
        "edit": lambda: allocations.update_allocation(
            ctx, MANAGER, pool_id, allocation_id, count=5
        ),
        "retry": lambda: allocations.retry_allocation(ctx, MANAGER, pool_id, allocation_id),
        "remove": lambda: allocations.remove_allocation(ctx, MANAGER, pool_id, allocation_id),
    }
    for name, victim in victims.items():
        outcome = in_window(
            ctx,
            monkeypatch,
            (allocations, "require_pool_write"),
            victim,
            lambda: pools.update_pool(ctx, ADMIN, pool_id, manager=OTHER_MANAGER.username),
        )
        assert isinstance(outcome.get("error"), PermissionDenied), name
        pools.update_pool(ctx, ADMIN, pool_id, manager=MANAGER.username)
    row = ctx.db.query("SELECT count, state FROM allocations WHERE id = ?", [allocation_id])
    assert row == [(1, "failed")]


def test_an_admin_demoted_while_creating_a_pool_is_refused(pool, monkeypatch):
    ctx, vlm_id, _ = pool
    users.add_user(ctx, ADMIN, "erin", "admin", password="password-123")
    erin = Actor("erin", Role.ADMIN)  # as signed in, before the demotion
    outcome = in_window(
        ctx,
        monkeypatch,
        (pools, "require_admin"),
        lambda: pools.create_pool(ctx, erin, vlm_id, "late", MANAGER.username, {CAD: 5}),
        lambda: users.change_role(ctx, ADMIN, "erin", Role.ANALYST),
    )
    assert isinstance(outcome.get("error"), PermissionDenied)
    assert outcome["error"].message == "erin (analyst) is not an admin"
    assert ctx.db.scalar("SELECT COUNT(*) FROM pools WHERE name = 'late'") == 0


def test_the_stored_role_counts_not_the_one_the_actor_claims(pool):
    ctx, vlm_id, pool_id = pool
    pretender = Actor(ANALYST.username, Role.ADMIN)
    with pytest.raises(PermissionDenied, match=r"dave \(analyst\) is not an admin"):
        pools.create_pool(ctx, pretender, vlm_id, "x", MANAGER.username, {CAD: 1})
    ghost = Actor("ghost", Role.MANAGER)
    with pytest.raises(PermissionDenied, match="user 'ghost' does not exist"):
        vlms.create_vlm(ctx, Actor("ghost", Role.ADMIN), "ghosts", [])
    users.add_user(ctx, ADMIN, "ghost", "manager", password="password-123")
    pools.update_pool(ctx, ADMIN, pool_id, manager="ghost")
    users.set_disabled(ctx, ADMIN, "ghost", True)
    with pytest.raises(PermissionDenied, match="user 'ghost' is disabled"):
        allocations.allocate(ctx, ghost, pool_id, CAD, "USER", "g", 1)
    assert ctx.db.scalar("SELECT COUNT(*) FROM pools") == 1
    assert ctx.db.scalar("SELECT COUNT(*) FROM allocations") == 0


class Undo(Exception):
    """Raised to roll a test transaction back."""


def test_inside_checks_read_the_transaction_they_run_in(pool):
    ctx, _, pool_id = pool

    def check(cur) -> None:
        cur.execute("UPDATE pools SET manager = 'carol' WHERE id = ?", [pool_id])
        permissions.require_pool_write_in(cur, OTHER_MANAGER, pool_id)
        with pytest.raises(PermissionDenied, match="managed by someone else"):
            permissions.require_pool_write_in(cur, MANAGER, pool_id)
        cur.execute("UPDATE users SET disabled = TRUE WHERE username = 'carol'")
        with pytest.raises(PermissionDenied, match="user 'carol' is disabled"):
            permissions.require_pool_write_in(cur, OTHER_MANAGER, pool_id)
        raise Undo

    with pytest.raises(Undo):
        ctx.db.write(check)
    assert ctx.db.scalar("SELECT manager FROM pools WHERE id = ?", [pool_id]) == "bob"


def _handover_round(ctx: ServiceContext, pool_id: int, host: str) -> dict[str, Any]:
    """One unsteered race between the handover to carol and bob's allocation of host."""
    barrier = threading.Barrier(2)
    outcome: dict[str, Any] = {}

    def hand_over() -> None:
        barrier.wait()
        pools.update_pool(ctx, ADMIN, pool_id, manager=OTHER_MANAGER.username)

    def allocate() -> None:
        barrier.wait()
        try:
            outcome["id"] = allocations.allocate(ctx, MANAGER, pool_id, CAD, "USER", host, 1)
        except VlmError as exc:
            outcome["error"] = exc

    threads = [threading.Thread(target=hand_over), threading.Thread(target=allocate)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT_SECONDS)
        assert not thread.is_alive()
    return outcome


def _round_audit(ctx: ServiceContext, after_id: int) -> list[tuple[int, str, str, str | None]]:
    return ctx.db.query(
        "SELECT id, actor, action, after FROM audit_log WHERE id > ? ORDER BY id", [after_id]
    )


def test_no_allocation_by_the_old_manager_commits_after_the_handover(pool):
    ctx, _, pool_id = pool
    refused = 0
    for race in range(RACES):
        start = ctx.db.scalar("SELECT COALESCE(MAX(id), 0) FROM audit_log")
        host = f"race-{race}"
        outcome = _handover_round(ctx, pool_id, host)
        rows = _round_audit(ctx, start)
        handover = [
            r[0]
            for r in rows
            if r[2] == "pool.update" and json.loads(r[3])["manager"] == OTHER_MANAGER.username
        ]
        assert len(handover) == 1
        added = [r[0] for r in rows if r[1] == MANAGER.username and r[2] == "allocation.add"]
        stored = ctx.db.query(
            "SELECT id FROM allocations WHERE pool_id = ? AND host_id = ?", [pool_id, host]
        )
        if "error" in outcome:
            assert isinstance(outcome["error"], PermissionDenied), outcome["error"]
            assert added == [] and stored == []
            refused += 1
        else:
            assert stored == [(outcome["id"],)]
            assert len(added) == 1 and added[0] < handover[0]
        pools.update_pool(ctx, ADMIN, pool_id, manager=MANAGER.username)
    assert len(allocations_of(ctx, pool_id, MANAGER.username)) == RACES - refused

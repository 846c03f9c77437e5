"""The background scheduler and full sync passes against emulated servers."""

from __future__ import annotations

import threading
import time

from tests.sync.conftest import (
    add_pool,
    add_server,
    add_synced_server,
    allocate,
    allocation,
    control,
    desired_state,
    feature_id,
    feature_key,
    server_state,
    set_feature_count,
)
from vlm.sync import SyncScheduler, sync_all

H1, H2 = "0050569A0001", "0050569A0002"


def _wait_for(predicate, timeout: float) -> float:
    """Poll until predicate() is true; return the seconds it took (fails after timeout)."""
    started = time.perf_counter()
    while not predicate():
        assert time.perf_counter() - started < timeout, "timed out"
        time.sleep(0.02)
    return time.perf_counter() - started


def test_push_gets_a_new_allocation_onto_the_server_without_waiting_for_a_pass(
    ctx, emulator
) -> None:
    """After the first full pass the next is an hour away: only the push can apply it (the
    context hook on DuckDB, NOTIFY to the leader on PostgreSQL)."""
    server = add_synced_server(ctx, emulator.url)
    cad = feature_id(ctx, server, "cad")
    pool = add_pool(ctx, {cad: 10})
    scheduler = SyncScheduler(ctx, interval_seconds=3600)
    scheduler.start()
    try:
        _wait_for(lambda: scheduler.is_leader and scheduler.last_full_pass != [], 10.0)
        hooked = ctx.on_allocations_changed == scheduler.push
        assert hooked is not scheduler.shared
        alloc = allocate(ctx, pool, cad, H1, 2)  # the allocation service pushes the server

        _wait_for(lambda: allocation(ctx, alloc)["state"] == "applied", 10.0)
    finally:
        scheduler.stop()
    on_server = server_state(emulator)
    assert on_server == desired_state(ctx, server)
    hosts = [(host, counts) for group in on_server.values() for host, counts in group.items()]
    assert hosts == [(("ETHERNET", H1), {feature_key(ctx, cad): 2})]


def test_transient_failure_is_retried_when_due_without_a_new_push(ctx, emulator) -> None:
    server = add_synced_server(ctx, emulator.url)
    cad = feature_id(ctx, server, "cad")
    pool = add_pool(ctx, {cad: 10})
    control(emulator, "POST", "faults", {"error_rate": 1.0, "error_statuses": [503]})
    scheduler = SyncScheduler(ctx, interval_seconds=3600)
    scheduler.start()
    try:
        alloc = allocate(ctx, pool, cad, H1, 1)  # the allocation service pushes the server
        _wait_for(lambda: (allocation(ctx, alloc)["attempts"] or 0) >= 1, 5.0)
        assert allocation(ctx, alloc)["state"] == "pending"
        control(emulator, "DELETE", "faults")

        _wait_for(lambda: allocation(ctx, alloc)["state"] == "applied", 8.0)
    finally:
        scheduler.stop()
    assert server_state(emulator) == desired_state(ctx, server)


def test_sync_now_reports_progress_and_applies_everything(ctx, emulator, emulator2) -> None:
    a = add_server(ctx, emulator.url, "lls-a")
    b = add_server(ctx, emulator2.url, "lls-b")
    scheduler = SyncScheduler(ctx, interval_seconds=3600)
    calls: list[tuple[float, str]] = []
    first = scheduler.sync_now(lambda fraction, text: calls.append((fraction, text)))
    assert [r.ok for r in first] == [True, True]
    pool = add_pool(ctx, {feature_id(ctx, a, "cad"): 5, feature_id(ctx, b, "viz"): 5})
    allocate(ctx, pool, feature_id(ctx, a, "cad"), H1, 2)
    allocate(ctx, pool, feature_id(ctx, b, "viz"), H2, 3)
    calls.clear()

    results = scheduler.sync_now(lambda fraction, text: calls.append((fraction, text)))

    assert [r.server_name for r in results] == ["lls-a", "lls-b"]
    assert all(r.ok and r.reconcile.applied == 1 for r in results)
    fractions = [f for f, _ in calls]
    assert fractions == sorted(fractions) and fractions[0] == 0.0 and fractions[-1] == 1.0
    assert any("lls-a" in text for _, text in calls) and any("lls-b" in text for _, text in calls)
    assert server_state(emulator) == desired_state(ctx, a)
    assert server_state(emulator2) == desired_state(ctx, b)
    assert not scheduler.running


def test_sync_all_without_a_scheduler_reports_broken_servers(ctx, emulator) -> None:
    good = add_server(ctx, emulator.url, "lls-good")
    broken = add_server(ctx, "http://127.0.0.1:9", "lls-broken", timeout=1.0)
    add_server(ctx, "http://127.0.0.1:9", "lls-down", timeout=1.0)
    ctx.db.write(
        lambda cur: cur.execute(
            "UPDATE license_servers SET password_encrypted = 'not-a-fernet-token' WHERE id = ?",
            [broken],
        )
    )

    results = {r.server_name: r for r in sync_all(ctx)}

    assert results["lls-good"].ok and results["lls-good"].inventory.features == 3
    assert str(results["lls-good"]).startswith("lls-good: inventory ok (3 features, 0 groups);")
    assert str(results["lls-good"]).endswith("; ok")
    assert not results["lls-broken"].ok
    assert "cannot be decrypted" in results["lls-broken"].error
    assert str(results["lls-broken"]).startswith("lls-broken: error: license server")
    assert results["lls-down"].error.startswith("inventory: ")
    assert results["lls-down"].inventory.error in results["lls-down"].error
    assert ctx.db.scalar("SELECT status FROM license_servers WHERE id = ?", [good]) == "ok"


def test_periodic_pass_pulls_inventory_and_stop_joins(ctx, emulator) -> None:
    server = add_server(ctx, emulator.url)
    before = {t.name for t in threading.enumerate()}
    scheduler = SyncScheduler(ctx, interval_seconds=0.2)
    scheduler.start()
    started = {t.name for t in threading.enumerate()} - before
    try:
        _wait_for(lambda: ctx.db.scalar("SELECT count(*) FROM server_features") == 3, 3.0)
        set_feature_count(emulator, "cad", 7)
        cad_total = "SELECT total FROM server_features WHERE server_id = ? AND feature_name = 'cad'"
        _wait_for(lambda: ctx.db.scalar(cad_total, [server]) == 7, 3.0)
    finally:
        scheduler.stop()

    leader_thread = {"vlm-sync-leader"} if scheduler.shared else set()
    assert started == {"vlm-sync-push", "vlm-sync-periodic"} | leader_thread
    assert not scheduler.running
    assert not started & {t.name for t in threading.enumerate()}
    assert ctx.on_allocations_changed != scheduler.push
    ctx.allocations_changed([server])  # a save after stop pushes nothing and starts no thread
    assert not started & {t.name for t in threading.enumerate()}


def test_the_after_pass_tasks_run_after_each_full_pass_and_a_failing_one_stops_nothing(
    ctx, emulator
) -> None:
    """The runtime hands the scheduler the services' policies (the idle release) to run after
    each full pass, before the alert pass; a task that raises is logged, the others still run."""
    add_synced_server(ctx, emulator.url)
    seen: list[int] = []

    def failing(_ctx) -> None:
        raise RuntimeError("policy broke")

    def counting(task_ctx) -> int:
        assert task_ctx is ctx
        seen.append(len(task_ctx.db.query("SELECT id FROM license_servers")))
        return len(seen)

    scheduler = SyncScheduler(ctx, interval_seconds=3600, after_pass=(failing, counting))
    scheduler.start()
    try:
        _wait_for(lambda: scheduler.last_alert_pass is not None, 10.0)
        first, second = scheduler.last_after_pass
        assert isinstance(first, RuntimeError) and second == 1
        assert "policy broke" in (scheduler.last_error or "")
        scheduler.sync_now()
        assert scheduler.last_after_pass[1] == 2 and seen == [1, 1]
    finally:
        scheduler.stop()

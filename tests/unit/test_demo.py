"""Demo mode seeds every role and converges on the emulators; a second start keeps the data."""

from vlm.alerting.kinds import KINDS
from vlm.demo import (
    DEMO_ALLOCATIONS,
    DEMO_TIMEBOXED,
    DEMO_USERS,
    OFFLINE_SERVER,
    SIM_HELD,
    SIM_REFUSED,
    prepare_demo_database,
    start_demo_emulators,
)
from vlm.store import open_database


def test_demo_seed_is_idempotent_and_applied(tmp_path):
    emulators = start_demo_emulators(None)
    try:
        urls = {name: running.url for name, running in emulators.items()}
        path = str(tmp_path / "demo.duckdb")
        prepare_demo_database(path, urls)
        db = open_database(path)
        first = db.query("SELECT id, host_id, state FROM allocations ORDER BY id")
        history = db.scalar("SELECT COUNT(*) FROM utilization_snapshots")
        db.close()
        prepare_demo_database(path, urls)
        db = open_database(path)
        try:
            again = db.query("SELECT id, host_id, state FROM allocations ORDER BY id")
            assert [(i, h) for i, h, _ in again] == [(i, h) for i, h, _ in first]
            by_host = {h: s for _, h, s in first}
            assert by_host.pop("intern-kim") == "scheduled"
            assert by_host.pop("trainee-ola") == "expired"
            # the Simulation team's story: east's fea_solver count dropped under what is held
            assert by_host.pop(SIM_HELD[1]) == "disabled"
            assert by_host.pop(SIM_REFUSED[1]) == "failed"
            assert set(by_host.values()) == {"applied"}
            unreachable = db.query("SELECT name FROM license_servers WHERE last_error IS NOT NULL")
            assert unreachable == [(OFFLINE_SERVER.name,)]
            kinds = db.query(
                "SELECT DISTINCT r.kind FROM alerts a JOIN alert_rules r ON r.id = a.rule_id "
                "WHERE a.cleared_at IS NULL"
            )
            assert {k for (k,) in kinds} == set(KINDS), "an open alert of every kind"
            expiry = db.query(
                "SELECT actor FROM audit_log WHERE action = 'allocation.expire' "
                "AND target_id = (SELECT CAST(id AS VARCHAR) FROM allocations "
                "WHERE host_id = 'trainee-ola')"
            )
            assert expiry == [("system",)]
            ending = db.query(
                "SELECT a.title FROM alerts a JOIN alert_rules r ON r.id = a.rule_id "
                "WHERE r.kind = 'allocation_ending' AND a.cleared_at IS NULL"
            )
            assert len(ending) == 1 and "1 allocation(s)" in ending[0][0]
            assert sorted(r[0] for r in db.query("SELECT username FROM users")) == sorted(
                u.username for u in DEMO_USERS
            )
            later = db.scalar("SELECT COUNT(*) FROM utilization_snapshots")
            features = db.scalar("SELECT COUNT(*) FROM server_features")
            assert history > 1000 and history <= later <= history + features
            assert db.scalar("SELECT COUNT(*) FROM pools") == 2
            assert db.query("SELECT requested_by, quantity, state FROM quantity_requests") == [
                ("mia", 2, "open")
            ], "one open request, seeded once"
        finally:
            db.close()
        groups = {g.name for g in emulators["lls-west"].state.groups.values()}
        assert "cad-team-manual" in groups
        placed = {g.name for e in emulators.values() for g in e.state.groups.values()}
        kinds_of = {
            h: t for t, h, *_ in (*DEMO_ALLOCATIONS, *DEMO_TIMEBOXED, SIM_HELD, SIM_REFUSED)
        }
        held = {f"vlm-{kinds_of[h]}-{h}" for _, h, _ in first}
        assert held - placed == {
            "vlm-USER-intern-kim",
            "vlm-USER-trainee-ola",
            f"vlm-ETHERNET-{SIM_REFUSED[1]}",
        }
    finally:
        for running in emulators.values():
            running.stop()

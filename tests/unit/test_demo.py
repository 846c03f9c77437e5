"""Demo mode seeds every role and converges on the emulators; a second start keeps the data."""

from vlm.demo import DEMO_USERS, prepare_demo_database, start_demo_emulators
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
            assert db.query("SELECT id, host_id, state FROM allocations ORDER BY id") == first
            assert {s for _, _, s in first} == {"applied"}
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
        assert {f"vlm-{'USER' if h == 'jsmith' else 'ETHERNET'}-{h}" for _, h, _ in first} <= placed
    finally:
        for running in emulators.values():
            running.stop()

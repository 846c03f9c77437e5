"""The demo's synthetic utilization history (vlm/store/demo.py) on a real in-memory DuckDB."""

from __future__ import annotations

import pytest

from vlm.store import Database
from vlm.store.demo import insert_synthetic_history

# 1 and 2 have licenses; 3 has none and 4 is gone: neither gets history
SEED = """
INSERT INTO license_servers (id, name, base_url) VALUES (1, 's1', 'http://s1');
INSERT INTO server_features (id, server_id, feature_name, feature_version, total, reserved,
    present) VALUES
    (1, 1, 'cad', '1.0', 10, 2, TRUE), (2, 1, 'cam', '2.0', 4, 0, TRUE),
    (3, 1, 'nil', '1.0', 0, 0, TRUE), (4, 1, 'old', '1.0', 5, 0, FALSE);
"""


@pytest.fixture
def db(fresh_db) -> Database:
    database = fresh_db
    database.write(lambda cur: cur.execute(SEED))
    yield database
    database.close()


def test_history_every_three_hours_of_the_days_asked_for(db):
    db.write(lambda cur: insert_synthetic_history(cur, 2))
    rows = db.query(
        """SELECT server_feature_id, COUNT(*), COUNT(DISTINCT taken_at),
            MIN(used) >= 0, BOOL_AND(used <= total), MIN(total), MAX(total), MIN(reserved),
            MAX(reserved), MAX(taken_at) < now()::TIMESTAMP,
            MIN(taken_at) >= now()::TIMESTAMP - INTERVAL '2 days' - INTERVAL '1 hour'
        FROM utilization_snapshots GROUP BY 1 ORDER BY 1"""
    )
    assert rows == [
        (1, 16, 16, True, True, 10, 10, 2, 2, True, True),
        (2, 16, 16, True, True, 4, 4, 0, 0, True, True),
    ]


def test_usage_varies_over_the_day(db):
    db.write(lambda cur: insert_synthetic_history(cur, 7))
    used = db.query(
        """SELECT DISTINCT used FROM utilization_snapshots WHERE server_feature_id = 1"""
    )
    assert len(used) > 2

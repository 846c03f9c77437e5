"""A small estate of pools and allocations written with plain SQL, for the store's own tests.

Servers s1 (id 1) and s2 (id 2). Server features: 1 = cad 1.0 on s1 (total 10), 2 = cad 1.0 on
s2 (total 6), 3 = cam 2.0 on s1 (total 4, 1 reserved outside VLM). VLM 1 'v1' exposes all three.
Pool 1 'p1' (bob): cad 5 on s1 + 3 on s2, cam 2 on s1. Pool 2 'p2' (carol): cad 4 on s1.
Allocations of p1: 1 = cad h1 x2 applied on s1, 2 = cad h2 x1 failed on s2, 3 = cad h3 x1
removing on s1, 4 = cam h1 x2 pending on s1. Of p2: 5 = cad h9 x3 applied on s1.
New rows get ids above these. Users: alice (admin), bob and carol (managers), dave (analyst),
erin (manager, disabled).
"""

from __future__ import annotations

from vlm.store import Database

SEED = """
INSERT INTO users (username, display_name, role, password_hash, disabled) VALUES
    ('alice', 'Alice', 'admin', 'x', FALSE), ('bob', 'Bob', 'manager', 'x', FALSE),
    ('carol', 'Carol', 'manager', 'x', FALSE), ('dave', 'Dave', 'analyst', 'x', FALSE),
    ('erin', 'Erin', 'manager', 'x', TRUE);
INSERT INTO license_servers (id, name, base_url) VALUES (1, 's1', 'http://s1'), (2, 's2', 'http://s2');
INSERT INTO server_features (id, server_id, feature_name, feature_version, total,
    reserved_by_others) VALUES
    (1, 1, 'cad', '1.0', 10, 0), (2, 2, 'cad', '1.0', 6, 0), (3, 1, 'cam', '2.0', 4, 1);
INSERT INTO vlms (id, name, created_by) VALUES (1, 'v1', 'alice');
INSERT INTO vlm_features VALUES (1, 1), (1, 2), (1, 3);
INSERT INTO pools (id, vlm_id, name, manager, description, created_by) VALUES
    (1, 1, 'p1', 'bob', 'first', 'alice'), (2, 1, 'p2', 'carol', '', 'alice');
INSERT INTO pool_portions VALUES (1, 1, 5), (1, 2, 3), (1, 3, 2), (2, 1, 4);
INSERT INTO allocations (id, pool_id, server_feature_id, feature_name, feature_version,
    host_type, host_id, count, state, created_by) VALUES
    (1, 1, 1, 'cad', '1.0', 'USER', 'h1', 2, 'applied', 'bob'),
    (2, 1, 2, 'cad', '1.0', 'USER', 'h2', 1, 'failed', 'bob'),
    (3, 1, 1, 'cad', '1.0', 'USER', 'h3', 1, 'removing', 'bob'),
    (4, 1, 3, 'cam', '2.0', 'USER', 'h1', 2, 'pending', 'bob'),
    (5, 2, 1, 'cad', '1.0', 'USER', 'h9', 3, 'applied', 'carol');
SELECT nextval('seq_server'), nextval('seq_server_feature'), nextval('seq_vlm'),
    nextval('seq_pool'), nextval('seq_allocation') FROM generate_series(1, 5);
"""


def seed(db: Database) -> Database:
    """Write the estate above into db (migrated and empty) and return it."""
    db.write(lambda cur: cur.execute(SEED))
    return db

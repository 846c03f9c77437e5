"""Set-based SQL that fills an empty, migrated VLM database with a generated estate.

Every statement works on whole tables (range(), INSERT … SELECT); nothing loops per row in
Python. The layout is described in bench/estate.py. Statements take named parameters from
`layout_params(size)`.
"""

from __future__ import annotations

from bench.sizes import EstateSize

HOST_BASE = 0x00AA00000000
HOSTS_PER_POOL = 100_000
FOREIGN_GROUPS = 2
FOREIGN_FEATURES = 3


def layout_params(size: EstateSize) -> dict[str, int]:
    """Named parameters of the SQL below."""
    return {
        "servers": size.servers,
        "features": size.features_per_server,
        "vlms": size.vlms,
        "pools": size.pools,
        "spv": size.servers_per_vlm,
        "vpp": size.vlms_per_pair,
        "fpv": size.features_per_vlm,
        "ppv": size.pools_per_vlm,
        "fpp": size.features_per_pool,
        "big": size.big_pool_rows,
        "rest": size.allocations - size.big_pool_rows,
        "managers": max(1, size.pools // 10),
        "headroom": size.apply_batch + 50,
        "hours": size.history_days * 24,
        "host_base": HOST_BASE,
        "foreign_groups": FOREIGN_GROUPS,
        "foreign_features": FOREIGN_FEATURES,
        "hosts_per_pool": HOSTS_PER_POOL,
    }


CATALOG = """
INSERT INTO users (username, display_name, email, role, password_hash)
SELECT * FROM (VALUES
    ('admin', 'Bench Admin', '', 'admin', $pw_hash),
    ('ana', 'Bench Analyst', '', 'analyst', $pw_hash))
UNION ALL
SELECT printf('mgr%03d', m), printf('Manager %03d', m), '', 'manager', $pw_hash
FROM range($managers) r(m);

INSERT INTO license_servers (name, base_url, username, password_encrypted, timeout_seconds,
    description)
SELECT printf('lls-%02d', s), 'http://127.0.0.1:9', 'admin', $pw_encrypted, 30,
    'benchmark license server'
FROM range(1, $servers + 1) r(s) ORDER BY s;

CREATE TEMP TABLE bench_sf AS
SELECT s.id AS server_id, CAST(substr(s.name, 5) AS INTEGER) - 1 AS s, f,
    (CAST(substr(s.name, 5) AS INTEGER) - 1) // 2 AS pair,
    CASE WHEN f // $fpv < $vpp
        THEN ((CAST(substr(s.name, 5) AS INTEGER) - 1) // 2) * $vpp + f // $fpv END AS v
FROM license_servers s, range($features) r(f);

INSERT INTO server_features (server_id, feature_name, feature_version)
SELECT server_id, printf('feat_%03d', f), '1.0' FROM bench_sf ORDER BY server_id, f;

CREATE TEMP TABLE bench_sf_ids AS
SELECT b.*, sf.id AS sf_id FROM bench_sf b
JOIN server_features sf
    ON sf.server_id = b.server_id AND sf.feature_name = printf('feat_%03d', b.f);

INSERT INTO vlms (name, description, created_by)
SELECT printf('VLM %03d', v), printf('benchmark VLM %d', v), 'admin'
FROM range($vlms) r(v) ORDER BY v;

CREATE TEMP TABLE bench_vlm AS
SELECT id AS vlm_id, CAST(substr(name, 5) AS INTEGER) AS v FROM vlms;

INSERT INTO vlm_servers
SELECT DISTINCT bv.vlm_id, b.server_id FROM bench_sf_ids b JOIN bench_vlm bv ON bv.v = b.v;

INSERT INTO vlm_features
SELECT bv.vlm_id, b.sf_id FROM bench_sf_ids b JOIN bench_vlm bv ON bv.v = b.v;

INSERT INTO pools (vlm_id, name, manager, description, created_by)
SELECT bv.vlm_id, printf('Pool %04d', p), printf('mgr%03d', p % $managers),
    printf('benchmark pool %d', p), 'admin'
FROM range($pools) r(p) JOIN bench_vlm bv ON bv.v = p // $ppv ORDER BY p;

CREATE TEMP TABLE bench_pool AS
SELECT id AS pool_id, CAST(substr(name, 6) AS INTEGER) AS p FROM pools;

CREATE TEMP TABLE bench_pool_feature AS
SELECT bp.pool_id, bp.p, p_v.v, i,
    ((p_v.v % $vpp) * $fpv + ((bp.p % $ppv) * $fpp + i) % $fpv) AS f
FROM bench_pool bp
JOIN (SELECT p, p // $ppv AS v FROM range($pools) r(p)) p_v ON p_v.p = bp.p,
    range($fpp) r(i);
"""

ALLOCATIONS = """
CREATE TEMP TABLE bench_alloc_plan AS
SELECT 0 AS p, 0 AS i, n AS host_local FROM range($big) r(n)
UNION ALL
SELECT 1 + n % ($pools - 1), (n // ($pools - 1)) % $fpp, (n // ($pools - 1)) // $fpp
FROM range($rest) r(n);

CREATE TEMP TABLE bench_alloc AS
SELECT pf.pool_id, b.sf_id, printf('feat_%03d', pf.f) AS feature_name,
    CASE WHEN a.host_local % 7 = 6 THEN 'USER' ELSE 'ETHERNET' END AS host_type,
    CASE WHEN a.host_local % 7 = 6
        THEN printf('user%09d', a.p * $hosts_per_pool + a.host_local)
        ELSE printf('%012X', $host_base + a.p * $hosts_per_pool + a.host_local) END AS host_id,
    1 + (a.host_local % 5 = 4)::INTEGER AS count,
    printf('bench host %d of pool %d', a.host_local, a.p) AS description,
    printf('mgr%03d', a.p % $managers) AS created_by,
    a.p, a.host_local
FROM bench_alloc_plan a
JOIN bench_pool_feature pf ON pf.p = a.p AND pf.i = a.i
JOIN bench_sf_ids b ON b.f = pf.f AND b.pair = pf.v // $vpp
    AND b.s % $spv = a.host_local % $spv;

INSERT INTO allocations (pool_id, server_feature_id, feature_name, feature_version, host_type,
    host_id, count, description, state, created_at, created_by, updated_at, applied_at)
SELECT pool_id, sf_id, feature_name, '1.0', host_type, host_id, count, description, 'applied',
    $now::TIMESTAMP - to_seconds((hash(p, host_local) % 7776000)::BIGINT),
    created_by, $now::TIMESTAMP, $now::TIMESTAMP
FROM bench_alloc ORDER BY p, feature_name, host_local;

INSERT INTO pool_portions
SELECT pf.pool_id, b.sf_id,
    (COALESCE(al.allocated, 0) + CASE WHEN pf.p = 0 THEN $headroom ELSE 10 + pf.p % 7 END)
        ::INTEGER
FROM bench_pool_feature pf
JOIN bench_sf_ids b ON b.f = pf.f AND b.pair = pf.v // $vpp
LEFT JOIN (SELECT pool_id, sf_id, SUM(count) AS allocated FROM bench_alloc GROUP BY ALL) al
    ON al.pool_id = pf.pool_id AND al.sf_id = b.sf_id;
"""

FIGURES = """
UPDATE server_features SET
    total = (COALESCE(p.pooled, 0) + b.others + 20 + b.f % 30)::INTEGER,
    reserved = (COALESCE(a.allocated, 0) + b.others)::INTEGER,
    reserved_by_others = b.others,
    used = 0
FROM (SELECT sf_id, f, CASE WHEN f < $foreign_features THEN $foreign_groups ELSE 0 END AS others
      FROM bench_sf_ids) b
LEFT JOIN (SELECT server_feature_id, SUM(quantity) AS pooled FROM pool_portions GROUP BY 1) p
    ON p.server_feature_id = b.sf_id
LEFT JOIN (SELECT server_feature_id, SUM(count) AS allocated FROM allocations GROUP BY 1) a
    ON a.server_feature_id = b.sf_id
WHERE server_features.id = b.sf_id;
"""

AUDIT = """
INSERT INTO audit_log (happened_at, actor, action, target_type, target_id, before, after)
SELECT created_at, created_by, 'allocation.add', 'allocation', id::VARCHAR, NULL,
    to_json({'id': id, 'host_type': host_type, 'host_id': host_id, 'count': count,
             'feature_name': feature_name, 'feature_version': feature_version,
             'pool_id': pool_id})::VARCHAR
FROM allocations ORDER BY created_at;
"""

SNAPSHOTS = """
INSERT INTO utilization_snapshots
SELECT sf.id, $start::TIMESTAMP + to_hours(h::BIGINT), sf.total,
    (hash(sf.id, h) % (sf.total // 2 + 1))::INTEGER,
    (sf.reserved - (($hours - 1 - h) * (sf.reserved - sf.reserved_by_others)) // (2 * $hours))
        ::INTEGER
FROM range($hours) r(h), server_features sf
ORDER BY h, sf.id;
"""

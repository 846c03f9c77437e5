"""Accounting SQL: figures per server feature, VLM feature and pool feature (architecture.md §3).

The one definition of **counted concurrent licenses** lives here: a server feature the server
lists as concurrent, neither uncounted nor metered (the only kind FNE can reserve, so the only
kind VLM pools). Every license total (dashboard, Physical LMs, VLMs, CSVs) sums the features of
that kind; metered features (units consumed by use), uncounted features (no count at all) and
any other kind are reported apart under their own label, never mixed into those totals.
"""

from __future__ import annotations

COUNTED = "counted"
METERED = "metered"
UNCOUNTED = "uncounted"
OTHER = "other"
LICENSE_KIND_LABELS = {
    COUNTED: "Counted concurrent",
    METERED: "Metered",
    UNCOUNTED: "Uncounted",
    OTHER: "Other (not concurrent)",
}

COUNTED_CONCURRENT = "sf.concurrent AND NOT sf.uncounted AND NOT sf.metered"
LICENSE_KIND = f"""CASE WHEN {COUNTED_CONCURRENT} THEN '{COUNTED}'
        WHEN sf.metered THEN '{METERED}' WHEN sf.uncounted THEN '{UNCOUNTED}' ELSE '{OTHER}' END"""


def license_kind(*, concurrent: bool, uncounted: bool, metered: bool) -> str:
    """The kind of a feature from its FNE flags: the Python twin of LICENSE_KIND."""
    if concurrent and not uncounted and not metered:
        return COUNTED
    if metered:
        return METERED
    return UNCOUNTED if uncounted else OTHER


SERVER_FEATURE_FIGURES = f"""
WITH pooled AS (
    SELECT server_feature_id, SUM(quantity) AS pooled FROM pool_portions GROUP BY 1
), allocated AS (
    SELECT server_feature_id, SUM(count) AS allocated
    FROM allocations WHERE state NOT IN ('removing', 'expiring', 'expired') GROUP BY 1
)
SELECT
    sf.id AS server_feature_id, sf.server_id, s.name AS server_name,
    sf.feature_name, sf.feature_version, sf.total, sf.used, sf.reserved,
    sf.reserved_by_others, COALESCE(p.pooled, 0)::INTEGER AS pooled,
    COALESCE(a.allocated, 0)::INTEGER AS allocated,
    (sf.total - sf.reserved_by_others - COALESCE(p.pooled, 0))::INTEGER AS poolable,
    GREATEST(COALESCE(p.pooled, 0) - (sf.total - sf.reserved_by_others), 0)::INTEGER AS deficit,
    ({COUNTED_CONCURRENT}) AS can_pool, {LICENSE_KIND} AS license_kind,
    sf.concurrent, sf.uncounted, sf.metered, sf.expiry, sf.slices, sf.present,
    vf.vlm_id, v.name AS vlm_name, sf.updated_at
FROM server_features sf
JOIN license_servers s ON s.id = sf.server_id
LEFT JOIN pooled p ON p.server_feature_id = sf.id
LEFT JOIN allocated a ON a.server_feature_id = sf.id
LEFT JOIN vlm_features vf ON vf.server_feature_id = sf.id
LEFT JOIN vlms v ON v.id = vf.vlm_id
"""

# The figures below sum the rows of SERVER_FEATURE_FIGURES; `source` is where those rows come
# from: the query itself as a subquery (SERVER_FEATURES), or a table of them already read (the
# Dashboard's sums, reports.ServerFigures).
SERVER_FEATURES = f"({SERVER_FEATURE_FIGURES})"


def counted_server_features(source: str) -> str:
    """The counted concurrent rows of the server feature figures in source."""
    return f"""
SELECT * FROM {source} AS server_feature_figures
WHERE license_kind = '{COUNTED}'
"""


def license_kind_figures(source: str) -> str:
    """Per server and license kind: present features, total and used."""
    return f"""
SELECT server_id, server_name, license_kind,
    COUNT(*) FILTER (WHERE present)::INTEGER AS features,
    COALESCE(SUM(total), 0)::INTEGER AS total, COALESCE(SUM(used), 0)::INTEGER AS used
FROM {source} AS server_feature_figures
GROUP BY server_id, server_name, license_kind
"""


def vlm_feature_figures(source: str) -> str:
    """Per VLM feature, the figures of the server features it is made of."""
    return f"""
SELECT vlm_id, vlm_name, feature_name, feature_version, license_kind,
    SUM(total)::INTEGER AS total, SUM(used)::INTEGER AS used,
    SUM(reserved_by_others)::INTEGER AS reserved_by_others,
    SUM(pooled)::INTEGER AS pooled, SUM(allocated)::INTEGER AS allocated,
    SUM(poolable)::INTEGER AS available, SUM(deficit)::INTEGER AS deficit,
    COUNT(*)::INTEGER AS servers, MIN(expiry) AS expiry
FROM {source} AS sff WHERE vlm_id IS NOT NULL
GROUP BY vlm_id, vlm_name, feature_name, feature_version, license_kind
"""


COUNTED_SERVER_FEATURES = counted_server_features(SERVER_FEATURES)
LICENSE_KIND_FIGURES = license_kind_figures(SERVER_FEATURES)
VLM_FEATURE_FIGURES = vlm_feature_figures(SERVER_FEATURES)

# What every pool holds of a server feature is summed once and joined (a subquery per portion
# scanned all portions for each one on PostgreSQL: 7 s over the bench estate's 20,000).
POOL_FEATURE_FIGURES = """
WITH pooled AS (
    SELECT server_feature_id, SUM(quantity) AS pooled FROM pool_portions
    GROUP BY server_feature_id
), portions AS (
    SELECT pp.pool_id, sf.feature_name, sf.feature_version,
        SUM(pp.quantity) AS quantity,
        BOOL_OR(sf.total - sf.reserved_by_others < po.pooled) AS over_committed
    FROM pool_portions pp JOIN server_features sf ON sf.id = pp.server_feature_id
    JOIN pooled po ON po.server_feature_id = sf.id
    GROUP BY 1, 2, 3
), allocated AS (
    SELECT pool_id, feature_name, feature_version, SUM(count) AS allocated,
        COUNT(*) AS allocations,
        COUNT(*) FILTER (WHERE state = 'failed') AS failed,
        COUNT(*) FILTER (WHERE state = 'pending') AS pending
    FROM allocations WHERE state NOT IN ('removing', 'expiring', 'expired') GROUP BY 1, 2, 3
)
SELECT p.id AS pool_id, p.name AS pool_name, p.vlm_id, v.name AS vlm_name, p.manager,
    pt.feature_name, pt.feature_version, pt.quantity::INTEGER AS quantity,
    COALESCE(a.allocated, 0)::INTEGER AS allocated,
    (pt.quantity - COALESCE(a.allocated, 0))::INTEGER AS available,
    COALESCE(a.allocations, 0)::INTEGER AS allocations,
    COALESCE(a.pending, 0)::INTEGER AS pending,
    COALESCE(a.failed, 0)::INTEGER AS failed,
    COALESCE(pt.over_committed, FALSE) AS over_committed
FROM pools p
JOIN vlms v ON v.id = p.vlm_id
JOIN portions pt ON pt.pool_id = p.id
LEFT JOIN allocated a ON a.pool_id = p.id AND a.feature_name = pt.feature_name
    AND a.feature_version = pt.feature_version
"""

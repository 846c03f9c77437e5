"""Numbered schema migrations, applied in order at start; none of them ever drops data."""

from __future__ import annotations

from vlm.store.database import Database

# A migration's SQL is one text for both engines, or {"duckdb": ..., "postgres": ...} where they
# really differ (chosen by db.dialect; an engine left out has nothing to do).
MigrationSql = str | dict[str, str]

HOURLY_TABLE = """
CREATE TABLE utilization_hourly (
    server_feature_id BIGINT NOT NULL,
    hour_end TIMESTAMP NOT NULL,
    samples INTEGER NOT NULL,
    total INTEGER NOT NULL,
    used INTEGER NOT NULL,
    reserved INTEGER NOT NULL,
    total_change INTEGER NOT NULL,
    used_change INTEGER NOT NULL,
    reserved_change INTEGER NOT NULL,
    first_hour BOOLEAN NOT NULL{key}
);
"""

# The summary of every snapshot so far (frozen here; hourly.py keeps the live copy).
HOURLY_BACKFILL = """
INSERT INTO utilization_hourly (server_feature_id, hour_end, samples, total, used, reserved,
    total_change, used_change, reserved_change, first_hour)
SELECT server_feature_id, hour_end, COUNT(*)::INTEGER,
    MAX(CASE WHEN from_last = 1 THEN total END), MAX(CASE WHEN from_last = 1 THEN used END),
    MAX(CASE WHEN from_last = 1 THEN reserved END),
    SUM(total_change)::INTEGER, SUM(used_change)::INTEGER, SUM(reserved_change)::INTEGER,
    BOOL_OR(from_first = 1)
FROM (
    SELECT server_feature_id, hour_end, total, used, reserved,
        total - COALESCE(LAG(total) OVER w, 0) AS total_change,
        used - COALESCE(LAG(used) OVER w, 0) AS used_change,
        reserved - COALESCE(LAG(reserved) OVER w, 0) AS reserved_change,
        row_number() OVER w AS from_first,
        row_number() OVER (PARTITION BY server_feature_id, hour_end
            ORDER BY taken_at DESC, total DESC, used DESC, reserved DESC) AS from_last
    FROM (
        SELECT server_feature_id, taken_at, total, used, reserved,
            date_trunc('hour', taken_at - INTERVAL '1 microsecond') + INTERVAL '1 hour'
                AS hour_end
        FROM utilization_snapshots
    ) AS snapshots
    WINDOW w AS (PARTITION BY server_feature_id ORDER BY taken_at, total, used, reserved)
) AS ordered
GROUP BY server_feature_id, hour_end
ORDER BY hour_end, server_feature_id;
"""

# Per server and hour, the sums of the summary over its counted concurrent features (frozen here).
COUNTED_HOURLY = """
CREATE TABLE counted_utilization_hourly (
    server_id BIGINT NOT NULL,
    hour_end TIMESTAMP NOT NULL,
    total_change BIGINT NOT NULL,
    used_change BIGINT NOT NULL,
    reserved_change BIGINT NOT NULL,
    features_started INTEGER NOT NULL,
    PRIMARY KEY (server_id, hour_end)
);
INSERT INTO counted_utilization_hourly (server_id, hour_end, total_change, used_change,
    reserved_change, features_started)
SELECT sf.server_id, h.hour_end, SUM(h.total_change), SUM(h.used_change),
    SUM(h.reserved_change), COUNT(*) FILTER (WHERE h.first_hour)
FROM utilization_hourly h JOIN server_features sf ON sf.id = h.server_feature_id
WHERE sf.concurrent AND NOT sf.uncounted AND NOT sf.metered
GROUP BY sf.server_id, h.hour_end
ORDER BY 2, 1;
"""

AUDIT_POOL_COLUMN = """
ALTER TABLE audit_log ADD COLUMN pool_id BIGINT;
"""

AUDIT_POOL_FROM_ALLOCATIONS = """
UPDATE audit_log SET pool_id = a.pool_id FROM allocations a
WHERE audit_log.target_type = 'allocation' AND audit_log.pool_id IS NULL
  AND audit_log.target_id = CAST(a.id AS VARCHAR);
"""

MIGRATIONS: list[tuple[int, str, MigrationSql]] = [
    (
        1,
        "initial schema",
        """
        CREATE SEQUENCE IF NOT EXISTS seq_server START 1;
        CREATE SEQUENCE IF NOT EXISTS seq_server_feature START 1;
        CREATE SEQUENCE IF NOT EXISTS seq_vlm START 1;
        CREATE SEQUENCE IF NOT EXISTS seq_pool START 1;
        CREATE SEQUENCE IF NOT EXISTS seq_allocation START 1;
        CREATE SEQUENCE IF NOT EXISTS seq_audit START 1;

        CREATE TABLE license_servers (
            id BIGINT PRIMARY KEY DEFAULT nextval('seq_server'),
            name VARCHAR NOT NULL UNIQUE,
            base_url VARCHAR NOT NULL,
            instance VARCHAR NOT NULL DEFAULT '~',
            username VARCHAR,
            password_encrypted VARCHAR,
            verify_tls BOOLEAN NOT NULL DEFAULT TRUE,
            ca_path VARCHAR,
            timeout_seconds DOUBLE PRECISION NOT NULL DEFAULT 10,
            description VARCHAR NOT NULL DEFAULT '',
            created_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
            status VARCHAR NOT NULL DEFAULT 'unknown',
            last_sync_at TIMESTAMP,
            last_success_at TIMESTAMP,
            last_error VARCHAR,
            last_latency_ms DOUBLE PRECISION
        );

        CREATE TABLE server_features (
            id BIGINT PRIMARY KEY DEFAULT nextval('seq_server_feature'),
            server_id BIGINT NOT NULL,
            feature_name VARCHAR NOT NULL,
            feature_version VARCHAR NOT NULL,
            total INTEGER NOT NULL DEFAULT 0,
            used INTEGER NOT NULL DEFAULT 0,
            reserved INTEGER NOT NULL DEFAULT 0,
            reserved_by_others INTEGER NOT NULL DEFAULT 0,
            concurrent BOOLEAN NOT NULL DEFAULT TRUE,
            uncounted BOOLEAN NOT NULL DEFAULT FALSE,
            metered BOOLEAN NOT NULL DEFAULT FALSE,
            expiry VARCHAR,
            slices INTEGER NOT NULL DEFAULT 1,
            present BOOLEAN NOT NULL DEFAULT TRUE,
            updated_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
            UNIQUE (server_id, feature_name, feature_version)
        );

        CREATE TABLE utilization_snapshots (
            server_feature_id BIGINT NOT NULL,
            taken_at TIMESTAMP NOT NULL,
            total INTEGER NOT NULL,
            used INTEGER NOT NULL,
            reserved INTEGER NOT NULL
        );

        CREATE TABLE vlms (
            id BIGINT PRIMARY KEY DEFAULT nextval('seq_vlm'),
            name VARCHAR NOT NULL UNIQUE,
            vlm_type VARCHAR NOT NULL DEFAULT 'FlexNet Embedded',
            description VARCHAR NOT NULL DEFAULT '',
            created_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
            created_by VARCHAR NOT NULL
        );

        CREATE TABLE vlm_servers (
            vlm_id BIGINT NOT NULL,
            server_id BIGINT NOT NULL,
            PRIMARY KEY (vlm_id, server_id)
        );

        CREATE TABLE vlm_features (
            vlm_id BIGINT NOT NULL,
            server_feature_id BIGINT NOT NULL PRIMARY KEY
        );

        CREATE TABLE pools (
            id BIGINT PRIMARY KEY DEFAULT nextval('seq_pool'),
            vlm_id BIGINT NOT NULL,
            name VARCHAR NOT NULL,
            manager VARCHAR NOT NULL,
            description VARCHAR NOT NULL DEFAULT '',
            created_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
            created_by VARCHAR NOT NULL,
            UNIQUE (vlm_id, name)
        );

        CREATE TABLE pool_portions (
            pool_id BIGINT NOT NULL,
            server_feature_id BIGINT NOT NULL,
            quantity INTEGER NOT NULL,
            PRIMARY KEY (pool_id, server_feature_id)
        );

        CREATE TABLE allocations (
            id BIGINT PRIMARY KEY DEFAULT nextval('seq_allocation'),
            pool_id BIGINT NOT NULL,
            server_feature_id BIGINT NOT NULL,
            feature_name VARCHAR NOT NULL,
            feature_version VARCHAR NOT NULL,
            host_type VARCHAR NOT NULL,
            host_id VARCHAR NOT NULL,
            count INTEGER NOT NULL,
            description VARCHAR NOT NULL DEFAULT '',
            state VARCHAR NOT NULL DEFAULT 'pending',
            last_error VARCHAR,
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at TIMESTAMP,
            created_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
            created_by VARCHAR NOT NULL,
            updated_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
            applied_at TIMESTAMP
        );

        CREATE TABLE reservation_mirror (
            server_id BIGINT NOT NULL,
            group_id BIGINT,
            group_name VARCHAR NOT NULL,
            owned BOOLEAN NOT NULL,
            reservation_id BIGINT,
            host_type VARCHAR NOT NULL,
            host_id VARCHAR NOT NULL,
            entry_id BIGINT,
            feature_name VARCHAR NOT NULL,
            feature_version VARCHAR NOT NULL,
            count INTEGER NOT NULL,
            entry_state VARCHAR
        );

        CREATE TABLE sync_conflicts (
            server_id BIGINT NOT NULL,
            kind VARCHAR NOT NULL,
            host_type VARCHAR,
            host_id VARCHAR,
            feature_name VARCHAR,
            feature_version VARCHAR,
            detail VARCHAR NOT NULL,
            found_at TIMESTAMP NOT NULL DEFAULT current_timestamp
        );

        CREATE TABLE users (
            username VARCHAR PRIMARY KEY,
            display_name VARCHAR NOT NULL,
            email VARCHAR NOT NULL DEFAULT '',
            role VARCHAR NOT NULL,
            password_hash VARCHAR NOT NULL,
            disabled BOOLEAN NOT NULL DEFAULT FALSE,
            must_change_password BOOLEAN NOT NULL DEFAULT FALSE,
            created_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
            updated_at TIMESTAMP NOT NULL DEFAULT current_timestamp
        );

        CREATE TABLE audit_log (
            id BIGINT PRIMARY KEY DEFAULT nextval('seq_audit'),
            happened_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
            actor VARCHAR NOT NULL,
            action VARCHAR NOT NULL,
            target_type VARCHAR NOT NULL,
            target_id VARCHAR NOT NULL,
            before VARCHAR,
            after VARCHAR
        );
        """,
    ),
    (
        2,
        "indexes for allocation, snapshot and audit lookups",
        """
        CREATE INDEX idx_alloc_pool ON allocations (pool_id);
        CREATE INDEX idx_alloc_sf ON allocations (server_feature_id);
        CREATE INDEX idx_alloc_host ON allocations (host_type, host_id);
        CREATE INDEX idx_snap_sf_time ON utilization_snapshots (server_feature_id, taken_at);
        CREATE INDEX idx_mirror_server ON reservation_mirror (server_id);
        CREATE INDEX idx_audit_at ON audit_log (happened_at);
        """,
    ),
    (
        3,
        "drop the utilization snapshot index (no query uses it; it costs memory and inserts)",
        # DuckDB answers the history's range scans from zonemaps; this ART index served no
        # query, yet an insert loads all of it into memory (about 700 MB at 21.6M rows) and
        # a sync adding 10,000 snapshot rows spent 0.5 s maintaining it.
        """
        DROP INDEX IF EXISTS idx_snap_sf_time;
        """,
    ),
    (
        4,
        "failed sign-ins per user name (a lockout survives restarts and is shared by processes)",
        """
        CREATE TABLE login_failures (
            username VARCHAR PRIMARY KEY,
            attempts INTEGER NOT NULL,
            last_failed_at DOUBLE PRECISION NOT NULL
        );
        """,
    ),
    (
        5,
        "server identity (restart detection) and the history of drift events and repairs",
        """
        ALTER TABLE license_servers ADD COLUMN instance_id VARCHAR;
        CREATE SEQUENCE IF NOT EXISTS seq_drift_event START 1;
        CREATE TABLE drift_events (
            id BIGINT PRIMARY KEY DEFAULT nextval('seq_drift_event'),
            server_id BIGINT NOT NULL,
            happened_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
            kind VARCHAR NOT NULL,
            group_name VARCHAR,
            host_type VARCHAR,
            host_id VARCHAR,
            feature_name VARCHAR,
            feature_version VARCHAR,
            count INTEGER,
            detail VARCHAR NOT NULL
        );
        CREATE INDEX idx_drift_event_server ON drift_events (server_id, happened_at);
        """,
    ),
    (
        6,
        "personal API tokens (stored as SHA-256 hashes) and the REST API's idempotency keys",
        """
        CREATE SEQUENCE IF NOT EXISTS seq_api_token START 1;
        CREATE TABLE api_tokens (
            id BIGINT PRIMARY KEY DEFAULT nextval('seq_api_token'),
            username VARCHAR NOT NULL,
            name VARCHAR NOT NULL,
            token_hash VARCHAR NOT NULL UNIQUE,
            hint VARCHAR NOT NULL,
            read_only BOOLEAN NOT NULL DEFAULT FALSE,
            created_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
            expires_at TIMESTAMP,
            last_used_at TIMESTAMP,
            revoked_at TIMESTAMP,
            revoked_by VARCHAR
        );
        CREATE INDEX idx_api_token_user ON api_tokens (username);
        CREATE TABLE idempotency_keys (
            username VARCHAR NOT NULL,
            idempotency_key VARCHAR NOT NULL,
            request_hash VARCHAR NOT NULL,
            status INTEGER,
            content_type VARCHAR,
            body VARCHAR,
            created_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
            PRIMARY KEY (username, idempotency_key)
        );
        """,
    ),
    (
        7,
        "hourly utilization summary for the trends, filled from the snapshots so far",
        # DuckDB: no key or index (like the snapshots, migration 3: an ART index would be loaded
        # whole into memory on every insert; zonemaps on hour_end serve the current hour's
        # upkeep). PostgreSQL: the key finds a feature's hours, a BRIN index ranges of hours.
        {
            "duckdb": HOURLY_TABLE.format(key="") + HOURLY_BACKFILL,
            "postgres": HOURLY_TABLE.format(key=",\n    PRIMARY KEY (server_feature_id, hour_end)")
            + "CREATE INDEX idx_hourly_hour_end ON utilization_hourly USING BRIN (hour_end);\n"
            + HOURLY_BACKFILL,
        },
    ),
    (
        8,
        "hourly sums per server of its counted concurrent features, which the trends read",
        COUNTED_HOURLY,
    ),
    (
        9,
        "PostgreSQL: allocation audit rows by the pool they name, then by allocation (pool trends)",
        # DuckDB reads the JSON of every allocation row fast enough (no index); PostgreSQL
        # would parse each one per pool trend.
        {
            "postgres": """
            CREATE INDEX idx_audit_allocation_pool ON audit_log
                ((CAST(COALESCE(after, before) AS jsonb) ->> 'pool_id'), target_id)
                WHERE target_type = 'allocation';
            """
        },
    ),
    (
        10,
        "the pool of each audit row in a column of its own (pool trends read only their rows)",
        # Filled from a pool row's target and the pool an allocation row names, else (rows older
        # than that field) from its allocation. DuckDB scans the column (no index, like
        # migration 3's reasons); PostgreSQL finds a pool's rows by (pool_id, happened_at),
        # which replaces migration 9's index over the parsed JSON.
        {
            "duckdb": AUDIT_POOL_COLUMN
            + """
            UPDATE audit_log SET pool_id = TRY_CAST(target_id AS BIGINT)
            WHERE target_type = 'pool';
            UPDATE audit_log SET pool_id =
                TRY_CAST(json_extract_string(COALESCE(after, before), '$.pool_id') AS BIGINT)
            WHERE target_type = 'allocation';
            """
            + AUDIT_POOL_FROM_ALLOCATIONS,
            "postgres": AUDIT_POOL_COLUMN
            + """
            UPDATE audit_log SET pool_id = CAST(target_id AS BIGINT)
            WHERE target_type = 'pool' AND target_id ~ '^[0-9]{1,18}$';
            UPDATE audit_log SET pool_id = CAST(named AS BIGINT)
            FROM (SELECT id AS row_id,
                    CAST(COALESCE(after, before) AS jsonb) ->> 'pool_id' AS named
                  FROM audit_log WHERE target_type = 'allocation') AS n
            WHERE audit_log.id = n.row_id AND n.named ~ '^[0-9]{1,18}$';
            """
            + AUDIT_POOL_FROM_ALLOCATIONS
            + """
            DROP INDEX IF EXISTS idx_audit_allocation_pool;
            CREATE INDEX idx_audit_pool ON audit_log (pool_id, happened_at)
                WHERE pool_id IS NOT NULL;
            """,
        },
    ),
    (
        11,
        "the change of count of each allocation audit row in a column (pool trends sum it)",
        # Read from the row's JSON once here; from now on the audit service stores it. A pool's
        # trend then reads (pool_id, happened_at, count_change) alone: on PostgreSQL from a
        # partial index that holds all three (an index-only scan).
        {
            "duckdb": """
            ALTER TABLE audit_log ADD COLUMN count_change INTEGER;
            UPDATE audit_log SET count_change =
                COALESCE(TRY_CAST(json_extract_string(after, '$.count') AS INTEGER), 0)
                - COALESCE(TRY_CAST(json_extract_string(before, '$.count') AS INTEGER), 0)
            WHERE target_type = 'allocation';
            """,
            "postgres": """
            ALTER TABLE audit_log ADD COLUMN count_change INTEGER;
            UPDATE audit_log SET count_change = COALESCE(CASE WHEN counts.count_after
                    ~ '^-?[0-9]{1,9}$' THEN CAST(counts.count_after AS INTEGER) END, 0)
                - COALESCE(CASE WHEN counts.count_before ~ '^-?[0-9]{1,9}$'
                    THEN CAST(counts.count_before AS INTEGER) END, 0)
            FROM (SELECT id AS row_id, CAST(after AS json) ->> 'count' AS count_after,
                    CAST(before AS json) ->> 'count' AS count_before
                  FROM audit_log WHERE target_type = 'allocation') AS counts
            WHERE audit_log.id = counts.row_id;
            CREATE INDEX idx_audit_pool_counts ON audit_log (pool_id, happened_at)
                INCLUDE (count_change) WHERE pool_id IS NOT NULL AND count_change <> 0;
            """,
        },
    ),
    (
        12,
        "the digest of the groups answer each server's mirror was stored from, and its prefix",
        # A pull after a restart whose answer has the same digest (same prefix, same server
        # instance) keeps the stored mirror instead of parsing and rewriting it.
        """
        ALTER TABLE license_servers ADD COLUMN mirror_digest VARCHAR;
        ALTER TABLE license_servers ADD COLUMN mirror_prefix VARCHAR;
        """,
    ),
    (
        13,
        "a fingerprint of what each server's stored conflicts were computed from",
        # A pull whose drift inputs (allocations, mirror, features, portions of the server) are
        # unchanged since the conflicts were stored keeps them instead of computing them again.
        """
        ALTER TABLE license_servers ADD COLUMN conflicts_inputs VARCHAR;
        """,
    ),
    (
        14,
        "alert rules, alerts (one row per episode: fired, then cleared) and their deliveries",
        """
        CREATE SEQUENCE IF NOT EXISTS seq_alert_rule START 1;
        CREATE SEQUENCE IF NOT EXISTS seq_alert START 1;
        CREATE SEQUENCE IF NOT EXISTS seq_alert_delivery START 1;
        CREATE TABLE alert_rules (
            id BIGINT PRIMARY KEY DEFAULT nextval('seq_alert_rule'),
            name VARCHAR NOT NULL,
            kind VARCHAR NOT NULL,
            threshold DOUBLE PRECISION NOT NULL,
            pool_id BIGINT,
            owner VARCHAR NOT NULL,
            destinations_encrypted VARCHAR,
            destination_labels VARCHAR NOT NULL DEFAULT '',
            enabled BOOLEAN NOT NULL DEFAULT TRUE,
            created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
        );
        CREATE TABLE alerts (
            id BIGINT PRIMARY KEY DEFAULT nextval('seq_alert'),
            rule_id BIGINT NOT NULL,
            subject VARCHAR NOT NULL,
            title VARCHAR NOT NULL,
            detail VARCHAR NOT NULL,
            pool_id BIGINT,
            opened_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
            cleared_at TIMESTAMP,
            acknowledged_by VARCHAR,
            acknowledged_at TIMESTAMP
        );
        CREATE INDEX idx_alert_open ON alerts (rule_id, cleared_at);
        CREATE TABLE alert_deliveries (
            id BIGINT PRIMARY KEY DEFAULT nextval('seq_alert_delivery'),
            rule_id BIGINT NOT NULL,
            alert_id BIGINT,
            event VARCHAR NOT NULL,
            destination INTEGER NOT NULL,
            destination_label VARCHAR NOT NULL,
            title VARCHAR NOT NULL,
            body VARCHAR NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
            delivered_at TIMESTAMP,
            gave_up_at TIMESTAMP,
            last_error VARCHAR,
            created_at TIMESTAMP NOT NULL DEFAULT current_timestamp
        );
        CREATE INDEX idx_alert_delivery_due ON alert_deliveries (delivered_at, next_attempt_at);
        """,
    ),
    (
        15,
        "quantity requests; per-user notification destinations; deliveries to a user",
        # A delivery targets a rule's destinations (rule_id) or a user's own (username). DuckDB
        # refuses to alter a column of an indexed table, so the index is rebuilt around it.
        """
        CREATE SEQUENCE IF NOT EXISTS seq_quantity_request START 1;
        CREATE TABLE quantity_requests (
            id BIGINT PRIMARY KEY DEFAULT nextval('seq_quantity_request'),
            pool_id BIGINT NOT NULL,
            feature_name VARCHAR NOT NULL,
            feature_version VARCHAR NOT NULL,
            quantity INTEGER NOT NULL,
            reason VARCHAR NOT NULL,
            requested_by VARCHAR NOT NULL,
            requested_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
            state VARCHAR NOT NULL DEFAULT 'open',
            granted INTEGER,
            decided_by VARCHAR,
            decided_at TIMESTAMP,
            decision_reason VARCHAR
        );
        CREATE INDEX idx_quantity_request_pool ON quantity_requests (pool_id, state);
        ALTER TABLE users ADD COLUMN notify_destinations_encrypted VARCHAR;
        ALTER TABLE users ADD COLUMN notify_destination_labels VARCHAR DEFAULT '';
        DROP INDEX idx_alert_delivery_due;
        ALTER TABLE alert_deliveries ALTER COLUMN rule_id DROP NOT NULL;
        ALTER TABLE alert_deliveries ADD COLUMN username VARCHAR;
        CREATE INDEX idx_alert_delivery_due ON alert_deliveries (delivered_at, next_attempt_at);
        """,
    ),
    (
        16,
        "time-boxed allocations: start and end days; a pool's default and maximum duration",
        # Days, not times: an allocation holds its license from the start of starts_on through
        # the whole of ends_on (inclusive, in the server's local calendar). NULL: from its
        # creation / without end. A new state 'scheduled' waits for its start, 'expiring' is
        # being taken off its server, 'expired' is history (never deleted).
        """
        ALTER TABLE allocations ADD COLUMN starts_on DATE;
        ALTER TABLE allocations ADD COLUMN ends_on DATE;
        ALTER TABLE pools ADD COLUMN default_duration_days INTEGER;
        ALTER TABLE pools ADD COLUMN max_duration_days INTEGER;
        """,
    ),
    (
        17,
        "who the license servers saw using each feature, seat prices and the idle-release policy",
        # One row per episode of a host holding a feature on a server: opened on the pull that
        # first sees it, closed on the first pull that no longer does (change-only history).
        """
        CREATE SEQUENCE IF NOT EXISTS seq_usage_sighting START 1;
        CREATE TABLE usage_sightings (
            id BIGINT PRIMARY KEY DEFAULT nextval('seq_usage_sighting'),
            server_id BIGINT NOT NULL,
            host_type VARCHAR NOT NULL,
            host_id VARCHAR NOT NULL,
            feature_name VARCHAR NOT NULL,
            feature_version VARCHAR NOT NULL,
            seen_from TIMESTAMP NOT NULL,
            seen_until TIMESTAMP
        );
        CREATE INDEX idx_usage_sighting_open ON usage_sightings (server_id, seen_until);
        CREATE TABLE feature_prices (
            feature_name VARCHAR NOT NULL,
            feature_version VARCHAR NOT NULL,
            seat_price DOUBLE PRECISION NOT NULL,
            updated_by VARCHAR NOT NULL,
            updated_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
            PRIMARY KEY (feature_name, feature_version)
        );
        CREATE TABLE harvest_policy (
            id INTEGER PRIMARY KEY,
            enabled BOOLEAN NOT NULL,
            warn_after_days INTEGER NOT NULL,
            release_after_days INTEGER NOT NULL,
            updated_by VARCHAR NOT NULL,
            updated_at TIMESTAMP NOT NULL DEFAULT current_timestamp
        );
        ALTER TABLE allocations ADD COLUMN idle_warned_at TIMESTAMP;
        """,
    ),
    (
        18,
        "single sign-on: break-glass accounts, linked IdP identities, the local sign-in switch "
        "and per-provider role mappings",
        # user_identities links an OIDC subject of a provider to a VLM user (one user may have
        # several); sign_in_policy holds one row (id 1) once an admin set it (no row: local
        # sign-in on); sso_provider_settings holds what an admin set on the Users page for a
        # provider, replacing that provider's [vlm.sso.<provider>] mapping in secrets.toml.
        """
        ALTER TABLE users ADD COLUMN break_glass BOOLEAN DEFAULT FALSE;
        CREATE TABLE user_identities (
            provider VARCHAR NOT NULL,
            subject VARCHAR NOT NULL,
            username VARCHAR NOT NULL,
            email VARCHAR NOT NULL DEFAULT '',
            linked_at TIMESTAMP NOT NULL DEFAULT current_timestamp,
            last_sign_in_at TIMESTAMP,
            PRIMARY KEY (provider, subject)
        );
        CREATE INDEX idx_user_identity_user ON user_identities (username);
        CREATE TABLE sign_in_policy (
            id INTEGER PRIMARY KEY,
            local_sign_in BOOLEAN NOT NULL,
            updated_by VARCHAR NOT NULL,
            updated_at TIMESTAMP NOT NULL DEFAULT current_timestamp
        );
        CREATE TABLE sso_provider_settings (
            provider VARCHAR PRIMARY KEY,
            auto_create BOOLEAN NOT NULL,
            role_claim VARCHAR NOT NULL,
            role_map VARCHAR NOT NULL,
            updated_by VARCHAR NOT NULL,
            updated_at TIMESTAMP NOT NULL DEFAULT current_timestamp
        );
        """,
    ),
]


def migration_sql(sql: MigrationSql, dialect: str) -> str:
    """The text of a migration for a database engine."""
    return sql if isinstance(sql, str) else sql.get(dialect, "")


def migrate(db: Database) -> list[int]:
    """Apply every migration not yet recorded; return the versions applied now. Each one is
    checked and applied inside one write, so replicas starting together (whose writes take turns)
    never apply a migration twice."""
    db.write(
        lambda cur: cur.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
            "name VARCHAR, applied_at TIMESTAMP DEFAULT current_timestamp)"
        )
    )
    done = {row[0] for row in db.query("SELECT version FROM schema_migrations")}
    applied = []
    for version, name, texts in MIGRATIONS:
        if version in done:
            continue
        sql = migration_sql(texts, db.dialect)

        def apply(cur, sql=sql, version=version, name=name) -> bool:
            recorded = cur.execute(
                "SELECT COUNT(*) FROM schema_migrations WHERE version = ?", [version]
            ).fetchone()
            if recorded[0]:
                return False
            if sql.strip():
                cur.execute(sql)
            cur.execute(
                "INSERT INTO schema_migrations (version, name) VALUES (?, ?)", [version, name]
            )
            return True

        if db.write(apply):
            applied.append(version)
    return applied

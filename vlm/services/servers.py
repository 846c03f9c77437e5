"""Admin use cases for physical FNE license servers: add, edit, remove, test, list, features."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from vlm.context import ServiceContext
from vlm.domain import (
    CA_PATH_MAX_LENGTH,
    DESCRIPTION_MAX_LENGTH,
    INSTANCE_MAX_LENGTH,
    SERVER_PASSWORD_MAX_LENGTH,
    SERVER_USERNAME_MAX_LENGTH,
    TIMEOUT_MAX_SECONDS,
    TIMEOUT_MIN_SECONDS,
    Actor,
    Conflict,
    NotFound,
    PermissionDenied,
    Role,
    ValidationError,
    bounded_float,
    clean_text,
    optional_text,
    record_id,
    redact_userinfo,
    secret_text,
    validate_base_url,
    validate_flag,
    validate_name,
)
from vlm.flexnet.connection import ServerConnection
from vlm.services import audit
from vlm.services.permissions import require_admin, require_admin_in
from vlm.store.figures import (
    COUNTED,
    LICENSE_KIND_FIGURES,
    LICENSE_KIND_LABELS,
    METERED,
    OTHER,
    SERVER_FEATURE_FIGURES,
    UNCOUNTED,
    license_kind,
)

REDACTED_COLUMNS = ("base_url", "last_error")


@dataclass(frozen=True)
class ServerInput:
    """What an admin types to connect a license server."""

    name: str
    base_url: str
    instance: str = "~"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    verify_tls: bool = True
    ca_path: str | None = None
    timeout_seconds: float = 10.0
    description: str = ""


@dataclass(frozen=True)
class ConnectionCheck:
    ok: bool
    message: str
    latency_ms: float
    features: int = 0
    security: str | None = None


def _validated(data: ServerInput) -> dict[str, Any]:
    """Every field of a ServerInput checked (the password too), as the row to store."""
    if not isinstance(data, ServerInput):
        raise ValidationError("the server settings are missing", field="name")
    instance = optional_text(data.instance, "instance", max_len=INSTANCE_MAX_LENGTH) or "~"
    if "/" in instance:
        raise ValidationError("instance must be '~' or a CLS instance id", field="instance")
    secret_text(data.password, "password", max_len=SERVER_PASSWORD_MAX_LENGTH)
    return {
        "name": validate_name(data.name, "server name"),
        "base_url": validate_base_url(data.base_url),
        "instance": instance,
        "username": optional_text(
            data.username, "username", max_len=SERVER_USERNAME_MAX_LENGTH, label="user"
        )
        or None,
        "verify_tls": validate_flag(data.verify_tls, "verify_tls"),
        "ca_path": optional_text(
            data.ca_path, "ca_path", max_len=CA_PATH_MAX_LENGTH, label="CA bundle path"
        )
        or None,
        "timeout_seconds": bounded_float(
            data.timeout_seconds,
            "timeout",
            minimum=TIMEOUT_MIN_SECONDS,
            maximum=TIMEOUT_MAX_SECONDS,
            label="timeout (seconds)",
        ),
        "description": _description(data.description),
    }


def _description(value: object) -> str:
    if value is None:
        return ""
    return clean_text(
        value, "description", max_len=DESCRIPTION_MAX_LENGTH, required=False, multiline=True
    )


def _public(row: dict[str, Any]) -> dict[str, Any]:
    """A server row without its secret and with credentials in URLs redacted, for audit and
    display."""
    return {
        k: redact_userinfo(v) if k in REDACTED_COLUMNS else v
        for k, v in row.items()
        if k != "password_encrypted"
    }


def get_server(ctx: ServiceContext, actor: Actor, server_id: int) -> dict[str, Any]:
    require_admin(actor)
    server_id = record_id(server_id, "server")
    rows = ctx.db.query_dicts("SELECT * FROM license_servers WHERE id = ?", [server_id])
    if not rows:
        raise NotFound(f"license server {server_id} does not exist")
    return _public(rows[0])


def add_server(ctx: ServiceContext, actor: Actor, data: ServerInput) -> int:
    """Connect a new license server; the password is stored encrypted."""
    require_admin(actor)
    values = _validated(data)
    values["password_encrypted"] = ctx.secrets.encrypt(data.password)

    def write(cur):
        require_admin_in(cur, actor)
        if cur.execute("SELECT 1 FROM license_servers WHERE name = ?", [values["name"]]).fetchone():
            raise Conflict(f"a server named '{values['name']}' exists already", field="name")
        cols = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        server_id = cur.execute(
            f"INSERT INTO license_servers ({cols}) VALUES ({marks}) RETURNING id",
            list(values.values()),
        ).fetchone()[0]
        audit.record(cur, actor, "server.add", "license_server", server_id, None, _public(values))
        return server_id

    return ctx.db.write(write)


def edit_server(
    ctx: ServiceContext, actor: Actor, server_id: int, data: ServerInput, *, keep_password: bool
) -> None:
    """Change a server's connection; an empty password with keep_password keeps the stored one."""
    require_admin(actor)
    server_id = record_id(server_id, "server")
    keep_password = validate_flag(keep_password, "keep_password")
    values = _validated(data)
    if not keep_password:
        values["password_encrypted"] = ctx.secrets.encrypt(data.password)

    def write(cur):
        require_admin_in(cur, actor)
        before = cur.execute("SELECT * FROM license_servers WHERE id = ?", [server_id])
        names = [d[0] for d in before.description]
        row = before.fetchone()
        if row is None:
            raise NotFound(f"license server {server_id} does not exist")
        old = dict(zip(names, row, strict=True))
        clash = cur.execute(
            "SELECT 1 FROM license_servers WHERE name = ? AND id <> ?", [values["name"], server_id]
        ).fetchone()
        if clash:
            raise Conflict(f"a server named '{values['name']}' exists already", field="name")
        sets = ", ".join(f"{k} = ?" for k in values)
        cur.execute(
            f"UPDATE license_servers SET {sets} WHERE id = ?", [*values.values(), server_id]
        )
        audit.record(
            cur, actor, "server.edit", "license_server", server_id, _public(old), _public(values)
        )

    ctx.db.write(write)


def remove_server(ctx: ServiceContext, actor: Actor, server_id: int) -> None:
    """Remove a server; refused while a VLM exposes any of its features."""
    require_admin(actor)
    server_id = record_id(server_id, "server")

    def write(cur):
        require_admin_in(cur, actor)
        row = cur.execute("SELECT name FROM license_servers WHERE id = ?", [server_id]).fetchone()
        if row is None:
            raise NotFound(f"license server {server_id} does not exist")
        users = cur.execute(
            "SELECT DISTINCT v.name FROM vlm_features vf JOIN vlms v ON v.id = vf.vlm_id "
            "JOIN server_features sf ON sf.id = vf.server_feature_id WHERE sf.server_id = ? "
            "UNION SELECT v.name FROM vlm_servers vs JOIN vlms v ON v.id = vs.vlm_id "
            "WHERE vs.server_id = ? ORDER BY 1",
            [server_id, server_id],
        ).fetchall()
        if users:
            names = ", ".join(u[0] for u in users)
            raise Conflict(f"server '{row[0]}' is used by virtual license manager(s): {names}")
        sf_ids = "SELECT id FROM server_features WHERE server_id = ?"
        cur.execute(
            f"DELETE FROM utilization_snapshots WHERE server_feature_id IN ({sf_ids})", [server_id]
        )
        for table in ("server_features", "reservation_mirror", "sync_conflicts"):
            cur.execute(f"DELETE FROM {table} WHERE server_id = ?", [server_id])
        cur.execute("DELETE FROM license_servers WHERE id = ?", [server_id])
        audit.record(cur, actor, "server.remove", "license_server", server_id, {"name": row[0]})

    ctx.db.write(write)


def check_connection(ctx: ServiceContext, actor: Actor, data: ServerInput) -> ConnectionCheck:
    """Try to reach a server with the given settings: health, login and the feature list."""
    require_admin(actor)
    from vlm.flexnet.errors import FlexNetError

    connection = ServerConnection.from_record(_validated(data), data.password)
    started = time.perf_counter()
    try:
        with connection.client() as client:
            health = client.health()
            features = client.feature_totals()
    except FlexNetError as exc:
        elapsed = (time.perf_counter() - started) * 1000
        message = redact_userinfo(f"{type(exc).__name__}: {exc.message}")
        return ConnectionCheck(False, message, elapsed)
    elapsed = (time.perf_counter() - started) * 1000
    return ConnectionCheck(
        True,
        f"connected: {len(features)} features ({_kinds_in_words(features)})",
        elapsed,
        features=len(features),
        security=str(health.get("security")) if isinstance(health, dict) else None,
    )


def _kinds_in_words(features: list[Any]) -> str:
    """How many of the listed features are of each license kind, e.g. '8 counted concurrent,
    1 metered' (kinds with none are left out)."""
    kinds = Counter(
        license_kind(concurrent=f.concurrent, uncounted=f.uncounted, metered=f.metered)
        for f in features
    )
    return (
        ", ".join(
            f"{kinds[kind]} {label.lower()}"
            for kind, label in LICENSE_KIND_LABELS.items()
            if kinds[kind]
        )
        or "none listed"
    )


def check_saved_server(ctx: ServiceContext, actor: Actor, server_id: int) -> ConnectionCheck:
    """Test the connection of a stored server with its stored (decrypted) password."""
    require_admin(actor)
    server_id = record_id(server_id, "server")
    rows = ctx.db.query_dicts("SELECT * FROM license_servers WHERE id = ?", [server_id])
    if not rows:
        raise NotFound(f"license server {server_id} does not exist")
    row = rows[0]
    data = ServerInput(
        name=row["name"],
        base_url=row["base_url"],
        instance=row["instance"],
        username=row["username"],
        password=ctx.secrets.decrypt(row["password_encrypted"]),
        verify_tls=row["verify_tls"],
        ca_path=row["ca_path"],
        timeout_seconds=row["timeout_seconds"],
    )
    return check_connection(ctx, actor, data)


def drift(ctx: ServiceContext, actor: Actor, server_id: int) -> pd.DataFrame:
    """What VLM wants on a server versus what the last pull found there (admins)."""
    require_admin(actor)
    server_id = record_id(server_id, "server")
    from vlm.sync.drift import drift_report

    return drift_report(ctx, server_id)


def _sum_of_kind(kind: str, expression: str, name: str) -> str:
    """SQL: the sum of an expression over one license kind's rows of LICENSE_KIND_FIGURES."""
    rows = f"FILTER (WHERE k.license_kind = '{kind}')"
    return f"COALESCE(SUM({expression}) {rows}, 0)::INTEGER AS {name}"


LIST_SERVERS_SQL = f"""
SELECT s.id, s.name, s.base_url, s.instance, s.username, s.verify_tls, s.description,
    s.status, s.last_sync_at, s.last_success_at, s.last_error, s.last_latency_ms,
    {_sum_of_kind(COUNTED, "k.features", "features")},
    {_sum_of_kind(COUNTED, "k.total", "total")},
    {_sum_of_kind(COUNTED, "k.used", "used")},
    {_sum_of_kind(COUNTED, "k.total - k.used", "available")},
    {_sum_of_kind(METERED, "k.features", "metered_features")},
    {_sum_of_kind(UNCOUNTED, "k.features", "uncounted_features")},
    {_sum_of_kind(OTHER, "k.features", "other_features")}
FROM license_servers s LEFT JOIN ({LICENSE_KIND_FIGURES}) AS k ON k.server_id = s.id
GROUP BY ALL ORDER BY s.name
"""


def list_servers(ctx: ServiceContext, actor: Actor) -> pd.DataFrame:
    """Servers with status, last sync, last error and their license figures (admins and
    analysts): features, total, used and available count concurrent counted licenses only;
    metered, uncounted and other features are counted apart."""
    require_can_read_estate(actor)
    frame = ctx.db.query_df(LIST_SERVERS_SQL)
    for column in REDACTED_COLUMNS:
        frame[column] = frame[column].map(redact_userinfo)
    return frame


def require_can_read_estate(actor: Actor) -> None:
    """Physical-server detail is for admins and analysts, not managers."""
    if actor.role is Role.MANAGER:
        raise PermissionDenied("managers see only their pools, not license servers")


def server_features(
    ctx: ServiceContext, actor: Actor, server_id: int | None = None
) -> pd.DataFrame:
    """Each server feature with total, used, reserved, pooled, poolable, deficit and expiry."""
    require_can_read_estate(actor)
    if server_id is not None:
        server_id = record_id(server_id, "server")
    where, params = ("WHERE server_id = ?", [server_id]) if server_id is not None else ("", [])
    return ctx.db.query_df(
        f"SELECT * FROM ({SERVER_FEATURE_FIGURES}) {where} "
        "ORDER BY server_name, feature_name, feature_version",
        params,
    )

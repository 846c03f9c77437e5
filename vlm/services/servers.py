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
from vlm.store import servers as store
from vlm.store.drift import drift_report
from vlm.store.features import server_feature_figures
from vlm.store.figures import LICENSE_KIND_LABELS, license_kind

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
    row = store.server_row(ctx.db, server_id)
    if row is None:
        raise NotFound(f"license server {server_id} does not exist")
    return _public(row)


def add_server(ctx: ServiceContext, actor: Actor, data: ServerInput) -> int:
    """Connect a new license server; the password is stored encrypted."""
    require_admin(actor)
    values = _validated(data)
    values["password_encrypted"] = ctx.secrets.encrypt(data.password)

    def write(cur):
        require_admin_in(cur, actor)
        if store.server_name_taken(cur, values["name"]):
            raise Conflict(f"a server named '{values['name']}' exists already", field="name")
        server_id = store.insert_server(cur, values)
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
        old = store.server_row_in(cur, server_id)
        if old is None:
            raise NotFound(f"license server {server_id} does not exist")
        if store.server_name_taken(cur, values["name"], other_than=server_id):
            raise Conflict(f"a server named '{values['name']}' exists already", field="name")
        store.update_server(cur, server_id, values)
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
        name = store.server_name(cur, server_id)
        if name is None:
            raise NotFound(f"license server {server_id} does not exist")
        users = store.vlms_using_server(cur, server_id)
        if users:
            names = ", ".join(users)
            raise Conflict(f"server '{name}' is used by virtual license manager(s): {names}")
        store.delete_server(cur, server_id)
        audit.record(cur, actor, "server.remove", "license_server", server_id, {"name": name})

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
    row = store.server_row(ctx.db, server_id)
    if row is None:
        raise NotFound(f"license server {server_id} does not exist")
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
    return drift_report(ctx.db, server_id)


def list_servers(ctx: ServiceContext, actor: Actor) -> pd.DataFrame:
    """Servers with status, last sync, last error and their license figures (admins and
    analysts): features, total, used and available count concurrent counted licenses only;
    metered, uncounted and other features are counted apart."""
    require_can_read_estate(actor)
    frame = store.servers_with_figures(ctx.db)
    for column in REDACTED_COLUMNS:
        frame[column] = frame[column].map(redact_userinfo)
    return frame


def server_names(ctx: ServiceContext, actor: Actor) -> dict[int, str]:
    """Every server's name by id, in name order (admins and analysts): for pickers."""
    require_can_read_estate(actor)
    return store.server_names(ctx.db)


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
    return server_feature_figures(ctx.db, server_id)

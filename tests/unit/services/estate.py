"""Builders for a small estate written straight into the store (no license server needed)."""

from __future__ import annotations

from tests.conftest import ADMIN, ANALYST, MANAGER, OTHER_MANAGER
from vlm.context import ServiceContext
from vlm.services import users


def add_server(ctx: ServiceContext, name: str, features: dict[tuple[str, str], int]) -> int:
    """A license server row with counted concurrent features (as an inventory pull leaves it)."""

    def write(cur):
        server_id = cur.execute(
            "INSERT INTO license_servers (name, base_url, status) VALUES (?, ?, 'ok') RETURNING id",
            [name, f"http://{name}.invalid:7070"],
        ).fetchone()[0]
        for (feature, version), total in features.items():
            cur.execute(
                "INSERT INTO server_features (server_id, feature_name, feature_version, total) "
                "VALUES (?, ?, ?, ?)",
                [server_id, feature, version, total],
            )
        return server_id

    return ctx.db.write(write)


def feature_ids(ctx: ServiceContext, server_id: int | None = None) -> list[int]:
    where, params = ("WHERE server_id = ?", [server_id]) if server_id else ("", [])
    return [
        r[0] for r in ctx.db.query(f"SELECT id FROM server_features {where} ORDER BY id", params)
    ]


def add_people(ctx: ServiceContext) -> None:
    from vlm.domain import SYSTEM_ACTOR

    for actor in (ADMIN, MANAGER, OTHER_MANAGER, ANALYST):
        users.add_user(ctx, SYSTEM_ACTOR, actor.username, actor.role, password="password-123")

"""Personal access tokens: shown once and stored hashed, refused when missing, unknown, revoked or
expired, stopped at once when their user is disabled, scoped to the user's role as stored now,
read-only ones refused on writes by the service itself, audited on create and revoke."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import httpx
import pytest

from tests.api.conftest import ADMIN, CAD_POOL, MANAGER, RunningApi, assert_problem
from vlm.domain import SYSTEM_ACTOR, NotFound, PermissionDenied, Role, ValidationError
from vlm.services import allocations, pools, tokens, users, vlms
from vlm.services.tokens import InvalidToken, TokenActor


def _client(api: RunningApi, token: str) -> httpx.Client:
    return httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {token}"}, timeout=30)


def _status(api: RunningApi, token: str, path: str = "/me") -> int:
    with _client(api, token) as client:
        return client.get(path).status_code


@pytest.mark.parametrize(
    "header",
    [None, "Bearer", "Bearer vlm_not-a-real-token", "Basic YWRtaW46YWRtaW4=", "Bearer abc"],
)
def test_requests_without_a_valid_token_are_unauthenticated(
    api: RunningApi, header: str | None
) -> None:
    headers = {} if header is None else {"Authorization": header}
    with httpx.Client(base_url=api.url, headers=headers, timeout=30) as client:
        response = client.get("/pools")
    assert_problem(response, 401)
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_a_token_is_shown_once_and_stored_as_its_hash_only(api: RunningApi) -> None:
    made = tokens.create_token(api.ctx, MANAGER, "provisioning")

    assert made.token.startswith("vlm_") and len(made.token) > 40
    assert made.token not in repr(made)
    stored = api.ctx.db.query_dicts("""SELECT * FROM api_tokens WHERE id = ?""", [made.id])[0]
    assert made.token not in {str(v) for v in stored.values()}
    assert stored["token_hash"] == tokens.hash_token(made.token)
    listed = tokens.list_own_tokens(api.ctx, MANAGER)
    row = listed[listed["id"] == made.id].iloc[0]
    assert row["status"] == "active" and row["hint"] == made.token[:8]
    assert "token_hash" not in listed.columns
    assert _status(api, made.token) == 200


def test_revoked_and_expired_tokens_stop(api: RunningApi) -> None:
    revoked = tokens.create_token(api.ctx, MANAGER, "to revoke")
    expiring = tokens.create_token(api.ctx, MANAGER, "to expire", expires_at=date.today())
    assert _status(api, revoked.token) == 200 and _status(api, expiring.token) == 200

    tokens.revoke_token(api.ctx, MANAGER, revoked.id)
    past = datetime.now() - timedelta(seconds=1)
    api.ctx.db.write(
        lambda cur: cur.execute(
            """UPDATE api_tokens SET expires_at = ? WHERE id = ?""", [past, expiring.id]
        )
    )

    for token, word in ((revoked.token, "revoked"), (expiring.token, "expired")):
        with _client(api, token) as client:
            body = assert_problem(client.get("/me"), 401)
        assert word in body["detail"]


def test_a_disabled_users_tokens_stop_at_once_and_return_when_enabled(api: RunningApi) -> None:
    user = api.new_user(Role.MANAGER)
    token = tokens.create_token(api.ctx, user, "script").token
    assert _status(api, token) == 200

    users.set_disabled(api.ctx, SYSTEM_ACTOR, user.username, True)
    assert _status(api, token) == 401

    users.set_disabled(api.ctx, SYSTEM_ACTOR, user.username, False)
    assert _status(api, token) == 200


def test_a_demoted_admin_loses_admin_rights_at_once(api: RunningApi) -> None:
    user = api.new_user(Role.ADMIN)
    token = tokens.create_token(api.ctx, user, "admin script").token
    with _client(api, token) as client:
        assert client.get("/audit").status_code == 200

        users.change_role(api.ctx, SYSTEM_ACTOR, user.username, Role.ANALYST)

        assert client.get("/me").json()["role"] == "analyst"
        assert_problem(client.get("/audit"), 403)
        assert_problem(client.delete("/vlms/1"), 403)


def test_use_is_recorded_at_most_once_a_minute(api: RunningApi) -> None:
    made = tokens.create_token(api.ctx, MANAGER, "used")

    def last_used() -> datetime | None:
        return api.ctx.db.scalar("""SELECT last_used_at FROM api_tokens WHERE id = ?""", [made.id])

    assert last_used() is None
    assert _status(api, made.token) == 200
    first = last_used()
    assert first is not None
    assert _status(api, made.token) == 200
    assert last_used() == first


def test_a_read_only_token_is_refused_by_the_services_themselves(api: RunningApi) -> None:
    actor = tokens.authenticate(api.ctx, api.token(MANAGER, read_only=True))

    assert isinstance(actor, TokenActor) and actor.read_only and actor.role is Role.MANAGER
    with pytest.raises(PermissionDenied, match="read-only"):
        tokens.require_writable(actor)
    with pytest.raises(PermissionDenied, match="read-only"):
        tokens.create_token(api.ctx, actor, "minted by a read-only token")
    writable = tokens.authenticate(api.ctx, api.token(MANAGER))
    tokens.require_writable(writable)


def test_every_write_service_refuses_a_read_only_token_inside_its_transaction(
    api: RunningApi,
) -> None:
    actor = tokens.authenticate(api.ctx, api.token(ADMIN, read_only=True))
    pool = api.pool_id(CAD_POOL)
    before = api.ctx.db.scalar("""SELECT COUNT(*) FROM allocations""")
    writes = [
        lambda: allocations.allocate(
            api.ctx, actor, pool, ("cad_modeler", "2024.1"), "USER", "read-only-write"
        ),
        lambda: pools.update_pool(api.ctx, actor, pool, description="read-only"),
        lambda: vlms.delete_vlm(api.ctx, actor, 1),
        lambda: users.set_disabled(api.ctx, actor, MANAGER.username, True),
    ]
    for write in writes:
        with pytest.raises(PermissionDenied, match="read-only"):
            write()
    assert api.ctx.db.scalar("""SELECT COUNT(*) FROM allocations""") == before


def test_authenticate_refuses_what_is_not_a_token(api: RunningApi) -> None:
    for value in (None, 42, "", "vlm_" + "x" * 500, "not-vlm"):
        with pytest.raises(InvalidToken):
            tokens.authenticate(api.ctx, value)


def test_token_input_is_checked(api: RunningApi) -> None:
    with pytest.raises(ValidationError) as empty:
        tokens.create_token(api.ctx, MANAGER, "  ")
    assert empty.value.field == "name"
    with pytest.raises(ValidationError) as past:
        tokens.create_token(api.ctx, MANAGER, "old", expires_at=date.today() - timedelta(days=1))
    assert past.value.field == "expires_at"
    with pytest.raises(ValidationError) as flag:
        tokens.create_token(api.ctx, MANAGER, "flag", read_only="yes")
    assert flag.value.field == "read_only"


def test_users_revoke_their_own_tokens_and_admins_anyones(api: RunningApi) -> None:
    mine = tokens.create_token(api.ctx, MANAGER, "mine")
    other = api.new_user(Role.MANAGER)
    theirs = tokens.create_token(api.ctx, other, "theirs")

    with pytest.raises(NotFound):
        tokens.revoke_token(api.ctx, MANAGER, theirs.id)
    with pytest.raises(PermissionDenied):
        tokens.list_all_tokens(api.ctx, MANAGER)
    assert _status(api, theirs.token) == 200

    tokens.revoke_token(api.ctx, MANAGER, mine.id)
    tokens.revoke_token(api.ctx, ADMIN, theirs.id)

    assert _status(api, mine.token) == 401 and _status(api, theirs.token) == 401
    everyone = tokens.list_all_tokens(api.ctx, ADMIN)
    revoked = everyone[everyone["id"].isin([mine.id, theirs.id])]
    assert set(revoked["status"]) == {"revoked"}
    assert set(revoked["revoked_by"]) == {MANAGER.username, ADMIN.username}
    own = tokens.list_own_tokens(api.ctx, other)
    assert set(own["username"]) == {other.username}


def test_creating_and_revoking_are_audited_without_the_secret(api: RunningApi) -> None:
    made = tokens.create_token(api.ctx, MANAGER, "audited", read_only=True)
    tokens.revoke_token(api.ctx, MANAGER, made.id)

    rows = api.ctx.db.query_dicts(
        """SELECT actor, action, before, after FROM audit_log
        WHERE target_type = 'api_token' AND target_id = ? ORDER BY id""",
        [str(made.id)],
    )
    assert [(r["actor"], r["action"]) for r in rows] == [
        (MANAGER.username, "token.create"),
        (MANAGER.username, "token.revoke"),
    ]
    assert '"read_only": true' in rows[0]["after"] and '"name": "audited"' in rows[0]["after"]
    assert all(made.token not in str(r) and made.token[4:20] not in str(r) for r in rows)

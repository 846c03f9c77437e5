"""The permission checks themselves: who passes, and what a refusal tells the user.

The permission matrix (tests/security) proves which calls are refused; these tests pin what the
refusal says and which form field it belongs to, because the UI shows it next to that field.
"""

from __future__ import annotations

import pytest

from tests.conftest import ADMIN, ANALYST, MANAGER, OTHER_MANAGER
from tests.unit.services.estate import add_people, add_server, feature_ids
from vlm.domain import SYSTEM_ACTOR, Actor, NotFound, PermissionDenied, Role
from vlm.services import permissions, pools, users, vlms
from vlm.services.tokens import TokenActor

CAD = ("cad", "1.0")


@pytest.fixture
def pool(ctx) -> int:
    add_people(ctx)
    add_server(ctx, "east", {CAD: 10})
    vlm_id = vlms.create_vlm(ctx, ADMIN, "eng", feature_ids(ctx))
    return pools.create_pool(ctx, ADMIN, vlm_id, "p", MANAGER.username, {CAD: 5})


def in_write(ctx, check):
    """Run a `*_in` check inside a write transaction, as services do."""
    return ctx.db.write(check)


def test_only_admins_pass_require_admin() -> None:
    permissions.require_admin(ADMIN)
    for actor in (MANAGER, ANALYST):
        with pytest.raises(PermissionDenied) as refused:
            permissions.require_admin(actor)
        assert refused.value.message == f"{actor.username} ({actor.role.value}) is not an admin"


def test_analysts_may_not_write_and_the_refusal_names_them() -> None:
    permissions.require_can_write(ADMIN)
    permissions.require_can_write(MANAGER)
    with pytest.raises(PermissionDenied) as refused:
        permissions.require_can_write(ANALYST)
    assert refused.value.message == "dave is an analyst and may not change anything"


def test_pool_manager_names_the_manager_or_refuses_an_unknown_pool(ctx, pool) -> None:
    assert permissions.pool_manager(ctx.db, pool) == MANAGER.username
    with pytest.raises(NotFound) as missing:
        permissions.pool_manager(ctx.db, pool + 100)
    assert missing.value.field == "pool"
    assert missing.value.message == f"pool {pool + 100} does not exist"


def test_pool_write_is_for_admins_and_the_pools_own_manager(ctx, pool) -> None:
    permissions.require_pool_write(ctx.db, ADMIN, pool)
    permissions.require_pool_write(ctx.db, MANAGER, pool)
    with pytest.raises(PermissionDenied) as foreign:
        permissions.require_pool_write(ctx.db, OTHER_MANAGER, pool)
    assert foreign.value.field == "pool"
    assert foreign.value.message == f"pool {pool} is managed by someone else"
    with pytest.raises(PermissionDenied) as analyst:
        permissions.require_pool_write(ctx.db, ANALYST, pool)
    assert "analyst" in analyst.value.message
    with pytest.raises(NotFound):
        permissions.require_pool_write(ctx.db, ADMIN, pool + 100)


def test_a_manager_cannot_tell_another_managers_pool_from_a_missing_one(ctx, pool) -> None:
    permissions.require_pool_read(ctx.db, ADMIN, pool)
    permissions.require_pool_read(ctx.db, ANALYST, pool)
    permissions.require_pool_read(ctx.db, MANAGER, pool)
    with pytest.raises(NotFound) as hidden:
        permissions.require_pool_read(ctx.db, OTHER_MANAGER, pool)
    with pytest.raises(NotFound) as missing:
        permissions.require_pool_read(ctx.db, OTHER_MANAGER, pool + 100)
    assert hidden.value.field == missing.value.field == "pool"
    assert hidden.value.message == f"pool {pool} does not exist"


def test_pool_scope_limits_managers_to_their_own_pools(ctx, pool) -> None:
    assert permissions.pool_scope_sql(MANAGER) == ("p.manager = ?", ["bob"])
    assert permissions.pool_scope_sql(MANAGER, "x") == ("x.manager = ?", ["bob"])
    assert permissions.pool_scope_sql(ADMIN) == ("TRUE", [])
    assert permissions.pool_scope_sql(ANALYST) == ("TRUE", [])
    for actor, expected in ((MANAGER, [pool]), (OTHER_MANAGER, []), (ANALYST, [pool])):
        where, params = permissions.pool_scope_sql(actor, "q")
        seen = [r[0] for r in ctx.db.query(f"SELECT id FROM pools q WHERE {where}", params)]
        assert seen == expected, actor


def test_the_stored_role_counts_inside_a_write(ctx, pool) -> None:
    users.change_role(ctx, ADMIN, OTHER_MANAGER.username, Role.ANALYST)
    assert in_write(ctx, lambda cur: permissions.require_active_user_in(cur, ADMIN)) is Role.ADMIN
    assert (
        in_write(ctx, lambda cur: permissions.require_active_user_in(cur, OTHER_MANAGER))
        is Role.ANALYST
    )
    assert (
        in_write(ctx, lambda cur: permissions.require_active_user_in(cur, SYSTEM_ACTOR))
        is Role.ADMIN
    )


def test_unknown_and_disabled_users_are_refused_by_name(ctx, pool) -> None:
    ghost = Actor("ghost", Role.ADMIN)
    with pytest.raises(PermissionDenied) as unknown:
        in_write(ctx, lambda cur: permissions.require_active_user_in(cur, ghost))
    assert unknown.value.message == "user 'ghost' does not exist"
    users.set_disabled(ctx, ADMIN, MANAGER.username, True)
    with pytest.raises(PermissionDenied) as disabled:
        in_write(ctx, lambda cur: permissions.require_active_user_in(cur, MANAGER))
    assert disabled.value.message == "user 'bob' is disabled"
    a_copy_of_system = Actor(SYSTEM_ACTOR.username, SYSTEM_ACTOR.role)
    with pytest.raises(PermissionDenied):
        in_write(ctx, lambda cur: permissions.require_active_user_in(cur, a_copy_of_system))


def test_a_read_only_token_may_not_write_even_for_an_admin(ctx, pool) -> None:
    reader = TokenActor(ADMIN.username, Role.ADMIN, token_id=1, read_only=True)
    writer = TokenActor(ADMIN.username, Role.ADMIN, token_id=2)
    with pytest.raises(PermissionDenied) as refused:
        in_write(ctx, lambda cur: permissions.require_active_user_in(cur, reader))
    assert refused.value.message == "this API token is read-only and may not change anything"
    assert in_write(ctx, lambda cur: permissions.require_active_user_in(cur, writer)) is Role.ADMIN


def test_require_admin_in_reads_the_stored_role(ctx, pool) -> None:
    in_write(ctx, lambda cur: permissions.require_admin_in(cur, ADMIN))
    users.add_user(ctx, SYSTEM_ACTOR, "frank", Role.ADMIN, password="password-123")
    users.change_role(ctx, ADMIN, "frank", Role.MANAGER)
    with pytest.raises(PermissionDenied) as demoted:
        in_write(ctx, lambda cur: permissions.require_admin_in(cur, Actor("frank", Role.ADMIN)))
    assert demoted.value.message == "frank (manager) is not an admin"


def test_pool_write_in_reads_the_stored_manager_and_role(ctx, pool) -> None:
    in_write(ctx, lambda cur: permissions.require_pool_write_in(cur, ADMIN, pool))
    in_write(ctx, lambda cur: permissions.require_pool_write_in(cur, MANAGER, pool))
    with pytest.raises(PermissionDenied) as foreign:
        in_write(ctx, lambda cur: permissions.require_pool_write_in(cur, OTHER_MANAGER, pool))
    assert foreign.value.field == "pool"
    assert foreign.value.message == f"pool {pool} is managed by someone else"
    with pytest.raises(PermissionDenied) as analyst:
        in_write(ctx, lambda cur: permissions.require_pool_write_in(cur, ANALYST, pool))
    assert analyst.value.message == "dave is an analyst and may not change anything"
    with pytest.raises(NotFound) as missing:
        in_write(ctx, lambda cur: permissions.require_pool_write_in(cur, ADMIN, pool + 100))
    assert missing.value.field == "pool"
    assert missing.value.message == f"pool {pool + 100} does not exist"
    pools.update_pool(ctx, ADMIN, pool, manager=OTHER_MANAGER.username)
    in_write(ctx, lambda cur: permissions.require_pool_write_in(cur, OTHER_MANAGER, pool))
    with pytest.raises(PermissionDenied):
        in_write(ctx, lambda cur: permissions.require_pool_write_in(cur, MANAGER, pool))

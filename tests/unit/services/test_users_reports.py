import pytest

from tests.conftest import ADMIN, ANALYST, MANAGER, OTHER_MANAGER
from tests.unit.services.estate import add_people, add_server, feature_ids
from vlm.domain import Conflict, PermissionDenied, ValidationError
from vlm.services import allocations, exports, pools, reports, users, vlms


def test_one_time_password_must_be_changed(ctx):
    add_people(ctx)
    otp = users.add_user(ctx, ADMIN, "Eve", "manager", display_name="Eve E")
    eve = users.get_user(ctx, "eve")
    assert eve["must_change_password"] and eve["role"] == "manager"
    actor = users.actor_for(ctx, "eve")
    with pytest.raises(PermissionDenied, match="current password is wrong"):
        users.set_own_password(ctx, actor, "wrong-password", "new-password-1")
    with pytest.raises(ValidationError, match="at least 8"):
        users.set_own_password(ctx, actor, otp, "short")
    with pytest.raises(ValidationError, match="must not start or end with a space"):
        users.set_own_password(ctx, actor, otp, " spaced-password ")
    with pytest.raises(ValidationError, match="at most 72 bytes"):
        users.set_own_password(ctx, actor, otp, "é" * 40)
    users.set_own_password(ctx, actor, otp, "new-password-1")
    assert not users.get_user(ctx, "eve")["must_change_password"]
    creds = users.authenticator_credentials(ctx)["usernames"]["eve"]
    assert users.check_password("new-password-1", creds["password"]) and creds["roles"] == [
        "manager"
    ]


def test_admin_guards(ctx):
    add_people(ctx)
    with pytest.raises(Conflict, match="cannot disable yourself"):
        users.set_disabled(ctx, ADMIN, "alice", True)
    with pytest.raises(Conflict, match="last active admin"):
        users.change_role(ctx, ADMIN, "alice", "analyst")
    with pytest.raises(PermissionDenied):
        users.add_user(ctx, MANAGER, "x1", "admin")
    users.set_disabled(ctx, ADMIN, "carol", True)
    with pytest.raises(PermissionDenied, match="unknown or disabled"):
        users.actor_for(ctx, "carol")
    assert "carol" not in users.authenticator_credentials(ctx)["usernames"]
    otp = users.reset_password(ctx, ADMIN, "bob")
    assert users.get_user(ctx, "bob")["must_change_password"] and len(otp) >= 12


def test_reports_are_scoped_and_exports_neutralise_formulas(ctx):
    add_people(ctx)
    add_server(ctx, "east", {("cad", "1.0"): 10})
    vlm_id = vlms.create_vlm(ctx, ADMIN, "eng", feature_ids(ctx))
    bob_pool = pools.create_pool(ctx, ADMIN, vlm_id, "bob's", "bob", {("cad", "1.0"): 4})
    pools.create_pool(ctx, ADMIN, vlm_id, "carol's", "carol", {("cad", "1.0"): 3})
    allocations.allocate(ctx, MANAGER, bob_pool, ("cad", "1.0"), "USER", "u1", 2, "=HYPERLINK(1)")
    assert reports.kpis(ctx, MANAGER)["pools"] == 1
    assert reports.kpis(ctx, ANALYST)["pools"] == 2
    ctx.db.write(
        lambda cur: cur.execute(
            "INSERT INTO server_features (server_id, feature_name, feature_version, total, "
            "metered) SELECT id, 'hours', '1', 2000, TRUE FROM license_servers"
        )
    )
    assert reports.kpis(ctx, ADMIN)["poolable"] == 3
    assert reports.kpis(ctx, ADMIN)["total"] == 10
    assert reports.server_stack(ctx, ADMIN).loc[0, "total"] == 10
    assert len(pools.list_pools(ctx, OTHER_MANAGER)) == 1
    frame = exports.allocations_export(ctx, MANAGER)
    text = exports.to_csv_bytes(frame).decode()
    assert "'=HYPERLINK(1)" in text and ",=HYPERLINK" not in text
    assert exports.allocations_export(ctx, OTHER_MANAGER).empty
    stack = reports.server_stack(ctx, ANALYST).iloc[0]
    assert (stack["allocated"], stack["pooled_unallocated"], stack["poolable"]) == (2, 5, 3)

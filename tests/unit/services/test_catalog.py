"""VLM, pool and server administration rules (docs/architecture.md §3 rules 1, 2, 5, 6, 7)."""

import pytest

from tests.conftest import ADMIN, ANALYST, MANAGER
from tests.unit.services.estate import add_people, add_server, feature_ids
from vlm.domain import Conflict, PermissionDenied, ValidationError
from vlm.services import allocations, audit, pools, reports, servers, vlms


@pytest.fixture
def estate(ctx):
    add_people(ctx)
    east = add_server(ctx, "east", {("cad", "1.0"): 10, ("sim", "2.0"): 4})
    west = add_server(ctx, "west", {("cad", "1.0"): 6})
    return ctx, east, west


def test_a_server_feature_belongs_to_one_vlm(estate):
    ctx, east, _ = estate
    first = feature_ids(ctx, east)
    vlms.create_vlm(ctx, ADMIN, "one", first)
    with pytest.raises(Conflict, match="already exposed by VLM 'one'"):
        vlms.create_vlm(ctx, ADMIN, "two", first[:1])
    assert ctx.db.scalar("SELECT COUNT(*) FROM vlms") == 1


def test_pool_quantity_is_split_most_room_first_and_bounded(estate):
    ctx, east, west = estate
    vlm_id = vlms.create_vlm(ctx, ADMIN, "eng", feature_ids(ctx))
    pool_id = pools.create_pool(ctx, ADMIN, vlm_id, "p", "bob", {("cad", "1.0"): 13})
    portions = dict(
        ctx.db.query(
            "SELECT sf.server_id, pp.quantity FROM pool_portions pp "
            "JOIN server_features sf ON sf.id = pp.server_feature_id"
        )
    )
    assert portions == {east: 10, west: 3}
    bounds = pools.pool_quantity_bounds(ctx, ADMIN, vlm_id, pool_id).set_index("feature_name")
    assert bounds.loc["cad", "quantity"] == 13 and bounds.loc["cad", "maximum"] == 16
    allocations.allocate(ctx, MANAGER, pool_id, ("cad", "1.0"), "USER", "u1", 4)
    with pytest.raises(ValidationError, match="cannot go below the 4 already allocated"):
        pools.update_pool(ctx, ADMIN, pool_id, quantities={("cad", "1.0"): 3})
    pools.update_pool(ctx, ADMIN, pool_id, quantities={("cad", "1.0"): 4})
    figures = pools.pool_features(ctx, MANAGER, pool_id)
    assert figures.loc[0, ["quantity", "allocated", "available"]].tolist() == [4, 4, 0]


def test_delete_vlm_refused_while_pools_depend_and_server_removal_refused(estate):
    ctx, east, west = estate
    vlm_id = vlms.create_vlm(ctx, ADMIN, "eng", feature_ids(ctx, east))
    pool_id = pools.create_pool(ctx, ADMIN, vlm_id, "p", "bob", {("cad", "1.0"): 2})
    with pytest.raises(Conflict, match="still has 1 pool"):
        vlms.delete_vlm(ctx, ADMIN, vlm_id)
    with pytest.raises(Conflict, match="used by virtual license manager"):
        servers.remove_server(ctx, ADMIN, east)
    servers.remove_server(ctx, ADMIN, west)
    assert ctx.db.scalar("SELECT COUNT(*) FROM server_features WHERE server_id = ?", [west]) == 0
    allocations.allocate(ctx, MANAGER, pool_id, ("cad", "1.0"), "USER", "u1", 1)
    impact = pools.deletion_impact(ctx, ADMIN, pool_id)
    assert impact["allocations"] == 1
    with pytest.raises(Conflict, match="now has 1 allocation"):
        pools.delete_pool(ctx, ADMIN, pool_id, confirmed_allocations=0)
    pools.delete_pool(ctx, ADMIN, pool_id, confirmed_allocations=1)
    assert ctx.db.query("SELECT state FROM allocations") == [("removing",)]
    vlms.delete_vlm(ctx, ADMIN, vlm_id)
    actions = audit.audit_log(ctx, ADMIN)["action"].tolist()
    assert {"vlm.create", "pool.create", "pool.delete", "vlm.delete", "server.remove"} <= set(
        actions
    )


def test_over_committed_server_feature_refuses_new_allocations(estate):
    ctx, east, _ = estate
    vlm_id = vlms.create_vlm(ctx, ADMIN, "eng", feature_ids(ctx, east))
    pool_id = pools.create_pool(ctx, ADMIN, vlm_id, "p", "bob", {("cad", "1.0"): 8})
    allocations.allocate(ctx, MANAGER, pool_id, ("cad", "1.0"), "USER", "u1", 2)
    ctx.db.write(
        lambda cur: cur.execute("UPDATE server_features SET total = 5 WHERE feature_name = 'cad'")
    )
    deficits = reports.over_committed(ctx, ADMIN)
    assert deficits.loc[0, "deficit"] == 3
    with pytest.raises(Conflict, match="over-committed"):
        allocations.allocate(ctx, MANAGER, pool_id, ("cad", "1.0"), "USER", "u2", 1)
    assert ctx.db.scalar("SELECT SUM(quantity) FROM pool_portions") == 8


def test_server_password_is_encrypted_and_never_returned(estate):
    ctx, *_ = estate
    server_id = servers.add_server(
        ctx,
        ADMIN,
        servers.ServerInput(
            name="lls", base_url="http://lls:7070", username="admin", password="s3cret!"
        ),
    )
    stored = ctx.db.scalar(
        "SELECT password_encrypted FROM license_servers WHERE id = ?", [server_id]
    )
    assert stored and "s3cret" not in stored and ctx.secrets.decrypt(stored) == "s3cret!"
    assert "password_encrypted" not in servers.get_server(ctx, ADMIN, server_id)
    assert "s3cret" not in "".join(ctx.db.query("SELECT COALESCE(after, '') FROM audit_log")[-1])
    with pytest.raises(ValidationError, match="must look like http"):
        servers.add_server(ctx, ADMIN, servers.ServerInput(name="bad", base_url="lls:7070"))
    with pytest.raises(PermissionDenied):
        servers.list_servers(ctx, MANAGER)
    assert len(servers.list_servers(ctx, ANALYST)) == 3
    with pytest.raises(PermissionDenied):
        servers.server_names(ctx, MANAGER)
    listed = servers.list_servers(ctx, ADMIN)
    named = dict(zip(listed["id"], listed["name"], strict=True))
    assert servers.server_names(ctx, ANALYST) == named

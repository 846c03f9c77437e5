from vlm.services import allocations, pools, reports, vlms
from tests.conftest import ADMIN, MANAGER
from tests.unit.services.estate import add_people, add_server, feature_ids


def test_flow(ctx):
    add_people(ctx)
    east = add_server(ctx, "east", {("cad", "1.0"): 10, ("sim", "2.0"): 4})
    west = add_server(ctx, "west", {("cad", "1.0"): 6})
    vlm_id = vlms.create_vlm(ctx, ADMIN, "eng", feature_ids(ctx))
    pool_id = pools.create_pool(ctx, ADMIN, vlm_id, "team", "bob", {("cad", "1.0"): 12})
    portions = dict(ctx.db.query("SELECT server_feature_id, quantity FROM pool_portions"))
    assert sorted(portions.values()) == [2, 10]
    a = allocations.allocate(ctx, MANAGER, pool_id, ("cad", "1.0"), "ETHERNET", "00:50:56:9a:1b:2c", 3)
    frame = allocations.list_allocations(ctx, MANAGER, pool_id)
    assert frame.loc[0, "host_id"] == "0050569A1B2C" and frame.loc[0, "id"] == a
    print(reports.kpis(ctx, ADMIN))
    print(pools.list_pools(ctx, MANAGER))
    print(vlms.list_vlms(ctx, ADMIN))
    print(reports.server_trend(ctx, ADMIN, days=2))
    assert east and west

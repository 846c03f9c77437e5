"""Bad input gets a clear error naming the problem, and nothing is written."""

import math

import pytest

from tests.conftest import ADMIN, ANALYST, MANAGER, OTHER_MANAGER, base_tables, every_row
from tests.unit.services.estate import add_people, add_server, feature_ids
from vlm.domain import NotFound, PermissionDenied, ValidationError, VlmError
from vlm.services import allocations, exports, pools, reports, servers, users, vlms


@pytest.fixture
def estate(ctx):
    add_people(ctx)
    add_server(ctx, "east", {("cad", "1.0"): 10, ("sim", "2.0"): 4})
    vlm_id = vlms.create_vlm(ctx, ADMIN, "eng", feature_ids(ctx))
    pool_id = pools.create_pool(ctx, ADMIN, vlm_id, "team", "bob", {("cad", "1.0"): 5})
    return ctx, vlm_id, pool_id


def _tables(ctx):
    return [every_row(ctx.db, t) for t in ("allocations", "pool_portions", "pools", "vlms")] + [
        ctx.db.query("SELECT COUNT(*) FROM audit_log")
    ]


@pytest.mark.parametrize(
    ("host_type", "host_id", "count", "message"),
    [
        ("ETHERNET", "12345", 1, "must be 12 hex digits"),
        ("ETHERNET", "ZZ50569A1B2C", 1, "must be 12 hex digits"),
        ("MAC", "0050569A1B2C", 1, "host type 'MAC' is not one of"),
        ("USER", "", 1, "host id is empty"),
        ("USER", "jsmith", 0, "count must be a whole number ≥ 1"),
        ("USER", "jsmith", -2, "count must be a whole number ≥ 1"),
        ("USER", "jsmith", 6, "only 5 of cad 1.0 left in this pool, 6 requested"),
    ],
)
def test_bad_allocation_is_refused_and_nothing_written(estate, host_type, host_id, count, message):
    ctx, _, pool_id = estate
    before = _tables(ctx)
    with pytest.raises(ValidationError, match=message):
        allocations.allocate(ctx, MANAGER, pool_id, ("cad", "1.0"), host_type, host_id, count)
    assert _tables(ctx) == before


def test_quantity_beyond_availability(estate):
    ctx, vlm_id, pool_id = estate
    before = _tables(ctx)
    too_many = "cad 1.0: only 10 can be pooled, 11 requested"
    with pytest.raises(ValidationError, match=too_many) as big:
        pools.update_pool(ctx, ADMIN, pool_id, quantities={("cad", "1.0"): 11})
    assert big.value.field == "quantity"  # the pool form shows it at the quantities
    with pytest.raises(ValidationError, match="only 5 can be pooled"):
        pools.create_pool(ctx, ADMIN, vlm_id, "second", "carol", {("cad", "1.0"): 6})
    assert _tables(ctx) == before


def test_unknown_pool_and_feature(estate):
    ctx, vlm_id, pool_id = estate
    before = _tables(ctx)
    with pytest.raises(NotFound, match="pool 999 does not exist"):
        allocations.allocate(ctx, ADMIN, 999, ("cad", "1.0"), "USER", "u1")
    with pytest.raises(NotFound, match="feature nope 1.0 is not in this pool"):
        allocations.allocate(ctx, MANAGER, pool_id, ("nope", "1.0"), "USER", "u1")
    with pytest.raises(NotFound, match="feature nope 9 is not part of this VLM") as foreign:
        pools.create_pool(ctx, ADMIN, vlm_id, "x", "carol", {("nope", "9"): 1})
    assert foreign.value.field == "quantity"  # the pool form shows it at the quantities
    with pytest.raises(NotFound, match="user 'zed' does not exist"):
        pools.create_pool(ctx, ADMIN, vlm_id, "x", "zed", {("cad", "1.0"): 1})
    assert _tables(ctx) == before


def test_managers_and_analysts_cannot_act_on_pools_not_theirs(estate):
    ctx, vlm_id, pool_id = estate
    allocation = allocations.allocate(ctx, MANAGER, pool_id, ("cad", "1.0"), "USER", "u1")
    before = _tables(ctx)
    for actor in (OTHER_MANAGER, ANALYST):
        with pytest.raises(PermissionDenied):
            allocations.allocate(ctx, actor, pool_id, ("cad", "1.0"), "USER", "u2")
        with pytest.raises(PermissionDenied):
            allocations.update_allocation(ctx, actor, pool_id, allocation, description="x")
        with pytest.raises(PermissionDenied):
            allocations.remove_allocation(ctx, actor, pool_id, allocation)
    for actor in (MANAGER, ANALYST):
        with pytest.raises(PermissionDenied):
            pools.create_pool(ctx, actor, vlm_id, "mine", "bob", {("cad", "1.0"): 1})
        with pytest.raises(PermissionDenied):
            vlms.delete_vlm(ctx, actor, vlm_id)
    with pytest.raises(NotFound):
        allocations.list_allocations(ctx, OTHER_MANAGER, pool_id)
    assert _tables(ctx) == before


def test_grid_apply_keeps_valid_rows_and_reports_invalid_ones(estate):
    ctx, _, pool_id = estate
    first = allocations.allocate(ctx, MANAGER, pool_id, ("cad", "1.0"), "USER", "keep", 1, "old")
    gone = allocations.allocate(ctx, MANAGER, pool_id, ("cad", "1.0"), "USER", "gone", 1)
    change = allocations.AllocationChange
    results = allocations.apply_allocation_changes(
        ctx,
        MANAGER,
        pool_id,
        [
            change(
                "add", 0, host_type="ETHERNET", host_id="0050569A1B2C", count=2, description="new"
            ),
            change("edit", 1, first, description="renamed"),
            change("delete", 2, gone),
            change("add", 3, host_type="ETHERNET", host_id="not-a-mac", count=1),
            change("add", 4, host_type="USER", host_id="keep", count=1),
        ],
        feature=("cad", "1.0"),
    )
    assert [r.ok for r in results] == [True, True, True, False, False]
    assert "12 hex digits" in results[3].message and results[3].row == 3
    assert "already holds cad 1.0" in results[4].message
    frame = allocations.list_allocations(ctx, MANAGER, pool_id)
    assert sorted(frame["host_id"]) == ["0050569A1B2C", "keep"]
    assert frame.set_index("host_id").loc["keep", "description"] == "renamed"
    assert results[0].allocation_id in set(frame["id"])
    actions = [r[0] for r in ctx.db.query("SELECT action FROM audit_log ORDER BY id")]
    assert actions[-3:] == ["allocation.remove", "allocation.edit", "allocation.add"]


def test_errors_are_vlm_errors_with_fields(estate):
    ctx, _, pool_id = estate
    with pytest.raises(VlmError) as info:
        allocations.allocate(ctx, MANAGER, pool_id, ("cad", "1.0"), "ETHERNET", "x", 1)
    assert info.value.field == "host_id"


# --- issue #7 items 11, 13: every text and number is checked at the service boundary ---------


def database_dump(ctx) -> dict[str, list[tuple]]:
    """Every row of every table, ordered: equal before and after means nothing was written."""
    return {t: every_row(ctx.db, t) for t in base_tables(ctx.db)}


SURROGATE = "\ud800"


def _text_services(ctx, vlm_id: int, pool_id: int, allocation_id: int, bad: str):
    """(name, call) for every create/edit service, each given `bad` in one text field."""
    sf = feature_ids(ctx)
    server = servers.ServerInput
    url = "http://lls.example:7070"
    return [
        ("add_server name", lambda: servers.add_server(ctx, ADMIN, server(bad, url))),
        ("add_server url", lambda: servers.add_server(ctx, ADMIN, server("s", url + bad))),
        ("add_server instance", lambda: servers.add_server(ctx, ADMIN, server("s", url, bad))),
        (
            "add_server password",
            lambda: servers.add_server(ctx, ADMIN, server("s", url, username="a", password=bad)),
        ),
        (
            "add_server description",
            lambda: servers.add_server(ctx, ADMIN, server("s", url, description=bad)),
        ),
        (
            "edit_server name",
            lambda: servers.edit_server(ctx, ADMIN, 1, server(bad, url), keep_password=True),
        ),
        ("create_vlm name", lambda: vlms.create_vlm(ctx, ADMIN, bad, sf)),
        ("create_vlm description", lambda: vlms.create_vlm(ctx, ADMIN, "v2", sf, description=bad)),
        (
            "update_vlm name",
            lambda: vlms.update_vlm(
                ctx, ADMIN, vlm_id, name=bad, description="", server_feature_ids=sf
            ),
        ),
        (
            "update_vlm description",
            lambda: vlms.update_vlm(
                ctx, ADMIN, vlm_id, name="eng", description=bad, server_feature_ids=sf
            ),
        ),
        ("create_pool name", lambda: pools.create_pool(ctx, ADMIN, vlm_id, bad, "carol", {})),
        (
            "create_pool description",
            lambda: pools.create_pool(ctx, ADMIN, vlm_id, "p2", "carol", {}, description=bad),
        ),
        ("create_pool manager", lambda: pools.create_pool(ctx, ADMIN, vlm_id, "p2", bad, {})),
        ("update_pool name", lambda: pools.update_pool(ctx, ADMIN, pool_id, name=bad)),
        (
            "update_pool description",
            lambda: pools.update_pool(ctx, ADMIN, pool_id, description=bad),
        ),
        (
            "update_pool quantities",
            lambda: pools.update_pool(ctx, ADMIN, pool_id, quantities={(bad, "1.0"): 1}),
        ),
        (
            "allocate host id",
            lambda: allocations.allocate(ctx, MANAGER, pool_id, ("cad", "1.0"), "USER", bad),
        ),
        (
            "allocate description",
            lambda: allocations.allocate(
                ctx, MANAGER, pool_id, ("cad", "1.0"), "USER", "u9", 1, bad
            ),
        ),
        (
            "allocate feature",
            lambda: allocations.allocate(ctx, MANAGER, pool_id, (bad, "1.0"), "USER", "u9"),
        ),
        (
            "update_allocation description",
            lambda: allocations.update_allocation(
                ctx, MANAGER, pool_id, allocation_id, description=bad
            ),
        ),
        ("add_user username", lambda: users.add_user(ctx, ADMIN, bad, "analyst")),
        (
            "add_user display name",
            lambda: users.add_user(ctx, ADMIN, "erin", "analyst", display_name=bad),
        ),
        ("add_user email", lambda: users.add_user(ctx, ADMIN, "erin", "analyst", email=bad)),
        (
            "add_user password",
            lambda: users.add_user(ctx, ADMIN, "erin", "analyst", password=bad * 9),
        ),
        ("change_role", lambda: users.change_role(ctx, ADMIN, bad, "analyst")),
        ("set_disabled", lambda: users.set_disabled(ctx, ADMIN, bad, True)),
        ("reset_password", lambda: users.reset_password(ctx, ADMIN, bad)),
    ]


@pytest.fixture
def full_estate(estate):
    ctx, vlm_id, pool_id = estate
    servers.add_server(ctx, ADMIN, servers.ServerInput("lls", "http://lls.example:7070"))
    allocation_id = allocations.allocate(ctx, MANAGER, pool_id, ("cad", "1.0"), "USER", "u1")
    return ctx, vlm_id, pool_id, allocation_id


@pytest.mark.parametrize(
    "bad",
    [SURROGATE, "nul\x00byte", "bell\x07", "c1\x85control", "split\u2028row", "bidi\u202eevil"],
    ids=["surrogate", "nul", "control", "c1", "u2028", "bidi-override"],
)
def test_every_create_and_edit_service_refuses_hostile_text_and_writes_nothing(full_estate, bad):
    """Before: a lone surrogate crashed 13 services with a DuckDB error; NUL was stored."""
    ctx, vlm_id, pool_id, allocation_id = full_estate
    before = database_dump(ctx)
    for name, call in _text_services(ctx, vlm_id, pool_id, allocation_id, bad):
        with pytest.raises(ValidationError) as info:
            call()
        assert info.value.field, name
        info.value.message.encode("utf-8")  # safe to show
    assert database_dump(ctx) == before


def test_20000_character_texts_are_refused_with_the_documented_limits(full_estate):
    ctx, vlm_id, pool_id, allocation_id = full_estate
    before = database_dump(ctx)
    long = "x" * 20_000
    with pytest.raises(ValidationError, match="description is longer than 2,000") as info:
        allocations.allocate(ctx, MANAGER, pool_id, ("cad", "1.0"), "USER", "u2", 1, long)
    assert info.value.field == "description"
    with pytest.raises(ValidationError, match="description is longer than 2,000"):
        pools.update_pool(ctx, ADMIN, pool_id, description=long)
    with pytest.raises(ValidationError, match="description is longer than 2,000"):
        vlms.create_vlm(ctx, ADMIN, "v2", [], description=long)
    with pytest.raises(ValidationError, match="pool name is longer than 100"):
        pools.update_pool(ctx, ADMIN, pool_id, name="p" * 101)
    with pytest.raises(ValidationError, match="server name is longer than 100"):
        servers.add_server(ctx, ADMIN, servers.ServerInput("s" * 101, "http://h:1"))
    with pytest.raises(ValidationError, match="base URL is longer than 2,000"):
        servers.add_server(ctx, ADMIN, servers.ServerInput("s", "http://h/" + long))
    assert database_dump(ctx) == before


@pytest.mark.parametrize("timeout", ["abc", math.nan, math.inf, 1e400, True, None, 0.01, 301])
def test_server_timeout_must_be_a_number_in_range(ctx, timeout):
    """Before: a timeout of 'abc' raised TypeError/ValueError out of the service."""
    before = database_dump(ctx)
    with pytest.raises(ValidationError) as info:
        servers.add_server(
            ctx, ADMIN, servers.ServerInput("s", "http://h:1", timeout_seconds=timeout)
        )
    assert info.value.field == "timeout"
    assert database_dump(ctx) == before


def test_names_that_are_not_text_are_validation_errors(full_estate):
    ctx, vlm_id, pool_id, _ = full_estate
    with pytest.raises(ValidationError, match="VLM name must be text"):
        vlms.create_vlm(ctx, ADMIN, 5, feature_ids(ctx))
    with pytest.raises(ValidationError, match="pool name must be text"):
        pools.update_pool(ctx, ADMIN, pool_id, name=5)
    with pytest.raises(ValidationError, match="server name must be text"):
        servers.add_server(ctx, ADMIN, servers.ServerInput(5, "http://h:1"))  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="verify_tls must be true or false"):
        servers.add_server(ctx, ADMIN, servers.ServerInput("s", "http://h:1", verify_tls="no"))


NON_FINITE = [math.nan, math.inf, -math.inf, 1e400, "1e400", "NaN", "inf", True, 2.5, "2.5", "abc"]


@pytest.mark.parametrize("number", NON_FINITE, ids=repr)
def test_non_finite_and_non_integral_numbers_are_refused_everywhere(full_estate, number):
    """Before: NaN, inf and 1e400 raised ValueError or OverflowError in 5 services."""
    ctx, vlm_id, pool_id, allocation_id = full_estate
    before = database_dump(ctx)
    calls = [
        lambda: allocations.allocate(ctx, MANAGER, pool_id, ("cad", "1.0"), "USER", "u2", number),
        lambda: allocations.update_allocation(ctx, MANAGER, pool_id, allocation_id, count=number),
        lambda: pools.create_pool(ctx, ADMIN, vlm_id, "p2", "carol", {("cad", "1.0"): number}),
        lambda: pools.update_pool(ctx, ADMIN, pool_id, quantities={("cad", "1.0"): number}),
        lambda: pools.delete_pool(ctx, ADMIN, pool_id, confirmed_allocations=number),
        lambda: reports.server_trend(ctx, ADMIN, None, days=number),
        lambda: reports.pool_trend(ctx, ADMIN, pool_id, days=number),
        lambda: reports.utilization_history(ctx, ADMIN, days=number),
        lambda: reports.utilization_history_count(ctx, ADMIN, days=number),
        lambda: exports.utilization_csv(ctx, ADMIN, days=number),
    ]
    for call in calls:
        with pytest.raises(ValidationError):
            call()
    assert database_dump(ctx) == before


def test_a_grid_or_bulk_row_with_count_nan_is_refused_on_its_row(full_estate):
    """Before: a bulk CSV with count NaN crashed the page ("This app has encountered an error")."""
    ctx, _, pool_id, _ = full_estate
    change = allocations.AllocationChange
    results = allocations.apply_allocation_changes(
        ctx,
        MANAGER,
        pool_id,
        [
            change("add", 2, host_type="USER", host_id="n1", count="NaN"),
            change("add", 3, host_type="USER", host_id="n2", count=math.inf),
            change("add", 4, host_type="USER", host_id="n3", count="1e400"),
            change("add", 5, host_type="USER", host_id="ok", count="2"),
            change("edit", 6, allocation_id=math.inf, count=1),
            change("delete", 7, allocation_id=2.5),
        ],
        feature=("cad", "1.0"),
    )
    assert [r.ok for r in results] == [False, False, False, True, False, False]
    assert all(r.field == "count" for r in results[:3])
    assert "count must be" in results[0].message and results[0].row == 2
    frame = allocations.list_allocations(ctx, MANAGER, pool_id)
    assert sorted(frame["host_id"]) == ["ok", "u1"]


@pytest.mark.parametrize(("value", "message"), [(1_000_001, "at most 1,000,000"), (0, "≥ 1")])
def test_counts_have_a_documented_range(full_estate, value, message):
    ctx, _, pool_id, _ = full_estate
    with pytest.raises(ValidationError, match=message):
        allocations.allocate(ctx, MANAGER, pool_id, ("cad", "1.0"), "USER", "u2", value)


def test_ids_that_are_not_whole_numbers_are_validation_errors(full_estate):
    ctx, vlm_id, pool_id, _ = full_estate
    for bad in (SURROGATE, math.nan, 2**63, -1, 2.5):
        with pytest.raises(ValidationError, match="pool id"):
            allocations.allocate(ctx, MANAGER, bad, ("cad", "1.0"), "USER", "u2")
        with pytest.raises(ValidationError, match="VLM id"):
            vlms.delete_vlm(ctx, ADMIN, bad)
        with pytest.raises(ValidationError, match="features id"):
            vlms.update_vlm(
                ctx, ADMIN, vlm_id, name="eng", description="", server_feature_ids=[bad]
            )


def test_a_pool_made_without_a_description_has_none_and_a_bad_vlm_id_names_the_vlm(estate):
    ctx, vlm_id, _ = estate
    plain = pools.create_pool(ctx, ADMIN, vlm_id, "plain", "carol", {("cad", "1.0"): 1})
    assert ctx.db.scalar("SELECT description FROM pools WHERE id = ?", [plain]) == ""
    with pytest.raises(ValidationError) as bad:
        pools.create_pool(ctx, ADMIN, "seven", "x", "carol", {("cad", "1.0"): 1})
    assert bad.value.field == "VLM"

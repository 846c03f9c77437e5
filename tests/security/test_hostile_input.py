"""Hostile input fuzzing of every service entry point that takes user input (issue #7, part E).

Property, for every call: it either succeeds and what it stored is clean text, or it raises a
VlmError (nothing else: no TypeError, ValueError, OverflowError or DuckDB error) and the
database is exactly as before (every row of every table compared).
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from streamlit.testing.v1 import AppTest

from tests.app.conftest import (  # noqa: F401 - fixtures (caches released after each test)
    app,
    demo_db,
    demo_emulators,
    demo_template,
    fresh_streamlit_caches,
    open_page,
    open_section,
    service_context,
)
from tests.conftest import ADMIN, MANAGER
from tests.unit.services.estate import add_people, add_server, feature_ids
from tests.unit.services.test_bad_input import database_dump
from vlm.context import ServiceContext
from vlm.domain import SYSTEM_ACTOR, VlmError
from vlm.services import (
    allocations,
    bulk,
    exports,
    notifications,
    pools,
    reports,
    requests,
    servers,
    users,
    vlms,
)

FUZZ = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
CLOSED_PORT_URL = "http://127.0.0.1:9"  # refused at once: a valid check fails fast, no network
SURROGATES = ["\ud800", "\udbff", "\udc00", "\udfff"]
HOSTILE_SAMPLES = [
    "\x00",
    "nul\x00inside",
    "\x07bell",
    "\x1b[31mred",
    "c1\x85\x9b",
    "line\u2028sep",
    "para\u2029sep",
    "\u202eevil.exe",
    "\u2066isolate",
    "\u200fRTL mark \u05e9\u05dc\u05d5\u05dd",
    "emoji 🚀👨‍👩‍👧",
    "'; DROP TABLE users; --",
    "' OR '1'='1",
    "Robert'); DELETE FROM pools; --",
    "$1 ?; \\x00 %s %n {0}",
    "=cmd|' /C calc'!A1",
    "x" * 20_000,
    "x" * 101,
    "",
    "   ",
    "\t\n",
    "NaN",
    "inf",
    "1e400",
    "-1",
    "http://u:p@h:1",
    "0050569A1B2C",
    "alice",
    "bob",
]
_any_character = st.characters(categories=["L", "M", "N", "P", "S", "Z", "C"])
_short_text = st.text(_any_character, max_size=40)
_with_surrogate = st.builds(
    lambda head, bad, tail: head + bad + tail, _short_text, st.sampled_from(SURROGATES), _short_text
)
HOSTILE_TEXT = st.one_of(st.sampled_from(HOSTILE_SAMPLES), _with_surrogate, _short_text)
HOSTILE_NUMBERS = st.one_of(
    st.sampled_from(
        [math.nan, math.inf, -math.inf, 1e400, "1e400", -1, 0, 1, 3, 2**63, True, None, "1"]
    ),
    st.sampled_from([2.5, "2.5", "NaN", "inf", "abc", 10**400, -(2**63), 1_000_001, 3.0]),
    st.integers(min_value=-5, max_value=2_000_000),
    st.floats(allow_nan=True, allow_infinity=True),
)
ANYTHING = st.one_of(HOSTILE_TEXT, HOSTILE_NUMBERS)
_REFUSED_IN_STORED_TEXT = {"Cc", "Cs", "Zl", "Zp"}


def _clean_stored_text(value: Any) -> bool:
    """Text a successful call may leave in the database: UTF-8, no controls but \\n and \\t."""
    if not isinstance(value, str):
        return True
    value.encode("utf-8")
    return all(
        ch in "\n\t" or unicodedata.category(ch) not in _REFUSED_IN_STORED_TEXT for ch in value
    )


class Guard:
    """Runs service calls on one database and checks each against the dump taken after the
    previous one (every write of a test goes through the guard, so that dump is current)."""

    def __init__(self, ctx) -> None:
        self.ctx = ctx
        self.last = database_dump(ctx)

    def __call__(self, call: Callable[[], Any]) -> bool:
        """Run call: a VlmError leaves every table as it was; a success stores only clean text."""
        try:
            call()
        except VlmError as exc:
            exc.message.encode("utf-8")  # the message is safe to show
            assert database_dump(self.ctx) == self.last, f"refused ({exc.message}) but wrote"
            return False
        self.last = database_dump(self.ctx)
        for table, rows in self.last.items():
            for row in rows:
                assert all(_clean_stored_text(v) for v in row), (table, row)
        return True


@dataclass(frozen=True)
class Estate:
    """Users, a server with features, a VLM, a pool for bob with one allocation, a server row."""

    ctx: ServiceContext
    vlm_id: int
    pool_id: int
    allocation_id: int
    server_id: int
    guard: Guard


@pytest.fixture
def estate(ctx) -> Estate:
    add_people(ctx)
    add_server(ctx, "east", {("cad", "1.0"): 50, ("sim", "2.0"): 20})
    vlm_id = vlms.create_vlm(ctx, ADMIN, "eng", feature_ids(ctx))
    pool_id = pools.create_pool(ctx, ADMIN, vlm_id, "team", "bob", {("cad", "1.0"): 30})
    allocation_id = allocations.allocate(ctx, MANAGER, pool_id, ("cad", "1.0"), "USER", "u1", 2)
    server_id = servers.add_server(ctx, ADMIN, servers.ServerInput("lls", CLOSED_PORT_URL))
    return Estate(ctx, vlm_id, pool_id, allocation_id, server_id, Guard(ctx))


# --- servers -------------------------------------------------------------------------------


@st.composite
def server_inputs(draw) -> servers.ServerInput:
    """A ServerInput with any field hostile (and sometimes none)."""
    fields = {
        "name": draw(st.one_of(st.just("s1"), ANYTHING)),
        "base_url": draw(st.one_of(st.just(CLOSED_PORT_URL), ANYTHING)),
        "instance": draw(st.one_of(st.just("~"), ANYTHING)),
        "username": draw(st.one_of(st.none(), st.just("admin"), ANYTHING)),
        "password": draw(st.one_of(st.none(), st.just("pw"), ANYTHING)),
        "verify_tls": draw(st.one_of(st.just(True), ANYTHING)),
        "ca_path": draw(st.one_of(st.none(), ANYTHING)),
        "timeout_seconds": draw(st.one_of(st.just(0.5), HOSTILE_NUMBERS, HOSTILE_TEXT)),
        "description": draw(st.one_of(st.just(""), ANYTHING)),
    }
    return servers.ServerInput(**fields)


@FUZZ
@given(data=server_inputs(), keep=st.one_of(st.booleans(), ANYTHING))
def test_servers_add_edit_and_check(estate, data, keep):
    ctx, guard = estate.ctx, estate.guard
    guard(lambda: servers.add_server(ctx, ADMIN, data))
    guard(lambda: servers.edit_server(ctx, ADMIN, estate.server_id, data, keep_password=keep))
    guard(lambda: servers.check_connection(ctx, ADMIN, data))


@FUZZ
@given(server_id=ANYTHING)
def test_server_ids(estate, server_id):
    ctx, guard = estate.ctx, estate.guard
    guard(lambda: servers.get_server(ctx, ADMIN, server_id))
    guard(lambda: servers.server_features(ctx, ADMIN, server_id))
    guard(lambda: servers.remove_server(ctx, ADMIN, server_id))


# --- VLMs and pools ------------------------------------------------------------------------

FEATURE_IDS = st.one_of(
    st.just([1, 2]), st.lists(ANYTHING, max_size=3), HOSTILE_TEXT, HOSTILE_NUMBERS
)
FEATURE_KEYS = st.one_of(
    st.sampled_from([("cad", "1.0"), ("sim", "2.0")]),
    st.tuples(ANYTHING, st.one_of(st.just("1.0"), ANYTHING)),
    ANYTHING,
)
QUANTITIES = st.one_of(
    st.dictionaries(
        FEATURE_KEYS.filter(lambda k: isinstance(k, tuple)), HOSTILE_NUMBERS, max_size=2
    ),
    st.just({("cad", "1.0"): 1}),
    ANYTHING,
)


@FUZZ
@given(
    name=st.one_of(st.just("v2"), ANYTHING),
    description=st.one_of(st.just(""), ANYTHING),
    feature_ids_=FEATURE_IDS,
    vlm_type=st.one_of(st.just("FlexNet Embedded"), ANYTHING),
    vlm_id=st.one_of(st.just(1), ANYTHING),
)
def test_vlms_create_and_update(estate, name, description, feature_ids_, vlm_type, vlm_id):
    ctx, guard = estate.ctx, estate.guard
    guard(
        lambda: vlms.create_vlm(
            ctx, ADMIN, name, feature_ids_, vlm_type=vlm_type, description=description
        )
    )
    guard(
        lambda: vlms.update_vlm(
            ctx, ADMIN, vlm_id, name=name, description=description, server_feature_ids=feature_ids_
        )
    )


@FUZZ
@given(
    name=st.one_of(st.just("p2"), ANYTHING),
    manager=st.one_of(st.just("carol"), ANYTHING),
    quantities=QUANTITIES,
    description=st.one_of(st.none(), ANYTHING),
    target=st.one_of(st.just(1), ANYTHING),
    confirmed=HOSTILE_NUMBERS,
)
def test_pools_create_update_and_delete(
    estate, name, manager, quantities, description, target, confirmed
):
    ctx, guard = estate.ctx, estate.guard
    guard(
        lambda: pools.create_pool(
            ctx, ADMIN, target, name, manager, quantities, description=description
        )
    )
    guard(
        lambda: pools.update_pool(
            ctx,
            ADMIN,
            target,
            name=name,
            manager=manager,
            description=description,
            quantities=quantities,
        )
    )
    guard(lambda: pools.list_pools(ctx, ADMIN, search=name))
    if target != estate.pool_id:
        guard(lambda: pools.delete_pool(ctx, ADMIN, target, confirmed_allocations=confirmed))


# --- allocations ---------------------------------------------------------------------------

HOST_TYPES = st.one_of(st.sampled_from(["USER", "ETHERNET", "STRING"]), ANYTHING)
HOST_IDS = st.one_of(st.sampled_from(["u2", "0050569A1B2C", "jsmith"]), ANYTHING)


@FUZZ
@given(
    feature=FEATURE_KEYS,
    host_type=HOST_TYPES,
    host_id=HOST_IDS,
    count=st.one_of(st.just(1), HOSTILE_NUMBERS, HOSTILE_TEXT),
    description=st.one_of(st.just(""), ANYTHING),
    allocation_id=st.one_of(st.just(1), ANYTHING),
    pool_id=st.one_of(st.just(1), ANYTHING),
)
def test_allocations_allocate_update_remove(
    estate, feature, host_type, host_id, count, description, allocation_id, pool_id
):
    ctx, guard = estate.ctx, estate.guard
    guard(
        lambda: allocations.allocate(
            ctx, MANAGER, pool_id, feature, host_type, host_id, count, description
        )
    )
    guard(
        lambda: allocations.update_allocation(
            ctx, MANAGER, pool_id, allocation_id, description=description, count=count
        )
    )
    guard(lambda: allocations.retry_allocation(ctx, MANAGER, pool_id, allocation_id))
    guard(lambda: allocations.remove_allocation(ctx, MANAGER, pool_id, allocation_id))


DAYS = st.one_of(
    st.none(),
    st.dates(),
    st.datetimes(),
    st.sampled_from(["2099-12-31", "2026-02-30", "9999-12-31", "0001-01-01", "31/12/2030"]),
    ANYTHING,
)


@FUZZ
@given(
    starts_on=DAYS,
    ends_on=DAYS,
    default_days=st.one_of(st.none(), HOSTILE_NUMBERS, HOSTILE_TEXT),
    max_days=st.one_of(st.none(), HOSTILE_NUMBERS, HOSTILE_TEXT),
)
def test_time_boxes_dates_extend_and_durations(estate, starts_on, ends_on, default_days, max_days):
    ctx, guard = estate.ctx, estate.guard
    guard(
        lambda: pools.set_pool_durations(
            ctx, ADMIN, estate.pool_id, default_days=default_days, max_days=max_days
        )
    )
    guard(
        lambda: allocations.allocate(
            ctx, MANAGER, estate.pool_id, ("cad", "1.0"), "USER", "u3", 1, "",
            starts_on=starts_on, ends_on=ends_on,
        )
    )  # fmt: skip
    guard(
        lambda: allocations.extend_allocations(
            ctx, MANAGER, estate.pool_id, [estate.allocation_id], ends_on
        )
    )


CHANGES = st.lists(
    st.builds(
        allocations.AllocationChange,
        op=st.sampled_from(["add", "edit", "delete", "retry", "extend"]),
        row=st.integers(1, 50),
        allocation_id=st.one_of(st.just(1), ANYTHING),
        feature_name=st.one_of(st.none(), st.just("cad"), ANYTHING),
        feature_version=st.one_of(st.none(), st.just("1.0"), ANYTHING),
        host_type=HOST_TYPES,
        host_id=HOST_IDS,
        count=st.one_of(st.just(1), HOSTILE_NUMBERS, HOSTILE_TEXT),
        description=st.one_of(st.none(), ANYTHING),
        starts_on=DAYS,
        ends_on=DAYS,
    ),
    max_size=5,
)


@FUZZ
@given(changes=CHANGES, feature=st.one_of(st.none(), FEATURE_KEYS))
def test_apply_allocation_changes_reports_every_bad_row(estate, changes, feature):
    ctx = estate.ctx
    results: list = []

    def apply() -> None:
        results.extend(
            allocations.apply_allocation_changes(
                ctx, MANAGER, estate.pool_id, changes, feature=feature
            )
        )

    estate.guard(apply)
    for result in results:
        assert result.ok or result.message, result
        result.message.encode("utf-8")


BULK_LINES = st.lists(
    st.one_of(
        st.sampled_from(
            [
                "host_id,host_type,count,description",
                "Host ID;Type;Count",
                "\ufeffhost id\tcount",
                "u7,USER,NaN,x",
                "u8,USER,1e400,",
                "u9,USER,inf",
                "0050569A1B2C,ETHERNET,2,lab",
                "bob;2",
                '"a\u2028b",USER,1,"multi\nline"',
            ]
        ),
        st.lists(ANYTHING.map(str), max_size=4).map(",".join),
    ),
    max_size=6,
)


@FUZZ
@given(lines=BULK_LINES, newline=st.sampled_from(["\n", "\r\n", "\r", "\u2028"]))
def test_bulk_parsing_and_import(estate, lines, newline):
    ctx = estate.ctx
    parsed = bulk.parse_bulk_allocations(newline.join(lines), default_host_type="USER")
    estate.guard(
        lambda: bulk.import_bulk(ctx, MANAGER, estate.pool_id, parsed, feature=("cad", "1.0"))
    )


# --- users ---------------------------------------------------------------------------------

USERNAMES = st.one_of(st.sampled_from(["erin", "bob", "carol", "dave", "alice"]), ANYTHING)
ROLES = st.one_of(st.sampled_from(["admin", "manager", "analyst"]), ANYTHING)


@FUZZ
@given(
    username=USERNAMES,
    role=ROLES,
    display_name=st.one_of(st.just(""), ANYTHING),
    email=st.one_of(st.just(""), ANYTHING),
    password=st.one_of(st.none(), st.just("long-enough-1"), ANYTHING),
    disabled=st.one_of(st.booleans(), ANYTHING),
)
def test_users_add_change_disable_reset(
    estate, username, role, display_name, email, password, disabled
):
    ctx, guard = estate.ctx, estate.guard
    guard(
        lambda: users.add_user(
            ctx, ADMIN, username, role, display_name=display_name, email=email, password=password
        )
    )
    guard(lambda: users.change_role(ctx, ADMIN, username, role))
    guard(lambda: users.set_disabled(ctx, ADMIN, username, disabled))
    guard(lambda: users.reset_password(ctx, ADMIN, username))


@FUZZ
@given(
    current=st.one_of(st.just("password-123"), ANYTHING),
    new=st.one_of(st.just("a-new-password-1"), ANYTHING),
)
def test_users_set_own_password(estate, current, new):
    estate.guard(lambda: users.set_own_password(estate.ctx, MANAGER, current, new))


# --- quantity requests and notification destinations ---------------------------------------


@FUZZ
@given(
    feature=FEATURE_KEYS,
    quantity=st.one_of(st.just(2), HOSTILE_NUMBERS, HOSTILE_TEXT),
    reason=st.one_of(st.just("new hires"), ANYTHING),
    pool_id=st.one_of(st.just(1), ANYTHING),
    decision=st.one_of(st.sampled_from(["approve", "partial", "decline"]), ANYTHING),
    granted=st.one_of(st.just(1), HOSTILE_NUMBERS, HOSTILE_TEXT),
    destinations=st.one_of(st.just("json://127.0.0.1:9/me"), ANYTHING),
)
def test_requests_and_destinations(
    estate, feature, quantity, reason, pool_id, decision, granted, destinations
):
    ctx, guard = estate.ctx, estate.guard
    created: list[int] = []
    guard(
        lambda: created.append(
            requests.create_request(ctx, MANAGER, pool_id, feature, quantity, reason)
        )
    )
    target = created[0] if created else pool_id
    guard(lambda: requests.decide(ctx, ADMIN, target, decision, granted=granted, reason=reason))
    guard(lambda: requests.withdraw(ctx, MANAGER, target))
    guard(lambda: requests.requestable_features(ctx, MANAGER, pool_id))
    guard(lambda: notifications.set_own_destinations(ctx, MANAGER, destinations))


# --- reports with a period -----------------------------------------------------------------


@FUZZ
@given(
    days=st.one_of(st.just(7), HOSTILE_NUMBERS, HOSTILE_TEXT),
    target=st.one_of(st.just(1), ANYTHING),
)
def test_reports_with_days(estate, days, target):
    ctx, guard = estate.ctx, estate.guard
    guard(lambda: reports.server_trend(ctx, ADMIN, target, days=days))
    guard(lambda: reports.pool_trend(ctx, MANAGER, target, days=days))
    guard(lambda: reports.utilization_history(ctx, ADMIN, days=days))
    guard(lambda: exports.utilization_csv(ctx, ADMIN, days=days))


# --- the forms: a NaN or infinite number never crashes a page ------------------------------


@pytest.mark.parametrize("timeout", [math.nan, math.inf, -math.inf, 1e400])
def test_servers_page_form_survives_non_finite_timeouts(app, timeout):  # noqa: F811 - fixture
    at: AppTest = open_section(open_page(app("admin"), "servers"), "add_server_section")
    before = len(servers.list_servers(service_context(), SYSTEM_ACTOR))
    name, url = [t for t in at.text_input if t.label in ("Name", "Base URL")][:2]
    name.input("nul\x00name")
    url.input("http://lls.example:7070")
    next(n for n in at.number_input if n.label == "Timeout (s)").set_value(timeout)
    next(b for b in at.button if b.label == "Add server").click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("server name contains" in e.value for e in at.error), [e.value for e in at.error]
    assert len(servers.list_servers(service_context(), SYSTEM_ACTOR)) == before

"""The permission matrix as data: a small estate, the callers, and one row per service function.

Who may do what comes from architecture.md §3 rule 4 and §8 (and permissions.py): admins everything;
a manager only their own pools (a pool they cannot see is NotFound when read, PermissionDenied
when written); analysts read everything and change nothing; a stored role, a disabled flag or a
missing users row overrides what the caller's Actor object says, inside every write.

Reads take the Actor as the session resolved it (`users.actor_for` on every run refuses disabled
and unknown users), so a plain `require_admin` read by a stale Actor is allowed here: the design
asks for the stored-state re-check inside writes only (§8). The rows spell that out as
STALE_ALLOW so a reader sees it is deliberate, not an oversight.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any

import pandas as pd

from tests.conftest import ADMIN, ANALYST, MANAGER, OTHER_MANAGER
from tests.unit.services.estate import add_people, add_server
from vlm.alerting.delivery import DeliveryPass
from vlm.alerting.evaluate import evaluate_alerts
from vlm.context import ServiceContext
from vlm.domain import SYSTEM_ACTOR, Actor, Role
from vlm.services import (
    alerts,
    allocations,
    audit,
    bulk,
    drift_history,
    exports,
    harvesting,
    notifications,
    permissions,
    pools,
    reports,
    requests,
    servers,
    sso,
    tokens,
    users,
    vlms,
)
from vlm.services.allocations import AllocationChange
from vlm.services.servers import ServerInput
from vlm.sso_config import SsoProvider, SsoSettings
from vlm.store import reservations as store_queries
from vlm.store.frames import frame
from vlm.store.reservations import OUTCOME_DTYPES

ALLOW, DENY, HIDDEN = "allow", "deny", "hidden"
STALE_ALLOW = ALLOW  # a read by an Actor the session would no longer build (see the docstring)

PASSWORD = "password-123"
EXTENDED_TO = date.today() + timedelta(days=30)
CAD, VIZ, SIM = ("cad", "1.0"), ("viz", "1.0"), ("sim", "1.0")
EMULATOR_PASSWORD = "admin"

DISABLED_ADMIN = Actor("erin", Role.ADMIN)  # users row: admin, disabled after sign-in
UNKNOWN = Actor("ghost", Role.ADMIN)  # no users row at all
DEMOTED = Actor("frank", Role.ADMIN)  # users row: manager now (of no pool)

CALLERS: dict[str, Actor] = {
    "admin": ADMIN,
    "own_manager": MANAGER,
    "other_manager": OTHER_MANAGER,
    "analyst": ANALYST,
    "disabled_admin": DISABLED_ADMIN,
    "unknown": UNKNOWN,
    "demoted": DEMOTED,
}


@dataclass(frozen=True)
class EstateIds:
    """Ids of the seeded estate (the same in every copy of the template database)."""

    server_id: int
    spare_server_id: int
    live_server_id: int
    cad_feature_id: int
    sim_feature_id: int
    vlm_id: int
    spare_vlm_id: int
    bob_pool: int
    carol_pool: int
    bob_alloc: int
    bob_failed: int
    carol_alloc: int
    bob_token: int
    emulator_url: str
    admin_rule: int
    bob_rule: int
    bob_alert: int
    bob_request: int
    bob_idle: int


@dataclass(frozen=True)
class Estate:
    ctx: ServiceContext
    ids: EstateIds


Call = Callable[[Estate, Actor], Any]
Check = Callable[[Estate, str, Any], None]


@dataclass(frozen=True)
class Case:
    """How to call one function on the estate, and what each caller gets.

    `writes`: an allowed call must change a table besides the audit log and audit itself;
    any other allowed call must leave every table as it was. `check` asserts the allowed call's
    effect or result (what changed, or that a manager saw only their own pool).
    """

    call: Call
    outcomes: Mapping[str, str]
    writes: bool = False
    check: Check | None = None
    notes: str = field(default="", compare=False)


# -- the estate ----------------------------------------------------------------------------------


def _feature_id(ctx: ServiceContext, server_id: int, key: tuple[str, str]) -> int:
    return ctx.db.scalar(
        "SELECT id FROM server_features WHERE server_id = ? AND feature_name = ? "
        "AND feature_version = ?",
        [server_id, *key],
    )


def _refused_by_server(ctx: ServiceContext, allocation_id: int, count: int) -> None:
    """The allocation as the reconciler leaves it when the server refuses it (its own store
    function)."""
    rows = pd.DataFrame(
        {"id": [allocation_id], "count": [count], "state": ["pending"], "message": ["refused"]}
    )
    assert ctx.db.write(lambda cur: store_queries.mark_failed(cur, rows)) == 1


def _held_unused_for_days(ctx: ServiceContext, allocation_id: int, days: int) -> None:
    """The server has held the allocation for `days` days and nobody used it (idle)."""
    rows = frame([(allocation_id, 1, "pending", None)], OUTCOME_DTYPES)
    assert ctx.db.write(lambda cur: store_queries.mark_applied(cur, rows)) == 1
    since = datetime.now() - timedelta(days=days)
    ctx.db.write(
        lambda cur: cur.execute(
            "UPDATE allocations SET applied_at = ? WHERE id = ?", [since, allocation_id]
        )
    )


SSO = SsoSettings((SsoProvider("okta", "Okta", role_map=(("staff", "analyst"),)),), "s" * 40)


def with_sso(ctx: ServiceContext) -> ServiceContext:
    """The context with an identity provider configured (secrets.toml's [auth.okta])."""
    return replace(ctx, settings=replace(ctx.settings, sso=SSO))


def build_estate(ctx: ServiceContext, emulator_url: str) -> EstateIds:
    """Users of every kind, three servers, two VLMs, Bob's and Carol's pools with allocations."""
    add_people(ctx)
    for actor in (DISABLED_ADMIN, DEMOTED):
        users.add_user(ctx, SYSTEM_ACTOR, actor.username, Role.ADMIN, password=PASSWORD)
    users.set_disabled(ctx, ADMIN, DISABLED_ADMIN.username, True)
    users.change_role(ctx, ADMIN, DEMOTED.username, Role.MANAGER)
    sso.set_break_glass(ctx, ADMIN, ADMIN.username, True)
    sso.set_provider_settings(
        with_sso(ctx), ADMIN, "okta", auto_create=True, role_claim="roles", role_map={}
    )

    server_id = add_server(ctx, "lls-main", {CAD: 20, VIZ: 10, SIM: 10})
    spare_server_id = add_server(ctx, "lls-spare", {CAD: 5})
    live = ServerInput(
        "lls-live", emulator_url, username="admin", password=EMULATOR_PASSWORD, timeout_seconds=5
    )
    live_server_id = servers.add_server(ctx, ADMIN, live)
    cad, viz, sim = (_feature_id(ctx, server_id, key) for key in (CAD, VIZ, SIM))

    vlm_id = vlms.create_vlm(ctx, ADMIN, "main", [cad])
    spare_vlm_id = vlms.create_vlm(ctx, ADMIN, "spare", [viz])
    bob_pool = pools.create_pool(ctx, ADMIN, vlm_id, "bob team", MANAGER.username, {CAD: 6})
    carol_pool = pools.create_pool(
        ctx, ADMIN, vlm_id, "carol team", OTHER_MANAGER.username, {CAD: 4}
    )
    # Seeded by the admin, so that a planted bug in the managers' rules shows as failing rows
    # of the matrix rather than as an estate that cannot be built.
    bob_alloc = allocations.allocate(ctx, ADMIN, bob_pool, CAD, "USER", "b-host", 2)
    bob_failed = allocations.allocate(ctx, ADMIN, bob_pool, CAD, "USER", "b-refused", 1)
    _refused_by_server(ctx, bob_failed, 1)
    carol_alloc = allocations.allocate(ctx, ADMIN, carol_pool, CAD, "USER", "c-host", 1)
    bob_token = tokens.create_token(ctx, MANAGER, "bob's script").id
    hook = "json://127.0.0.1:9/hook"  # refused at once: a test message fails fast
    admin_rule = alerts.create_rule(
        ctx, ADMIN, name="any pool", kind="pool_nearly_full", threshold=10, destinations=hook
    )
    bob_rule = alerts.create_rule(
        ctx,
        MANAGER,
        name="bob's pool",
        kind="pool_nearly_full",
        threshold=10,
        pool_id=bob_pool,
        destinations=hook,
    )
    evaluate_alerts(ctx)
    bob_alert = int(
        ctx.db.scalar(
            "SELECT id FROM alerts WHERE rule_id = ? AND pool_id = ?", [admin_rule, bob_pool]
        )
    )
    for person in (ADMIN, MANAGER, OTHER_MANAGER, ANALYST, DEMOTED):
        notifications.set_own_destinations(ctx, person, hook)
    bob_request = requests.create_request(ctx, MANAGER, bob_pool, CAD, 1, "a new hire")
    bob_idle = allocations.allocate(ctx, ADMIN, bob_pool, CAD, "USER", "b-idle", 1)
    carol_idle = allocations.allocate(ctx, ADMIN, carol_pool, CAD, "USER", "c-idle", 1)
    for idle in (bob_idle, carol_idle):
        _held_unused_for_days(ctx, idle, 90)
    requests.create_request(ctx, OTHER_MANAGER, carol_pool, CAD, 2, "two contractors")
    return EstateIds(
        server_id=server_id,
        spare_server_id=spare_server_id,
        live_server_id=live_server_id,
        cad_feature_id=cad,
        sim_feature_id=sim,
        vlm_id=vlm_id,
        spare_vlm_id=spare_vlm_id,
        bob_pool=bob_pool,
        carol_pool=carol_pool,
        bob_alloc=bob_alloc,
        bob_failed=bob_failed,
        carol_alloc=carol_alloc,
        bob_token=bob_token,
        emulator_url=emulator_url,
        admin_rule=admin_rule,
        bob_rule=bob_rule,
        bob_alert=bob_alert,
        bob_request=bob_request,
        bob_idle=bob_idle,
    )


# -- who gets what -------------------------------------------------------------------------------

MANAGERS = ("own_manager", "other_manager")
REFUSED_STORED = {"disabled_admin": DENY, "unknown": DENY, "demoted": DENY}

ADMIN_WRITE = {
    "admin": ALLOW,
    "own_manager": DENY,
    "other_manager": DENY,
    "analyst": DENY,
    **REFUSED_STORED,
}
POOL_WRITE = {
    "admin": ALLOW,
    "own_manager": ALLOW,
    "other_manager": DENY,
    "analyst": DENY,
    **REFUSED_STORED,
}
ADMIN_READ = {
    "admin": ALLOW,
    "own_manager": DENY,
    "other_manager": DENY,
    "analyst": DENY,
    "disabled_admin": STALE_ALLOW,
    "unknown": STALE_ALLOW,
}
ESTATE_READ = {**ADMIN_READ, "analyst": ALLOW}
POOL_READ = {**ESTATE_READ, "own_manager": ALLOW, "other_manager": HIDDEN}
SCOPED_READ = {**POOL_READ, "other_manager": ALLOW}
OWN_TOKEN_WRITE = {
    "admin": ALLOW,
    "own_manager": ALLOW,
    "other_manager": ALLOW,
    "analyst": ALLOW,
    **REFUSED_STORED,
    "demoted": ALLOW,
}
OWN_ACCOUNT = {
    "admin": ALLOW,
    "own_manager": ALLOW,
    "other_manager": ALLOW,
    "analyst": ALLOW,
    "disabled_admin": HIDDEN,
    "unknown": HIDDEN,
    "demoted": ALLOW,
}


# -- checks of allowed calls ---------------------------------------------------------------------


def _scalar(e: Estate, sql: str, *params: object) -> Any:
    return e.ctx.db.scalar(sql, list(params))


def _visible_pools(e: Estate, caller: str) -> set[int]:
    """The pools a caller may see: a manager their own, everyone else both."""
    own = {"own_manager": e.ids.bob_pool, "other_manager": e.ids.carol_pool}
    return {own[caller]} if caller in own else {e.ids.bob_pool, e.ids.carol_pool}


def only_visible_pools(pool_ids: Callable[[Estate, Any], Iterable[Any]]) -> Check:
    """A check that the rows of a result cover exactly the pools the caller may see."""

    def check(e: Estate, caller: str, result: Any) -> None:
        seen = {int(i) for i in pool_ids(e, result)}
        assert seen == _visible_pools(e, caller), f"{caller} saw pools {seen}"

    return check


def _column(name: str) -> Callable[[Estate, Any], Iterable[Any]]:
    return lambda e, frame: frame[name].tolist()


def _csv_column(name: str) -> Callable[[Estate, Any], Iterable[Any]]:
    return lambda e, data: [row[name] for row in csv.DictReader(io.StringIO(data.decode()))]


def _allocation_pools(e: Estate, frame: pd.DataFrame) -> list[int]:
    pool_of = dict(e.ctx.db.query("SELECT id, pool_id FROM allocations"))
    return [pool_of[int(i)] for i in frame["id"]]


def _kpis_scoped(e: Estate, caller: str, figures: dict[str, int]) -> None:
    assert figures["pools"] == len(_visible_pools(e, caller))
    assert ("total" in figures) is (caller not in MANAGERS)


def _assert_equal(actual: object, expected: object) -> None:
    assert actual == expected, f"{actual!r} != {expected!r}"


def _assert_true(value: bool) -> None:
    assert value


def _check_only_pool(e: Estate, frame: pd.DataFrame, pool_id: int, column: str = "pool_id") -> None:
    assert set(frame[column]) == {pool_id}


def _rule_owners(e: Estate, caller: str, frame: pd.DataFrame) -> None:
    """Managers list their own rules only; everyone else every rule."""
    mine = {"own_manager": {MANAGER.username}, "other_manager": set()}
    expected = mine.get(caller, {ADMIN.username, MANAGER.username})
    assert set(frame["owner"]) == expected, f"{caller} saw rules of {set(frame['owner'])}"


def _open_alerts_counted(e: Estate, caller: str, count: int) -> None:
    """The badge counts the open alerts the caller sees: both pools' (3), or a manager's own."""
    expected = {"own_manager": 2, "other_manager": 1}.get(caller, 3)
    assert count == expected, f"{caller} counted {count}"


def _deliveries_of_own_rules(e: Estate, caller: str, frame: pd.DataFrame) -> None:
    """A manager sees their rules' messages and those sent to them personally; admins and
    analysts every message."""
    expected = {"own_manager": {e.ids.bob_rule}, "other_manager": set()}.get(
        caller, {e.ids.admin_rule, e.ids.bob_rule}
    )
    rules = set(frame["rule_id"].dropna())
    assert rules == expected, f"{caller} saw {rules}"
    personal = set(frame["username"].dropna())
    if caller in MANAGERS:
        assert personal <= {CALLERS[caller].username}, f"{caller} saw messages to {personal}"
    else:
        assert ADMIN.username in personal, "the admin's notice of the new requests is listed"


def _check_rule_created(e: Estate, caller: str, rule_id: int) -> None:
    owner = _scalar(e, "SELECT owner FROM alert_rules WHERE id = ?", rule_id)
    assert owner == CALLERS[caller].username


def _check_rule_off(e: Estate, caller: str, result: None) -> None:
    assert _scalar(e, "SELECT enabled FROM alert_rules WHERE id = ?", e.ids.bob_rule) is False


def _check_rule_gone(e: Estate, caller: str, result: None) -> None:
    assert _scalar(e, "SELECT count(*) FROM alert_rules WHERE id = ?", e.ids.bob_rule) == 0


def _check_test_sent(e: Estate, caller: str, result: DeliveryPass) -> None:
    events = _scalar(e, "SELECT count(*) FROM alert_deliveries WHERE event = 'test'")
    assert events == 1 and result.failed == 1


def _idle_seats_scoped(e: Estate, caller: str, seats: int) -> None:
    _assert_equal(seats, len(_visible_pools(e, caller)))


def _check_idle_released(e: Estate, caller: str, results: list) -> None:
    _assert_true(all(r.ok for r in results))
    _assert_equal(_state(e, e.ids.bob_idle), "removing")


def _check_price_set(e: Estate, caller: str, result: None) -> None:
    _assert_equal(_scalar(e, "SELECT seat_price FROM feature_prices"), 250.0)


def _check_policy_set(e: Estate, caller: str, result: None) -> None:
    _assert_equal(_scalar(e, "SELECT release_after_days FROM harvest_policy"), 60)


def _check_acknowledged(e: Estate, caller: str, count: int) -> None:
    by = _scalar(e, "SELECT acknowledged_by FROM alerts WHERE id = ?", e.ids.bob_alert)
    assert count == 1 and by == CALLERS[caller].username


def _request_state(e: Estate) -> tuple:
    return e.ctx.db.query(
        "SELECT state, granted, decided_by FROM quantity_requests WHERE id = ?",
        [e.ids.bob_request],
    )[0]


def _check_request_created(e: Estate, caller: str, request_id: int) -> None:
    row = e.ctx.db.query(
        "SELECT pool_id, requested_by, state FROM quantity_requests WHERE id = ?", [request_id]
    )
    assert row == [(e.ids.bob_pool, CALLERS[caller].username, "open")]


def _check_request_approved(e: Estate, caller: str, result: requests.Decision) -> None:
    assert _request_state(e) == ("approved", 1, CALLERS[caller].username)
    assert _pool_quantity(e, e.ids.bob_pool) == 7


def _check_request_withdrawn(e: Estate, caller: str, result: None) -> None:
    assert _request_state(e) == ("withdrawn", None, CALLERS[caller].username)


def _check_destinations_set(e: Estate, caller: str, labels: list[str]) -> None:
    stored = _scalar(
        e,
        "SELECT notify_destination_labels FROM users WHERE username = ?",
        CALLERS[caller].username,
    )
    assert labels and stored == "\n".join(labels)


def _check_own_test_sent(e: Estate, caller: str, result: DeliveryPass) -> None:
    sent = _scalar(
        e,
        "SELECT count(*) FROM alert_deliveries WHERE username = ? AND event = 'test'",
        CALLERS[caller].username,
    )
    assert sent == 1 and result.failed == 1, (sent, result)


def _allocation_row(e: Estate, host_id: str) -> tuple | None:
    rows = e.ctx.db.query(
        "SELECT pool_id, count, state FROM allocations WHERE host_id = ?", [host_id]
    )
    return rows[0] if rows else None


def _state(e: Estate, allocation_id: int) -> str:
    return _scalar(e, "SELECT state FROM allocations WHERE id = ?", allocation_id)


def _pool_quantity(e: Estate, pool_id: int) -> int:
    return _scalar(e, "SELECT SUM(quantity) FROM pool_portions WHERE pool_id = ?", pool_id)


def _user(e: Estate, username: str) -> dict | None:
    return users.get_user(e.ctx, username)


def _stored_password(e: Estate, server_id: int) -> str | None:
    token = _scalar(e, "SELECT password_encrypted FROM license_servers WHERE id = ?", server_id)
    return e.ctx.secrets.decrypt(token)


def _check_allocated(e: Estate, caller: str, result: int) -> None:
    assert _allocation_row(e, "new-host") == (e.ids.bob_pool, 1, "pending")
    assert _scalar(e, "SELECT host_id FROM allocations WHERE id = ?", result) == "new-host"


def _check_edited(e: Estate, caller: str, result: None) -> None:
    rows = e.ctx.db.query(
        "SELECT count, description, state FROM allocations WHERE id = ?", [e.ids.bob_alloc]
    )
    assert rows == [(3, "grown", "pending")]


def _check_extended(e: Estate, caller: str, results: list) -> None:
    _check_rows_ok(e, caller, results)
    ends_on = _scalar(e, "SELECT ends_on FROM allocations WHERE id = ?", e.ids.bob_alloc)
    assert ends_on == EXTENDED_TO


def _check_durations(e: Estate, caller: str, result: None) -> None:
    rows = e.ctx.db.query(
        "SELECT default_duration_days, max_duration_days FROM pools WHERE id = ?",
        [e.ids.bob_pool],
    )
    assert rows == [(30, 90)]


def _check_removed(e: Estate, caller: str, result: None) -> None:
    assert _state(e, e.ids.bob_alloc) == "removing"


def _check_retried(e: Estate, caller: str, result: object) -> None:
    assert _state(e, e.ids.bob_failed) == "pending"


def _check_rows_ok(e: Estate, caller: str, results: list) -> None:
    assert [r.ok for r in results] == [True], [r.message for r in results]


def _check_retried_rows(e: Estate, caller: str, results: list) -> None:
    _check_rows_ok(e, caller, results)
    _check_retried(e, caller, results)


def _check_grid_edit(e: Estate, caller: str, results: list) -> None:
    _check_rows_ok(e, caller, results)
    desc = _scalar(e, "SELECT description FROM allocations WHERE id = ?", e.ids.bob_alloc)
    assert desc == "via grid"


def _check_bulk(e: Estate, caller: str, results: list) -> None:
    _check_rows_ok(e, caller, results)
    assert _allocation_row(e, "bulk-host") == (e.ids.bob_pool, 1, "pending")


def _check_pool_created(e: Estate, caller: str, pool_id: int) -> None:
    row = e.ctx.db.query("SELECT name, manager FROM pools WHERE id = ?", [pool_id])
    assert row == [("new pool", MANAGER.username)]
    assert _pool_quantity(e, pool_id) == 2


def _check_pool_resized(e: Estate, caller: str, result: None) -> None:
    assert _pool_quantity(e, e.ids.bob_pool) == 8


def _check_pool_deleted(e: Estate, caller: str, result: None) -> None:
    assert _scalar(e, "SELECT COUNT(*) FROM pools WHERE id = ?", e.ids.bob_pool) == 0
    assert _state(e, e.ids.bob_alloc) == "removing"
    assert _state(e, e.ids.bob_failed) is None  # a failed allocation was never on the server


def _check_vlm_created(e: Estate, caller: str, vlm_id: int) -> None:
    assert _scalar(e, "SELECT name FROM vlms WHERE id = ?", vlm_id) == "new vlm"
    assert vlms.vlm_server_features(e.ctx, ADMIN, vlm_id) == [e.ids.sim_feature_id]


def _check_vlm_renamed(e: Estate, caller: str, result: None) -> None:
    assert _scalar(e, "SELECT name FROM vlms WHERE id = ?", e.ids.vlm_id) == "renamed"


def _check_vlm_deleted(e: Estate, caller: str, result: None) -> None:
    assert _scalar(e, "SELECT COUNT(*) FROM vlms WHERE id = ?", e.ids.spare_vlm_id) == 0


def _check_server_added(e: Estate, caller: str, server_id: int) -> None:
    assert _scalar(e, "SELECT name FROM license_servers WHERE id = ?", server_id) == "lls-new"
    assert _stored_password(e, server_id) == "secret-1"


def _check_server_edited(e: Estate, caller: str, result: None) -> None:
    name = _scalar(e, "SELECT name FROM license_servers WHERE id = ?", e.ids.live_server_id)
    assert name == "lls-live-2"
    assert _stored_password(e, e.ids.live_server_id) == EMULATOR_PASSWORD  # keep_password


def _check_server_removed(e: Estate, caller: str, result: None) -> None:
    assert (
        _scalar(e, "SELECT COUNT(*) FROM license_servers WHERE id = ?", e.ids.spare_server_id) == 0
    )
    assert (
        _scalar(
            e, "SELECT COUNT(*) FROM server_features WHERE server_id = ?", e.ids.spare_server_id
        )
        == 0
    )


def _check_user_added(e: Estate, caller: str, result: str) -> None:
    assert (_user(e, "newbie") or {}).get("role") == "analyst"


def _check_provider_settings(e: Estate, caller: str, result: None) -> None:
    stored = sso.effective_provider(with_sso(e.ctx), "okta")
    assert stored.provider.role_claim == "groups" and stored.provider.role_map == (
        ("ops", "admin"),
    )


def _check_provider_cleared(e: Estate, caller: str, cleared: bool) -> None:
    assert cleared and sso.effective_provider(with_sso(e.ctx), "okta").source == "secrets.toml"


def _check_local_off(e: Estate, caller: str, result: None) -> None:
    assert not sso.local_sign_in_enabled(e.ctx)


def _check_break_glass(e: Estate, caller: str, result: None) -> None:
    assert _scalar(e, "SELECT break_glass FROM users WHERE username = ?", ANALYST.username)


def _check_methods(e: Estate, caller: str, frame: pd.DataFrame) -> None:
    by_user = frame.set_index("username")["sign_in_methods"]
    assert by_user[ADMIN.username] == "password (break-glass)"
    assert by_user[ANALYST.username] == "password"


def _check_role_changed(e: Estate, caller: str, result: None) -> None:
    assert (_user(e, ANALYST.username) or {}).get("role") == "manager"


def _check_disabled(e: Estate, caller: str, result: None) -> None:
    assert (_user(e, ANALYST.username) or {}).get("disabled") is True


def _check_reset(e: Estate, caller: str, new_password: str) -> None:
    stored = _scalar(e, "SELECT password_hash FROM users WHERE username = ?", ANALYST.username)
    assert users.check_password(new_password, stored)
    assert (_user(e, ANALYST.username) or {}).get("must_change_password") is True


def _check_token_created(e: Estate, caller: str, new: tokens.NewToken) -> None:
    mine = tokens.list_own_tokens(e.ctx, CALLERS[caller])
    assert new.token.startswith("vlm_") and new.id in set(mine["id"])


def _check_own_tokens(e: Estate, caller: str, frame: pd.DataFrame) -> None:
    expected = ["bob's script"] if CALLERS[caller] == MANAGER else []
    assert list(frame["name"]) == expected


def _check_all_tokens(e: Estate, caller: str, frame: pd.DataFrame) -> None:
    assert list(frame["name"]) == ["bob's script"]


def _check_token_revoked(e: Estate, caller: str, result: None) -> None:
    assert list(tokens.list_own_tokens(e.ctx, MANAGER)["status"]) == [tokens.REVOKED]


def _check_own_password(e: Estate, caller: str, result: None) -> None:
    username = CALLERS[caller].username
    stored = _scalar(e, "SELECT password_hash FROM users WHERE username = ?", username)
    assert users.check_password("new-password-456", stored)


def _check_connected(e: Estate, caller: str, result: servers.ConnectionCheck) -> None:
    assert result.ok and result.features == 1, result.message


def _check_no_secret(e: Estate, caller: str, row: dict) -> None:
    assert row["name"] == "lls-main" and "password_encrypted" not in row


def _check_usernames(e: Estate, caller: str, frame: pd.DataFrame) -> None:
    assert {ADMIN.username, MANAGER.username, ANALYST.username} <= set(frame["username"])


def _check_managers(e: Estate, caller: str, names: list[str]) -> None:
    assert names == [MANAGER.username, OTHER_MANAGER.username, DEMOTED.username]


def _check_audit(e: Estate, caller: str, frame: pd.DataFrame) -> None:
    assert "pool.create" in set(frame["action"])


def _check_impact(e: Estate, caller: str, impact: dict[str, int]) -> None:
    assert impact["allocations"] == 3  # b-host, b-refused and the idle b-idle


def _check_bounds(e: Estate, caller: str, frame: pd.DataFrame) -> None:
    assert frame[["quantity", "minimum"]].values.tolist() == [[6, 4]]


def _check_roles(expected: dict[str, Role]) -> Check:
    def check(e: Estate, caller: str, role: Role) -> None:
        assert role is expected[caller]

    return check


# -- calls ---------------------------------------------------------------------------------------


def _in_write(fn: Callable[[Any, Actor], Any]) -> Call:
    """Call a `*_in(cur, actor, …)` check inside a write transaction, as services do."""
    return lambda e, actor: e.ctx.db.write(lambda cur: fn(cur, actor))


def _run_query(query: Callable[[Actor], tuple[str, list[object]]]) -> Call:
    """Build an actor's query and run it, as its page or export does."""
    return lambda e, actor: e.ctx.db.query_df(*query(actor))


def _scoped_pool_ids(e: Estate, actor: Actor) -> list[int]:
    scope, params = permissions.pool_scope_sql(actor)
    return [r[0] for r in e.ctx.db.query(f"SELECT p.id FROM pools p WHERE {scope}", params)]


def _live_input(e: Estate) -> ServerInput:
    """The emulator's settings as an admin types them to test a connection."""
    return ServerInput(
        "lls-check",
        e.ids.emulator_url,
        username="admin",
        password=EMULATOR_PASSWORD,
        timeout_seconds=5,
    )


def _bulk_file() -> bulk.ParsedBulk:
    parsed = bulk.parse_bulk_allocations("host_id,host_type,count\nbulk-host,USER,1\n")
    assert parsed.good_rows == 1
    return parsed


MATRIX: dict[str, Case] = {
    # ---- allocations: the pool's manager and admins write; managers read only their pools ----
    "allocations.allocate": Case(
        lambda e, a: allocations.allocate(e.ctx, a, e.ids.bob_pool, CAD, "USER", "new-host", 1),
        POOL_WRITE,
        writes=True,
        check=_check_allocated,
    ),
    "allocations.update_allocation": Case(
        lambda e, a: allocations.update_allocation(
            e.ctx, a, e.ids.bob_pool, e.ids.bob_alloc, count=3, description="grown"
        ),
        POOL_WRITE,
        writes=True,
        check=_check_edited,
    ),
    "allocations.extend_allocations": Case(
        lambda e, a: allocations.extend_allocations(
            e.ctx, a, e.ids.bob_pool, [e.ids.bob_alloc], EXTENDED_TO
        ),
        POOL_WRITE,
        writes=True,
        check=_check_extended,
    ),
    "allocations.remove_allocation": Case(
        lambda e, a: allocations.remove_allocation(e.ctx, a, e.ids.bob_pool, e.ids.bob_alloc),
        POOL_WRITE,
        writes=True,
        check=_check_removed,
    ),
    "allocations.retry_allocation": Case(
        lambda e, a: allocations.retry_allocation(e.ctx, a, e.ids.bob_pool, e.ids.bob_failed),
        POOL_WRITE,
        writes=True,
        check=_check_retried,
    ),
    "allocations.retry_allocations": Case(
        lambda e, a: allocations.retry_allocations(e.ctx, a, e.ids.bob_pool, [e.ids.bob_failed]),
        POOL_WRITE,
        writes=True,
        check=_check_retried_rows,
    ),
    "allocations.apply_allocation_changes": Case(
        lambda e, a: allocations.apply_allocation_changes(
            e.ctx,
            a,
            e.ids.bob_pool,
            [AllocationChange("edit", 0, e.ids.bob_alloc, description="via grid")],
        ),
        POOL_WRITE,
        writes=True,
        check=_check_grid_edit,
    ),
    "bulk.import_bulk": Case(
        lambda e, a: bulk.import_bulk(e.ctx, a, e.ids.bob_pool, _bulk_file(), feature=CAD),
        POOL_WRITE,
        writes=True,
        check=_check_bulk,
    ),
    "allocations.list_allocations": Case(
        lambda e, a: allocations.list_allocations(e.ctx, a, e.ids.bob_pool),
        POOL_READ,
        check=lambda e, c, frame: _check_only_pool(e, frame, e.ids.bob_pool),
    ),
    "allocations.allocation_states": Case(
        lambda e, a: allocations.allocation_states(e.ctx, a, [e.ids.bob_alloc, e.ids.carol_alloc]),
        SCOPED_READ,
        check=only_visible_pools(_allocation_pools),
    ),
    "allocations.visible_allocations": Case(
        lambda e, a: allocations.visible_allocations(e.ctx, a),
        SCOPED_READ,
        check=only_visible_pools(_column("pool_id")),
    ),
    "allocations.visible_allocations_query": Case(
        _run_query(allocations.visible_allocations_query),
        SCOPED_READ,
        check=only_visible_pools(_column("pool_id")),
    ),
    # ---- pools: admins create, resize, hand over and delete; managers read their own ----------
    "pools.create_pool": Case(
        lambda e, a: pools.create_pool(
            e.ctx, a, e.ids.vlm_id, "new pool", MANAGER.username, {CAD: 2}
        ),
        ADMIN_WRITE,
        writes=True,
        check=_check_pool_created,
    ),
    "pools.update_pool": Case(
        lambda e, a: pools.update_pool(e.ctx, a, e.ids.bob_pool, quantities={CAD: 8}),
        ADMIN_WRITE,
        writes=True,
        check=_check_pool_resized,
        notes="a manager may not resize their own pool (issue #14's missed bug)",
    ),
    "pools.set_pool_durations": Case(
        lambda e, a: pools.set_pool_durations(
            e.ctx, a, e.ids.bob_pool, default_days=30, max_days=90
        ),
        ADMIN_WRITE,
        writes=True,
        check=_check_durations,
    ),
    "pools.delete_pool": Case(
        lambda e, a: pools.delete_pool(e.ctx, a, e.ids.bob_pool, confirmed_allocations=3),
        ADMIN_WRITE,
        writes=True,
        check=_check_pool_deleted,
    ),
    "pools.deletion_impact": Case(
        lambda e, a: pools.deletion_impact(e.ctx, a, e.ids.bob_pool),
        ADMIN_READ,
        check=_check_impact,
    ),
    "pools.pool_quantity_bounds": Case(
        lambda e, a: pools.pool_quantity_bounds(e.ctx, a, e.ids.vlm_id, e.ids.bob_pool),
        ADMIN_READ,
        check=_check_bounds,
    ),
    "pools.list_pools": Case(
        lambda e, a: pools.list_pools(e.ctx, a),
        SCOPED_READ,
        check=only_visible_pools(_column("id")),
    ),
    "pools.pool_features": Case(
        lambda e, a: pools.pool_features(e.ctx, a),
        SCOPED_READ,
        check=only_visible_pools(_column("pool_id")),
    ),
    "pools.pool_features/one_pool": Case(
        lambda e, a: pools.pool_features(e.ctx, a, e.ids.bob_pool),
        POOL_READ,
        check=lambda e, c, frame: _check_only_pool(e, frame, e.ids.bob_pool, "pool_id"),
    ),
    # ---- VLMs: admins write; admins and analysts read; managers see no estate -----------------
    "vlms.create_vlm": Case(
        lambda e, a: vlms.create_vlm(e.ctx, a, "new vlm", [e.ids.sim_feature_id]),
        ADMIN_WRITE,
        writes=True,
        check=_check_vlm_created,
    ),
    "vlms.update_vlm": Case(
        lambda e, a: vlms.update_vlm(
            e.ctx,
            a,
            e.ids.vlm_id,
            name="renamed",
            description="",
            server_feature_ids=[e.ids.cad_feature_id],
        ),
        ADMIN_WRITE,
        writes=True,
        check=_check_vlm_renamed,
    ),
    "vlms.delete_vlm": Case(
        lambda e, a: vlms.delete_vlm(e.ctx, a, e.ids.spare_vlm_id),
        ADMIN_WRITE,
        writes=True,
        check=_check_vlm_deleted,
    ),
    "vlms.list_vlms": Case(
        lambda e, a: vlms.list_vlms(e.ctx, a),
        ESTATE_READ,
        check=lambda e, c, frame: _assert_equal(sorted(frame["name"]), ["main", "spare"]),
    ),
    "vlms.vlm_features": Case(lambda e, a: vlms.vlm_features(e.ctx, a), ESTATE_READ),
    "vlms.vlm_server_features": Case(
        lambda e, a: vlms.vlm_server_features(e.ctx, a, e.ids.vlm_id),
        ADMIN_READ,
        check=lambda e, c, ids: _assert_equal(ids, [e.ids.cad_feature_id]),
    ),
    "vlms.feature_choices": Case(
        lambda e, a: vlms.feature_choices(e.ctx, a, e.ids.vlm_id),
        ADMIN_READ,
        check=lambda e, c, frame: _assert_equal(
            frame.loc[frame["exposed"], "server_feature_id"].tolist(), [e.ids.cad_feature_id]
        ),
    ),
    # ---- license servers: admins only write and test; analysts read ---------------------------
    "servers.add_server": Case(
        lambda e, a: servers.add_server(
            e.ctx, a, ServerInput("lls-new", "http://127.0.0.1:9", password="secret-1")
        ),
        ADMIN_WRITE,
        writes=True,
        check=_check_server_added,
    ),
    "servers.edit_server": Case(
        lambda e, a: servers.edit_server(
            e.ctx,
            a,
            e.ids.live_server_id,
            ServerInput("lls-live-2", e.ids.emulator_url, username="admin", timeout_seconds=5),
            keep_password=True,
        ),
        ADMIN_WRITE,
        writes=True,
        check=_check_server_edited,
    ),
    "servers.remove_server": Case(
        lambda e, a: servers.remove_server(e.ctx, a, e.ids.spare_server_id),
        ADMIN_WRITE,
        writes=True,
        check=_check_server_removed,
    ),
    "servers.check_connection": Case(
        lambda e, a: servers.check_connection(e.ctx, a, _live_input(e)),
        ADMIN_READ,
        check=_check_connected,
    ),
    "servers.check_saved_server": Case(
        lambda e, a: servers.check_saved_server(e.ctx, a, e.ids.live_server_id),
        ADMIN_READ,
        check=_check_connected,
    ),
    "servers.get_server": Case(
        lambda e, a: servers.get_server(e.ctx, a, e.ids.server_id),
        ADMIN_READ,
        check=_check_no_secret,
    ),
    "servers.drift": Case(lambda e, a: servers.drift(e.ctx, a, e.ids.server_id), ADMIN_READ),
    "servers.list_servers": Case(
        lambda e, a: servers.list_servers(e.ctx, a),
        ESTATE_READ,
        check=lambda e, c, frame: _assert_equal(len(frame), 3),
    ),
    "servers.server_names": Case(
        lambda e, a: servers.server_names(e.ctx, a),
        ESTATE_READ,
        check=lambda e, c, names: _assert_equal(len(names), 3),
    ),
    "servers.server_features": Case(
        lambda e, a: servers.server_features(e.ctx, a),
        ESTATE_READ,
        check=lambda e, c, frame: _assert_equal(len(frame), 4),
    ),
    "servers.require_can_read_estate": Case(
        lambda e, a: servers.require_can_read_estate(a), ESTATE_READ
    ),
    # ---- users: admins manage them; everyone known and enabled sets their own password -------
    "users.add_user": Case(
        lambda e, a: users.add_user(e.ctx, a, "newbie", "analyst", password=PASSWORD),
        ADMIN_WRITE,
        writes=True,
        check=_check_user_added,
    ),
    "users.change_role": Case(
        lambda e, a: users.change_role(e.ctx, a, ANALYST.username, "manager"),
        ADMIN_WRITE,
        writes=True,
        check=_check_role_changed,
    ),
    "users.set_disabled": Case(
        lambda e, a: users.set_disabled(e.ctx, a, ANALYST.username, True),
        ADMIN_WRITE,
        writes=True,
        check=_check_disabled,
    ),
    "users.reset_password": Case(
        lambda e, a: users.reset_password(e.ctx, a, ANALYST.username),
        ADMIN_WRITE,
        writes=True,
        check=_check_reset,
    ),
    "users.set_own_password": Case(
        lambda e, a: users.set_own_password(e.ctx, a, PASSWORD, "new-password-456"),
        OWN_ACCOUNT,
        writes=True,
        check=_check_own_password,
        notes="a disabled or unknown account is refused as NotFound (no enabled user by that name)",
    ),
    # ---- single sign-on: admins change the sign-in settings and read who signs in how --------
    "sso.set_provider_settings": Case(
        lambda e, a: sso.set_provider_settings(
            with_sso(e.ctx),
            a,
            "okta",
            auto_create=False,
            role_claim="groups",
            role_map={"admin": ["ops"]},
        ),  # fmt: skip
        ADMIN_WRITE,
        writes=True,
        check=_check_provider_settings,
    ),
    "sso.clear_provider_settings": Case(
        lambda e, a: sso.clear_provider_settings(with_sso(e.ctx), a, "okta"),
        ADMIN_WRITE,
        writes=True,
        check=_check_provider_cleared,
    ),
    "sso.set_local_sign_in": Case(
        lambda e, a: sso.set_local_sign_in(with_sso(e.ctx), a, False),
        ADMIN_WRITE,
        writes=True,
        check=_check_local_off,
    ),
    "sso.set_break_glass": Case(
        lambda e, a: sso.set_break_glass(e.ctx, a, ANALYST.username, True),
        ADMIN_WRITE,
        writes=True,
        check=_check_break_glass,
    ),
    "sso.provider_settings": Case(
        lambda e, a: sso.provider_settings(with_sso(e.ctx), a),
        ADMIN_READ,
        check=lambda e, c, views: _assert_equal([v.source for v in views], ["Users page"]),
    ),
    "sso.sign_in_methods": Case(
        lambda e, a: sso.sign_in_methods(e.ctx, a), ADMIN_READ, check=_check_methods
    ),
    # ---- alerts: admins any rule, managers their own pools', analysts read ---------------------
    "alerts.create_rule": Case(
        lambda e, a: alerts.create_rule(
            e.ctx, a, name="watch", kind="pool_nearly_full", threshold=80, pool_id=e.ids.bob_pool
        ),
        {**POOL_WRITE, "other_manager": HIDDEN, "demoted": HIDDEN},
        writes=True,
        check=_check_rule_created,
        notes="a pool rule for someone else's pool is not found",
    ),
    "alerts.set_rule_enabled": Case(
        lambda e, a: alerts.set_rule_enabled(e.ctx, a, e.ids.bob_rule, False),
        {**POOL_WRITE, "other_manager": HIDDEN, "demoted": HIDDEN},
        writes=True,
        check=_check_rule_off,
        notes="someone else's rule is not found",
    ),
    "alerts.delete_rule": Case(
        lambda e, a: alerts.delete_rule(e.ctx, a, e.ids.bob_rule),
        {**POOL_WRITE, "other_manager": HIDDEN, "demoted": HIDDEN},
        writes=True,
        check=_check_rule_gone,
    ),
    "alerts.send_test": Case(
        lambda e, a: alerts.send_test(e.ctx, a, e.ids.bob_rule),
        {**POOL_WRITE, "other_manager": HIDDEN, "demoted": HIDDEN},
        writes=True,
        check=_check_test_sent,
    ),
    "alerts.acknowledge": Case(
        lambda e, a: alerts.acknowledge(e.ctx, a, [e.ids.bob_alert]),
        {**POOL_WRITE, "other_manager": HIDDEN, "demoted": HIDDEN},
        writes=True,
        check=_check_acknowledged,
        notes="an alert about someone else's pool is not found",
    ),
    "alerts.list_rules": Case(
        lambda e, a: alerts.list_rules(e.ctx, a), SCOPED_READ, check=_rule_owners
    ),
    "alerts.list_alerts": Case(
        lambda e, a: alerts.list_alerts(e.ctx, a, open_only=True),
        SCOPED_READ,
        check=only_visible_pools(_column("pool_id")),
    ),
    "alerts.open_alert_count": Case(
        lambda e, a: alerts.open_alert_count(e.ctx, a), SCOPED_READ, check=_open_alerts_counted
    ),
    "alerts.list_deliveries": Case(
        lambda e, a: alerts.list_deliveries(e.ctx, a),
        SCOPED_READ,
        check=_deliveries_of_own_rules,
    ),
    # ---- quantity requests: managers their own pools', admins decide, analysts read ----------
    "requests.create_request": Case(
        lambda e, a: requests.create_request(e.ctx, a, e.ids.bob_pool, CAD, 3, "new team"),
        POOL_WRITE,
        writes=True,
        check=_check_request_created,
    ),
    "requests.decide": Case(
        lambda e, a: requests.decide(e.ctx, a, e.ids.bob_request, "approve"),
        ADMIN_WRITE,
        writes=True,
        check=_check_request_approved,
        notes="the pool grows through pools.update_pool_in in the same write",
    ),
    "requests.withdraw": Case(
        lambda e, a: requests.withdraw(e.ctx, a, e.ids.bob_request),
        {
            "admin": DENY,
            "own_manager": ALLOW,
            "other_manager": HIDDEN,
            "analyst": DENY,
            **REFUSED_STORED,
            "demoted": HIDDEN,
        },
        writes=True,
        check=_check_request_withdrawn,
        notes="only the requester; an admin declines instead",
    ),
    "requests.list_requests": Case(
        lambda e, a: requests.list_requests(e.ctx, a),
        SCOPED_READ,
        check=only_visible_pools(_column("pool_id")),
        notes="analysts read every request (and change none)",
    ),
    "requests.open_request_count": Case(
        lambda e, a: requests.open_request_count(e.ctx, a),
        ADMIN_READ,
        check=lambda e, c, count: _assert_equal(count, 2),
    ),
    "requests.requestable_features": Case(
        lambda e, a: requests.requestable_features(e.ctx, a, e.ids.bob_pool),
        POOL_READ,
        check=lambda e, c, frame: _assert_equal(frame["feature_name"].tolist(), ["cad"]),
    ),
    "notifications.set_own_destinations": Case(
        lambda e, a: notifications.set_own_destinations(e.ctx, a, "json://127.0.0.1:9/me"),
        OWN_TOKEN_WRITE,
        writes=True,
        check=_check_destinations_set,
        notes="anyone active sets their own destinations",
    ),
    "notifications.send_own_test": Case(
        lambda e, a: notifications.send_own_test(e.ctx, a),
        {
            "admin": ALLOW,
            "own_manager": ALLOW,
            "other_manager": ALLOW,
            "analyst": ALLOW,
            **REFUSED_STORED,
            "demoted": ALLOW,
        },
        writes=True,
        check=_check_own_test_sent,
        notes="anyone active tests their own destinations (the estate gives each one)",
    ),
    "notifications.own_destinations": Case(
        lambda e, a: notifications.own_destinations(e.ctx, a),
        {**OWN_ACCOUNT, "disabled_admin": STALE_ALLOW, "unknown": STALE_ALLOW},
        check=lambda e, c, labels: _assert_equal(
            labels, [] if c in ("disabled_admin", "unknown") else ["json://127.0.0.1:9/hook"]
        ),
    ),
    "pools.update_pool_in": Case(
        lambda e, a: e.ctx.db.write(
            lambda cur: pools.update_pool_in(cur, a, e.ids.bob_pool, quantities={CAD: 8})
        ),
        ADMIN_WRITE,
        writes=True,
        check=_check_pool_resized,
        notes="the checks of update_pool, inside the caller's write",
    ),
    # ---- harvesting: everyone reads (managers their pools), managers release their own -------
    "harvesting.idle_report": Case(
        lambda e, a: harvesting.idle_report(e.ctx, a, 30),
        SCOPED_READ,
        check=only_visible_pools(lambda e, report: report.allocations["pool_id"]),
    ),
    "harvesting.idle_seats": Case(
        lambda e, a: harvesting.idle_seats(e.ctx, a, 30), SCOPED_READ, check=_idle_seats_scoped
    ),
    "harvesting.release_idle": Case(
        lambda e, a: harvesting.release_idle(e.ctx, a, e.ids.bob_pool, [e.ids.bob_idle], 30),
        POOL_WRITE,
        writes=True,
        check=_check_idle_released,
    ),
    "harvesting.list_prices": Case(lambda e, a: harvesting.list_prices(e.ctx, a), SCOPED_READ),
    "harvesting.set_price": Case(
        lambda e, a: harvesting.set_price(e.ctx, a, CAD, 250),
        ADMIN_WRITE,
        writes=True,
        check=_check_price_set,
    ),
    "harvesting.harvest_policy": Case(
        lambda e, a: harvesting.harvest_policy(e.ctx, a), SCOPED_READ
    ),
    "harvesting.set_harvest_policy": Case(
        lambda e, a: harvesting.set_harvest_policy(
            e.ctx, a, enabled=True, warn_after_days=30, release_after_days=60
        ),
        ADMIN_WRITE,
        writes=True,
        check=_check_policy_set,
    ),
    "tokens.create_token": Case(
        lambda e, a: tokens.create_token(e.ctx, a, "ci job", read_only=True),
        OWN_TOKEN_WRITE,
        writes=True,
        check=_check_token_created,
        notes="anyone active may make a token for themselves; it carries their role as stored",
    ),
    "tokens.list_own_tokens": Case(
        lambda e, a: tokens.list_own_tokens(e.ctx, a),
        {**OWN_ACCOUNT, "disabled_admin": STALE_ALLOW, "unknown": STALE_ALLOW},
        check=_check_own_tokens,
        notes="only the caller's own tokens; a stale session sees its own (or none)",
    ),
    "tokens.list_all_tokens": Case(
        lambda e, a: tokens.list_all_tokens(e.ctx, a), ADMIN_READ, check=_check_all_tokens
    ),
    "tokens.revoke_token": Case(
        lambda e, a: tokens.revoke_token(e.ctx, a, e.ids.bob_token),
        {
            "admin": ALLOW,
            "own_manager": ALLOW,
            "other_manager": HIDDEN,
            "analyst": HIDDEN,
            **REFUSED_STORED,
            "demoted": HIDDEN,
        },
        writes=True,
        check=_check_token_revoked,
        notes="one's own token, or anyone's for an admin; someone else's token is not found",
    ),
    "users.list_users": Case(
        lambda e, a: users.list_users(e.ctx, a), ADMIN_READ, check=_check_usernames
    ),
    "users.managers": Case(
        lambda e, a: users.managers(e.ctx, a), ADMIN_READ, check=_check_managers
    ),
    # ---- audit and drift: admins ----------------------------------------------------------------
    "audit.audit_log": Case(lambda e, a: audit.audit_log(e.ctx, a), ADMIN_READ, check=_check_audit),
    "audit.audit_actions": Case(
        lambda e, a: audit.audit_actions(e.ctx, a),
        ADMIN_READ,
        check=lambda e, c, actions: _assert_true("allocation.add" in actions),
    ),
    "drift_history.drift_history": Case(
        lambda e, a: drift_history.drift_history(e.ctx, a), ADMIN_READ
    ),
    # ---- dashboards ----------------------------------------------------------------------------
    "reports.kpis": Case(lambda e, a: reports.kpis(e.ctx, a), SCOPED_READ, check=_kpis_scoped),
    "reports.pool_stack": Case(
        lambda e, a: reports.pool_stack(e.ctx, a),
        SCOPED_READ,
        check=only_visible_pools(_column("pool_id")),
    ),
    "reports.pool_trend": Case(
        lambda e, a: reports.pool_trend(e.ctx, a, e.ids.bob_pool, days=1),
        POOL_READ,
        check=lambda e, c, frame: _assert_equal(frame["quantity"].tolist()[-1:], [6]),
    ),
    "reports.server_stack": Case(lambda e, a: reports.server_stack(e.ctx, a), ESTATE_READ),
    "reports.license_kinds": Case(lambda e, a: reports.license_kinds(e.ctx, a), ESTATE_READ),
    "reports.vlm_stack": Case(lambda e, a: reports.vlm_stack(e.ctx, a), ESTATE_READ),
    "reports.over_committed": Case(lambda e, a: reports.over_committed(e.ctx, a), ESTATE_READ),
    "reports.server_trend": Case(
        lambda e, a: reports.server_trend(e.ctx, a, e.ids.server_id, days=1), ESTATE_READ
    ),
    "reports.utilization_history": Case(
        lambda e, a: reports.utilization_history(e.ctx, a, days=1), ESTATE_READ
    ),
    "reports.utilization_history_query": Case(
        _run_query(reports.utilization_history_query), ESTATE_READ
    ),
    "reports.utilization_history_count": Case(
        lambda e, a: reports.utilization_history_count(e.ctx, a, days=1), ESTATE_READ
    ),
    # ---- exports -------------------------------------------------------------------------------
    "exports.pools_with_features": Case(
        lambda e, a: exports.pools_with_features(e.ctx, a),
        SCOPED_READ,
        check=only_visible_pools(_column("pool_id")),
    ),
    "exports.allocations_export": Case(
        lambda e, a: exports.allocations_export(e.ctx, a),
        SCOPED_READ,
        check=only_visible_pools(_column("pool_id")),
    ),
    "exports.allocations_csv": Case(
        lambda e, a: exports.allocations_csv(e.ctx, a),
        SCOPED_READ,
        check=only_visible_pools(_csv_column("pool_id")),
    ),
    "exports.server_features_export": Case(
        lambda e, a: exports.server_features_export(e.ctx, a), ESTATE_READ
    ),
    "exports.utilization_export": Case(
        lambda e, a: exports.utilization_export(e.ctx, a, days=1), ESTATE_READ
    ),
    "exports.utilization_csv": Case(
        lambda e, a: exports.utilization_csv(e.ctx, a, days=1),
        ESTATE_READ,
        check=lambda e, c, data: _assert_true(data.startswith(b"server_name,")),
    ),
    # ---- the checks themselves -----------------------------------------------------------------
    "permissions.require_admin": Case(
        lambda e, a: permissions.require_admin(a),
        {**ADMIN_READ, "demoted": ALLOW},
        notes="the fast path sees only the Actor; the *_in check inside the write counts",
    ),
    "permissions.require_can_write": Case(
        lambda e, a: permissions.require_can_write(a),
        {**SCOPED_READ, "analyst": DENY, "demoted": ALLOW},
    ),
    "permissions.require_pool_read": Case(
        lambda e, a: permissions.require_pool_read(e.ctx.db, a, e.ids.bob_pool), POOL_READ
    ),
    "permissions.require_pool_write": Case(
        lambda e, a: permissions.require_pool_write(e.ctx.db, a, e.ids.bob_pool),
        {**POOL_WRITE, "disabled_admin": ALLOW, "unknown": ALLOW, "demoted": ALLOW},
        notes="the fast path sees only the Actor; require_pool_write_in counts",
    ),
    "permissions.pool_scope_sql": Case(
        _scoped_pool_ids,
        SCOPED_READ,
        check=only_visible_pools(lambda e, ids: ids),
    ),
    "permissions.require_active_user_in": Case(
        _in_write(permissions.require_active_user_in),
        {**OWN_ACCOUNT, "disabled_admin": DENY, "unknown": DENY},
        check=_check_roles(
            {
                "admin": Role.ADMIN,
                "own_manager": Role.MANAGER,
                "other_manager": Role.MANAGER,
                "analyst": Role.ANALYST,
                "demoted": Role.MANAGER,
            }
        ),
    ),
    "permissions.require_admin_in": Case(_in_write(permissions.require_admin_in), ADMIN_WRITE),
    "permissions.require_pool_write_in": Case(
        lambda e, a: e.ctx.db.write(
            lambda cur: permissions.require_pool_write_in(cur, a, e.ids.bob_pool)
        ),
        POOL_WRITE,
    ),
}


# Take an actor but have no rule of their own: they run inside a service's write, after its check.
NO_GATE_OF_THEIR_OWN: dict[str, str] = {
    "tokens.require_writable": "the read-only token gate, not a role gate (see tests/api)",
    "idempotency.begin": "API plumbing keyed by the signed-in user; the request checks itself",
    "idempotency.finish": "stores the answer of a request that passed its own checks",
    "idempotency.abandon": "releases the caller's own claim after a failed request",
    "audit.record": "writes an audit row in the calling service's transaction, after its check",
    "audit.record_many": "the bulk form of audit.record, same transaction, same check",
}

# Public service functions with no actor: outside the matrix, each for the reason given.
NOT_ACTOR_SCOPED: dict[str, str] = {
    "tokens.authenticate": "turns a bearer token into the Actor every other call is checked with",
    "tokens.hash_token": "pure: the SHA-256 digest a token is stored and found by",
    "idempotency.request_fingerprint": "pure: a digest of a request's method, path and body",
    "idempotency.validate_key": "pure: checks an Idempotency-Key's text",
    "bulk.parse_bulk_allocations": "parses pasted text; reads and writes nothing",
    "harvesting.apply_harvest_policy": "the scheduler's policy pass: acts as the system",
    "harvesting.idle_days_shown": "the default age pages show: the policy's, no pool data",
    "harvesting.validate_idle_days": "pure: input rule",
    "pools.check_durations": "pure: checks a default and maximum duration in days",
    "exports.query_count": "counts a query an actor-scoped *_query function built",
    "exports.query_csv": "writes CSV of a query an actor-scoped *_query function built",
    "exports.query_preview": "previews a query an actor-scoped *_query function built",
    "exports.safe_csv_sql": "pure: wraps SQL so text cells are formula-safe",
    "exports.to_csv_bytes": "pure: a frame the caller already read as CSV",
    "exports.unique_headers": "pure: numbers repeated column names",
    "logins.clear_failed_attempts": "sign-in bookkeeping: there is no actor before sign-in",
    "logins.dummy_password_hash": "pure: equal bcrypt cost for unknown users",
    "logins.failed_attempts": "sign-in bookkeeping: there is no actor before sign-in",
    "logins.register_login_attempt": "sign-in bookkeeping: there is no actor before sign-in",
    "logins.sign_in": "the sign-in itself: it makes the actor",
    "logins.sign_in_oidc": "the OIDC sign-in itself: it makes the actor from the IdP's claims",
    "logins.local_sign_in_allowed": "asked by the sign-in and each run of a password session",
    "logins.oidc_method": "pure: the audited method name of a provider",
    "sso.configured": "the providers of secrets.toml, for the sign-in page",
    "sso.effective_provider": "the provider as sign-in applies it: before there is an actor",
    "sso.local_sign_in_enabled": "the sign-in page's switch: before there is an actor",
    "sso.keeps_break_glass_admin": "runs inside an admin's write, after that write's own check",
    "sso.validate_role_map": "pure: input rule",
    "permissions.pool_manager": "reads a pool's manager for the checks that take the actor",
    "reports.clear_caches": "forgets cached frames; no data",
    "reports.trend_window": "pure: the time grid of a trend",
    "users.actor_for": "builds the actor from a signed-in username (refuses disabled/unknown)",
    "users.authenticator_credentials": "the sign-in form's credentials: before there is an actor",
    "users.check_password": "pure: bcrypt comparison",
    "users.get_user": "the signed-in user's own profile, read by the session",
    "users.has_users": "first-run check before anyone can sign in",
    "users.hash_password": "pure: bcrypt hash",
    "users.one_time_password": "pure: a random password",
    "users.validate_password": "pure: input rule",
    "users.validate_username": "pure: input rule",
}

"""Quantity requests: a manager asks for more of a feature for their pool, an admin decides.

A manager requests for a pool they manage (admins for any pool); the feature must be one the
pool's VLM carries. An admin approves (the pool grows by the quantity asked), approves partly
(by less) or declines with a reason; the pool grows through pools.update_pool_in, the one path
that changes a pool's quantities, so the accounting rules refuse a growth the VLM cannot give,
and then nothing changes. The requester withdraws their own open request. Managers see the
requests about the pools they manage, admins and analysts every one; analysts change nothing.
The requester hears of the decision, and admins of a new request, through their own
notification destinations (Profile page).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from vlm.alerting.notify import notify_user, notify_users
from vlm.context import ServiceContext
from vlm.domain import (
    DESCRIPTION_MAX_LENGTH,
    QUANTITY_MAX,
    Actor,
    Conflict,
    NotFound,
    PermissionDenied,
    Role,
    ValidationError,
    bounded_int,
    clean_text,
    optional_text,
    record_id,
    validate_feature,
)
from vlm.services import audit, pools
from vlm.services.permissions import (
    pool_scope_sql,
    require_active_user_in,
    require_admin,
    require_admin_in,
    require_can_write,
    require_pool_read,
    require_pool_write_in,
)
from vlm.services.tokens import require_writable
from vlm.store import pools as pool_store
from vlm.store import requests as store

OPEN = store.OPEN
APPROVED, PARTLY_APPROVED, DECLINED, WITHDRAWN = (
    "approved",
    "partly approved",
    "declined",
    "withdrawn",
)
STATES = (OPEN, APPROVED, PARTLY_APPROVED, DECLINED, WITHDRAWN)
DECISIONS = {"approve": APPROVED, "partial": PARTLY_APPROVED, "decline": DECLINED}


@dataclass(frozen=True)
class Decision:
    """What an admin decided: the state it leaves and the quantity granted (None: none)."""

    state: str
    granted: int | None
    reason: str


def _reason(value: object, field: str, *, required: bool) -> str:
    if required:
        if value is None:
            raise ValidationError(f"{field.replace('_', ' ')} is empty", field=field)
        return clean_text(value, field, max_len=DESCRIPTION_MAX_LENGTH, multiline=True)
    return optional_text(value, field, max_len=DESCRIPTION_MAX_LENGTH)


def _audited(request: dict) -> dict:
    keys = ("pool_id", "feature_name", "feature_version", "quantity", "state", "granted")
    return {k: request[k] for k in keys}


def _feature_label(request: dict) -> str:
    return f"{request['feature_name']} {request['feature_version']}".strip()


def create_request(
    ctx: ServiceContext,
    actor: Actor,
    pool_id: object,
    feature: object,
    quantity: object,
    reason: object,
) -> int:
    """Ask for `quantity` more of a feature (name, version) for a pool, saying why."""
    require_writable(actor)
    require_can_write(actor)
    pool_id = record_id(pool_id, "pool")
    name, version = validate_feature(feature)
    quantity = bounded_int(quantity, "quantity", minimum=1, maximum=QUANTITY_MAX)
    reason = _reason(reason, "reason", required=True)

    def write(cur) -> int:
        require_pool_write_in(cur, actor, pool_id)
        if not store.vlm_carries(cur, pool_id, name, version):
            raise ValidationError(
                f"the pool's VLM has no counted feature {name} {version}".rstrip(),
                field="feature",
            )
        row = {
            "pool_id": pool_id,
            "feature_name": name,
            "feature_version": version,
            "quantity": quantity,
            "reason": reason,
            "requested_by": actor.username,
        }
        request_id = store.insert_request(cur, row)
        after = {**row, "state": OPEN, "granted": None}
        audit.record(
            cur, actor, "quantity_request.create", "quantity_request", request_id, None, after
        )
        pool = pool_store.pool_name(cur, pool_id)
        notify_users(
            cur,
            [a for a in store.enabled_admins(cur) if a != actor.username],
            f"VLM: {actor.username} requests {quantity} more {name} for pool {pool}",
            f"Reason: {reason}\nDecide on the Requests page.",
        )
        return request_id

    return ctx.db.write(write)


def _decision(decision: object, granted: object, reason: object) -> tuple[str, int | None, str]:
    """The decision's state, its granted quantity as given (checked against the request later)
    and its reason (required to decline)."""
    if not isinstance(decision, str) or decision not in DECISIONS:
        raise ValidationError(f"decision must be one of {', '.join(DECISIONS)}", field="decision")
    state = DECISIONS[decision]
    text = _reason(reason, "reason", required=state == DECLINED)
    amount = None
    if state == PARTLY_APPROVED:
        if granted is None:
            raise ValidationError("say how many to grant", field="granted")
        amount = bounded_int(granted, "granted", minimum=1, maximum=QUANTITY_MAX)
    return state, amount, text


def _grant(state: str, asked: int, given: int | None) -> int | None:
    if state == APPROVED:
        return asked
    if state == PARTLY_APPROVED:
        if given is None or given >= asked:
            raise ValidationError(
                f"a partial approval grants less than the {asked} asked (1 to {asked - 1}); "
                "approve to grant all",
                field="granted",
            )
        return given
    return None


def _grow_pool(cur, actor: Actor, request: dict, granted: int) -> None:
    """The pool's quantity of the feature grows by `granted`, through the pool service."""
    key = (str(request["feature_name"]), str(request["feature_version"]))
    held = {(n, v): q for n, v, q in pool_store.feature_quantities(cur, request["pool_id"])}
    try:
        pools.update_pool_in(
            cur, actor, int(request["pool_id"]), quantities={key: held.get(key, 0) + granted}
        )
    except ValidationError as exc:
        raise ValidationError(
            f"cannot grant {granted} more {_feature_label(request)}: {exc.message}",
            field="granted",
        ) from None


def _open_request(cur, request_id: int) -> dict:
    request = store.request_in(cur, request_id)
    if request is None:
        raise NotFound(f"request {request_id} does not exist", field="request")
    if request["state"] != OPEN:
        raise Conflict(f"request {request_id} is {request['state']} already", field="request")
    return request


def decide(
    ctx: ServiceContext,
    actor: Actor,
    request_id: object,
    decision: object,
    *,
    granted: object = None,
    reason: object = None,
) -> Decision:
    """Approve (grant all), approve partly (grant 1 to asked - 1) or decline (reason required)
    an open request; an approval grows the pool in the same transaction (admins)."""
    require_writable(actor)
    require_admin(actor)
    request_id = record_id(request_id, "request")
    state, given, text = _decision(decision, granted, reason)

    def write(cur) -> Decision:
        require_admin_in(cur, actor)
        request = _open_request(cur, request_id)
        amount = _grant(state, int(request["quantity"]), given)
        if amount is not None:
            _grow_pool(cur, actor, request, amount)
        store.decide(cur, request_id, state, amount, actor.username, text)
        after = {**_audited(request), "state": state, "granted": amount, "reason": text}
        audit.record(
            cur,
            actor,
            f"quantity_request.{state.replace(' ', '_')}",
            "quantity_request",
            request_id,
            _audited(request),
            after,
        )
        outcome = f"granted {amount} of {request['quantity']}" if amount else "declined it"
        where = f" for pool {request['pool_label']}"
        notify_user(
            cur,
            str(request["requested_by"]),
            f"VLM: your request for {request['quantity']} {_feature_label(request)} was {state}",
            f"{actor.username} {outcome}{where}." + (f"\nReason: {text}" if text else ""),
        )
        return Decision(state, amount, text)

    return ctx.db.write(write)


def withdraw(ctx: ServiceContext, actor: Actor, request_id: object) -> None:
    """The requester takes back their own open request."""
    require_writable(actor)
    require_can_write(actor)
    request_id = record_id(request_id, "request")

    def write(cur) -> None:
        role = require_active_user_in(cur, actor)
        if role is Role.ANALYST:
            raise PermissionDenied(f"{actor.username} is an analyst and may not change anything")
        request = store.request_in(cur, request_id)
        if request is None or (role is Role.MANAGER and request["manager"] != actor.username):
            raise NotFound(f"request {request_id} does not exist", field="request")
        if request["requested_by"] != actor.username:
            raise PermissionDenied(
                f"only {request['requested_by']} may withdraw this request; decline it instead",
                field="request",
            )
        request = _open_request(cur, request_id)
        store.decide(cur, request_id, WITHDRAWN, None, actor.username, "")
        after = {**_audited(request), "state": WITHDRAWN}
        audit.record(
            cur,
            actor,
            "quantity_request.withdraw",
            "quantity_request",
            request_id,
            _audited(request),
            after,
        )

    ctx.db.write(write)


def list_requests(ctx: ServiceContext, actor: Actor, *, open_only: bool = False) -> pd.DataFrame:
    """Requests with the pool's quantity and the VLM's availability of the feature now, newest
    first: a manager's about the pools they manage, every one for admins and analysts."""
    return store.requests_frame(ctx.db, pool_scope_sql(actor), open_only=open_only)


def open_request_count(ctx: ServiceContext, actor: Actor) -> int:
    """How many requests wait for a decision (admins: the sidebar's count)."""
    require_admin(actor)
    return store.open_count(ctx.db)


def requestable_features(ctx: ServiceContext, actor: Actor, pool_id: object) -> pd.DataFrame:
    """The features a pool may ask more of (its VLM's counted ones), with the pool's quantity
    and the VLM's availability of each."""
    pool_id = record_id(pool_id, "pool")
    require_pool_read(ctx.db, actor, pool_id)
    return store.requestable_features(ctx.db, pool_id)

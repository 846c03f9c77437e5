"""Quantity requests: a manager's form and their requests (My Pools), the admins' open requests
with the VLM's availability and a decision each (Requests page), the history, and the sidebar's
count of requests waiting for admins."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from vlm.services import requests
from vlm.ui.confirm import Question, confirmed_action
from vlm.ui.memo import per_generation
from vlm.ui.navigation import page_path_of
from vlm.ui.session import PageContext
from vlm.ui.widgets import attempt, field_slots, flash, table_with_download

OPEN_COLUMNS = [
    "id",
    "vlm_name",
    "pool_name",
    "feature_name",
    "feature_version",
    "quantity",
    "pool_quantity",
    "vlm_available",
    "reason",
    "requested_by",
    "requested_at",
]
HISTORY_COLUMNS = [
    "id",
    "vlm_name",
    "pool_name",
    "feature_name",
    "feature_version",
    "quantity",
    "state",
    "granted",
    "decision_reason",
    "decided_by",
    "decided_at",
    "reason",
    "requested_by",
    "requested_at",
]
LABELS = {
    "quantity": "Asked",
    "pool_quantity": "Pool has",
    "vlm_available": "VLM available",
    "granted": "Granted",
    "decision_reason": "Decision reason",
    "requested_by": "Requested by",
    "requested_at": "Requested",
    "decided_by": "Decided by",
    "decided_at": "Decided",
}
DECISION_LABELS = {
    "approve": "Approve all",
    "partial": "Approve partly",
    "decline": "Decline",
}


def sidebar_count(page: PageContext) -> None:
    """Admins: how many requests wait for a decision, linking to the Requests page."""
    if not page.actor.is_admin:
        return
    count = per_generation(
        page, "requests: open count", lambda: requests.open_request_count(page.ctx, page.actor)
    )
    if count:
        with st.sidebar:
            st.page_link(
                page_path_of("requests"),
                label=f"{count} open request(s)",
                icon=":material/move_up:",
            )


def _all_requests(page: PageContext) -> pd.DataFrame:
    return per_generation(
        page, "requests: all", lambda: requests.list_requests(page.ctx, page.actor)
    )


def _feature_label(row: pd.Series) -> str:
    name = f"{row['feature_name']} {row['feature_version']}".strip()
    return f"{name} (pool has {row['pool_quantity']}, VLM has {row['vlm_available']} available)"


def request_form(page: PageContext, pools: dict[int, str]) -> None:
    """Pick a pool and one of its VLM's features, say how many more and why."""
    pool_id = st.selectbox("Pool", list(pools), format_func=pools.get, key="request_pool")
    pool_slot = st.empty()
    if pool_id is None:
        return
    features = per_generation(
        page,
        "requests: features",
        lambda: requests.requestable_features(page.ctx, page.actor, pool_id),
        pool_id,
    )
    if features.empty:
        st.info("This pool's VLM has no counted feature to ask for.")
        return
    labels = {i: _feature_label(row) for i, row in features.iterrows()}
    made = st.session_state.get("_requests_made", 0)
    with st.form(f"new_request_{made}"):
        chosen = st.selectbox("Feature", list(labels), format_func=labels.get)
        fields = field_slots(feature=st)
        quantity = st.number_input("How many more", min_value=1, value=1, step=1)
        fields |= field_slots(quantity=st)
        reason = st.text_area("Reason", placeholder="e.g. two designers start in January")
        fields |= field_slots(reason=st)
        fields["pool"] = pool_slot
        send = st.form_submit_button("Send request", type="primary", icon=":material/send:")
    if send:
        row = features.loc[chosen]
        feature = (str(row["feature_name"]), str(row["feature_version"]))
        outcome = attempt(
            requests.create_request,
            page.ctx,
            page.actor,
            pool_id,
            feature,
            int(quantity),
            reason,
            fields=fields,
        )
        if outcome.ok:
            st.session_state["_requests_made"] = made + 1
            flash(f"Request for {int(quantity)} more {feature[0]} sent to the admins.")
            st.rerun()


def own_requests(page: PageContext) -> None:
    """The requests about the actor's pools (all, for admins) with their state and decision;
    the actor's own open ones may be withdrawn."""
    frame = _all_requests(page)
    if frame.empty:
        st.caption("No request yet.")
        return
    table_with_download(
        frame,
        "quantity requests",
        key="my_requests",
        column_order=HISTORY_COLUMNS,
        column_config=LABELS,
    )
    mine = frame[(frame["state"] == requests.OPEN) & (frame["requested_by"] == page.actor.username)]
    if mine.empty:
        return
    labels = {
        int(r["id"]): f"#{r['id']} {r['quantity']} more {r['feature_name']} for {r['pool_name']}"
        for _, r in mine.iterrows()
    }
    chosen = st.selectbox(
        "Open request", list(labels), format_func=labels.get, key="withdraw_choice"
    )
    if chosen is None:
        return
    confirmed_action(
        "Withdraw…",
        key="withdraw_request",
        question=Question(
            f"withdraw_request_{chosen}",
            f"Withdraw request {labels[chosen]}? The admins will no longer see it as open.",
            "Withdraw request",
        ),
        act=lambda: requests.withdraw(page.ctx, page.actor, chosen),
        done=f"Request {labels[chosen]} withdrawn.",
        icon=":material/undo:",
    )


def _decision_question(request: pd.Series, decision: str, granted: int, reason: str) -> str:
    feature = f"{request['feature_name']} {request['feature_version']}".strip()
    where = f"pool {request['vlm_name']} / {request['pool_name']}"
    if decision == "decline":
        return f"Decline {request['requested_by']}'s request for {request['quantity']} {feature}?"
    grow = request["quantity"] if decision == "approve" else granted
    return (
        f"Grow {where} by {grow} {feature} (from {request['pool_quantity']} to "
        f"{request['pool_quantity'] + grow}; the VLM has {request['vlm_available']} available)? "
        f"{request['requested_by']} is told." + (f" Reason: {reason}" if reason else "")
    )


def _decide(page: PageContext, request: pd.Series) -> None:
    request_id = int(request["id"])
    decision = st.radio(
        "Decision",
        list(DECISION_LABELS),
        format_func=DECISION_LABELS.get,
        horizontal=True,
        key=f"decision_{request_id}",
    )
    granted = 1
    asked = int(request["quantity"])
    if decision == "partial":
        granted = int(
            st.number_input(
                f"Grant (1 to {max(asked - 1, 1)})",
                min_value=1,
                max_value=max(asked - 1, 1),
                value=max(asked // 2, 1),
                step=1,
                key=f"granted_{request_id}",
            )
        )
    reason = st.text_area(
        "Reason" + (" (required)" if decision == "decline" else " (optional)"),
        key=f"decision_reason_{request_id}",
    )
    confirmed_action(
        f"{DECISION_LABELS[decision]}…",
        key=f"decide_{request_id}",
        question=Question(
            f"decide_{request_id}_{decision}",
            _decision_question(request, decision, granted, reason.strip()),
            DECISION_LABELS[decision],
        ),
        act=lambda: requests.decide(
            page.ctx,
            page.actor,
            request_id,
            decision,
            granted=granted if decision == "partial" else None,
            reason=reason,
        ),
        done=lambda d: flash(f"Request #{request_id} {d.state}."),
        icon=":material/gavel:",
        destructive=decision == "decline",
    )


def open_requests(page: PageContext) -> None:
    """Open requests with the pool's quantity and the VLM's availability; decide one."""
    st.subheader("Open requests")
    frame = _all_requests(page)
    waiting = frame[frame["state"] == requests.OPEN]
    if waiting.empty:
        st.success("No request waits for a decision.", icon=":material/check_circle:")
        return
    table_with_download(
        waiting,
        "open requests",
        key="open_requests",
        column_order=OPEN_COLUMNS,
        column_config=LABELS,
    )
    if not page.actor.is_admin:
        return
    labels = {
        int(r["id"]): f"#{r['id']} {r['requested_by']}: {r['quantity']} more "
        f"{r['feature_name']} for {r['vlm_name']} / {r['pool_name']}"
        for _, r in waiting.iterrows()
    }
    chosen = st.selectbox("Request", list(labels), format_func=labels.get, key="request_chosen")
    if chosen is not None:
        with st.container(border=True):
            _decide(page, waiting[waiting["id"] == chosen].iloc[0])


def history(page: PageContext) -> None:
    st.subheader("History")
    frame = _all_requests(page)
    decided = frame[frame["state"] != requests.OPEN]
    if decided.empty:
        st.caption("No request decided yet.")
        return
    table_with_download(
        decided,
        "request history",
        key="request_history",
        column_order=HISTORY_COLUMNS,
        column_config=LABELS,
    )

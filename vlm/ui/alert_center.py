"""The alert centre: open and past alerts (acknowledge, export), the rules (create, switch,
test, delete) and the messages sent; and the sidebar's count of open alerts."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from vlm.alerting.kinds import KINDS
from vlm.domain import Role
from vlm.services import alerts, pools
from vlm.ui.confirm import Question, confirmed_action
from vlm.ui.memo import per_generation
from vlm.ui.navigation import page_path_of
from vlm.ui.session import PageContext
from vlm.ui.widgets import attempt, field_slots, flash, table_with_download

ALERT_COLUMNS = ["id", "title", "detail", "rule_name", "opened_at", "cleared_at", "acknowledged_by"]
RULE_COLUMNS = ["id", "name", "kind", "threshold", "pool_name", "owner", "enabled", "destinations"]
DELIVERY_COLUMNS = [
    "id",
    "rule_name",
    "username",
    "event",
    "destination_label",
    "title",
    "status",
    "attempts",
    "created_at",
    "next_attempt_at",
    "last_error",
]
DESTINATION_HELP = (
    "One apprise URL per line: mailtos://user:password@smtp.example.com?to=ops@example.com, "
    "slack://TokenA/TokenB/TokenC, msteams://…, json://hooks.example.com/vlm (a webhook). "
    "They are stored encrypted and shown masked."
)


def sidebar_badge(page: PageContext) -> None:
    """How many open alerts the user has not acknowledged, linking to the alert centre."""
    count = per_generation(
        page, "alerts: open count", lambda: alerts.open_alert_count(page.ctx, page.actor)
    )
    if count:
        with st.sidebar:
            st.page_link(
                page_path_of("alerts"),
                label=f"{count} open alert(s)",
                icon=":material/notifications_active:",
            )


def _kind_label(kind: str) -> str:
    found = KINDS.get(kind)
    return found.label if found else kind


def acknowledge_labels(frame: pd.DataFrame) -> pd.Series:
    """An alert as the acknowledge list names it: its id, title and the rule that raised it
    (two rules may raise the same title about one pool)."""
    rule = frame["rule_name"].fillna("rule deleted")
    return "#" + frame["id"].astype(str) + " " + frame["title"] + " (" + rule + ")"


def open_alerts(page: PageContext) -> None:
    st.subheader("Open alerts")
    frame = per_generation(
        page, "alerts: open", lambda: alerts.list_alerts(page.ctx, page.actor, open_only=True)
    )
    if frame.empty:
        st.success("No open alert.", icon=":material/check_circle:")
        return
    table_with_download(frame, "open alerts", key="open_alerts", column_order=ALERT_COLUMNS)
    if page.actor.role is Role.ANALYST:
        return
    waiting = frame[frame["acknowledged_by"].isna()]
    if waiting.empty:
        st.caption("Every open alert is acknowledged.")
        return
    labels = dict(zip(waiting["id"].astype(int), acknowledge_labels(waiting), strict=True))
    chosen = st.multiselect(
        "Acknowledge", list(labels), format_func=labels.get, key="alerts_to_acknowledge"
    )
    if st.button("Acknowledge", key="acknowledge_alerts", disabled=not chosen):
        outcome = attempt(alerts.acknowledge, page.ctx, page.actor, chosen)
        if outcome.ok:
            flash(f"{outcome.value} alert(s) acknowledged.")
            st.rerun()


def past_alerts(page: PageContext) -> None:
    st.subheader("History")
    frame = per_generation(
        page, "alerts: all", lambda: alerts.list_alerts(page.ctx, page.actor, open_only=False)
    )
    st.caption("Every alert: when its condition started and when it cleared.")
    table_with_download(frame, "alert history", key="alert_history", column_order=ALERT_COLUMNS)


def _rules_shown(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(
        kind=frame["kind"].map(_kind_label),
        destinations=frame["destination_labels"].str.replace("\n", ", "),
    )


def _pool_choices(page: PageContext) -> dict[int | None, str]:
    frame = per_generation(page, "alerts: pools", lambda: pools.list_pools(page.ctx, page.actor))
    named = dict(
        zip(frame["id"].astype(int), frame["vlm_name"] + " / " + frame["name"], strict=True)
    )
    everyone = "Every pool I manage" if page.actor.role is Role.MANAGER else "Every pool"
    return {None: everyone, **named}


def new_rule_form(page: PageContext) -> None:
    kinds = [k for k in KINDS.values() if page.actor.role is Role.ADMIN or k.pool_scoped]
    kind = st.selectbox("Alert when", kinds, format_func=lambda k: k.label, key="new_rule_kind")
    with st.form("new_rule", clear_on_submit=False):
        name_col, threshold_col = st.columns(2)
        name = name_col.text_input("Rule name", value=kind.label)
        threshold = threshold_col.number_input(
            f"Threshold ({kind.unit})",
            min_value=float(kind.low),
            max_value=float(kind.high),
            value=float(kind.default),
        )
        fields = field_slots(name=name_col, threshold=threshold_col)
        pool_id = None
        if kind.pool_scoped:
            choices = _pool_choices(page)
            pool_id = st.selectbox("Pool", list(choices), format_func=choices.get)
            fields["pool"] = st.empty()
        destinations = st.text_area("Send to", help=DESTINATION_HELP, height=100)
        fields["destinations"] = st.empty()
        fields["kind"] = st.empty()
        create = st.form_submit_button("Create rule", type="primary")
    if create:
        outcome = attempt(
            alerts.create_rule,
            page.ctx,
            page.actor,
            name=name,
            kind=kind.key,
            threshold=threshold,
            pool_id=pool_id,
            destinations=destinations,
            fields=fields,
        )
        if outcome.ok:
            flash(f"Alert rule '{name.strip()}' created.")
            st.rerun()


def _rule_actions(page: PageContext, rule: pd.Series) -> None:
    rule_id = int(rule["id"])
    on_col, test_col, delete_col = st.columns(3)
    enabled = on_col.toggle("Enabled", value=bool(rule["enabled"]), key=f"rule_on_{rule_id}")
    switched = enabled != bool(rule["enabled"])
    if switched and attempt(alerts.set_rule_enabled, page.ctx, page.actor, rule_id, enabled).ok:
        flash(f"Rule '{rule['name']}' switched {'on' if enabled else 'off'}.")
        st.rerun()
    if test_col.button("Send test", key=f"rule_test_{rule_id}", icon=":material/send:"):
        with st.spinner("Sending a test message to each destination…"):
            outcome = attempt(alerts.send_test, page.ctx, page.actor, rule_id)
        if outcome.ok:
            sent = outcome.value
            if sent.delivered:
                st.success(f"Delivered to {sent.delivered} destination(s).")
            for error in sent.errors:
                st.error(f"Not delivered: {error}", icon=":material/error:")
    confirmed_action(
        "Delete rule…",
        key="delete_rule",
        container=delete_col,
        question=Question(
            f"delete_rule_{rule_id}",
            f"Delete the rule '{rule['name']}'? Its open alerts close and its unsent messages "
            "are given up; the history keeps them.",
            "Delete rule",
        ),
        act=lambda: alerts.delete_rule(page.ctx, page.actor, rule_id),
        done=f"Rule '{rule['name']}' deleted.",
    )


def rules(page: PageContext) -> None:
    st.subheader("Rules")
    frame = per_generation(page, "alerts: rules", lambda: alerts.list_rules(page.ctx, page.actor))
    if frame.empty:
        st.info("No alert rule yet.")
    else:
        table_with_download(
            _rules_shown(frame), "alert rules", key="alert_rules", column_order=RULE_COLUMNS
        )
    if page.actor.role is Role.ANALYST:
        return
    if not frame.empty:
        names = "#" + frame["id"].astype(str) + " " + frame["name"] + " (" + frame["owner"] + ")"
        labels = dict(zip(frame["id"].astype(int), names, strict=True))
        rule_id = st.selectbox("Rule", list(labels), format_func=labels.get, key="rule_selected")
        _rule_actions(page, frame[frame["id"] == rule_id].iloc[0])
    with st.expander("Create a rule", icon=":material/add_alert:", expanded=frame.empty):
        new_rule_form(page)


def _delivery_status(frame: pd.DataFrame) -> pd.Series:
    status = pd.Series("retrying", index=frame.index, dtype="object")
    status[frame["delivered_at"].notna()] = "delivered"
    status[frame["gave_up_at"].notna()] = "gave up"
    status[(frame["attempts"] == 0) & frame["delivered_at"].isna()] = "queued"
    return status


def deliveries(page: PageContext) -> None:
    st.subheader("Messages")
    frame = per_generation(
        page, "alerts: deliveries", lambda: alerts.list_deliveries(page.ctx, page.actor)
    )
    if frame.empty:
        st.caption("No message sent yet.")
        return
    shown = frame.assign(status=_delivery_status(frame))
    stuck = shown[shown["status"].isin(["retrying", "gave up"])]
    if not stuck.empty:
        st.warning(
            f"{len(stuck)} message(s) not delivered; the last error is in each row. Retrying "
            "ones are tried again with a growing wait.",
            icon=":material/warning:",
        )
    table_with_download(
        shown,
        "alert messages",
        key="alert_messages",
        column_order=DELIVERY_COLUMNS,
        column_config={"username": "To user"},
    )

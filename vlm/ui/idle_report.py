"""The Idle licenses page: reserved seats nobody used for N days (per pool, per manager, each
allocation), their release, and for admins the seat prices and the warn-then-release policy."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from vlm.domain import Role
from vlm.services import harvesting, servers
from vlm.ui.confirm import Question, confirmed_action
from vlm.ui.memo import per_generation
from vlm.ui.session import PageContext
from vlm.ui.widgets import (
    attempt,
    download_csv,
    field_slots,
    flash,
    lazy_expander,
    table_with_download,
    table_with_selection,
)

SHOWN_MAX = 5_000  # rows sent to the browser; a larger table costs the app its memory
IDLE_COLUMNS = [
    "vlm",
    "pool",
    "manager",
    "server",
    "feature_name",
    "feature_version",
    "host_type",
    "host_id",
    "count",
    "description",
    "last_seen",
    "idle_since",
    "seat_cost",
    "idle_warned_at",
]
IDLE_CONFIG = {
    "last_seen": st.column_config.DatetimeColumn("Last seen using"),
    "idle_since": st.column_config.DatetimeColumn("Idle since"),
    "seat_cost": st.column_config.NumberColumn("Seat cost", format="%.2f"),
    "idle_warned_at": st.column_config.DatetimeColumn("Warned"),
}
TOTAL_CONFIG = {
    "idle_allocations": st.column_config.NumberColumn("Idle allocations"),
    "idle_seats": st.column_config.NumberColumn("Idle seats"),
    "seat_cost": st.column_config.NumberColumn("Seat cost", format="%.2f"),
}


def default_days(page: PageContext) -> int:
    """The policy's warning age when an admin set one, else 30 days."""
    return per_generation(page, "idle: days", lambda: harvesting.idle_days_shown(page.ctx))


def chosen_days(page: PageContext) -> int:
    return int(
        st.number_input(
            "Not used for at least (days)",
            min_value=1,
            max_value=3650,
            value=default_days(page),
            step=1,
            key="idle_days",
            help="A seat is idle since its host was last seen using the feature on its license "
            "server (each sync records who the server shows using what), or since it was "
            "reserved when it never was.",
        )
    )


def report(page: PageContext, days: int) -> harvesting.IdleReport:
    return per_generation(
        page,
        "idle: report",
        lambda: harvesting.idle_report(page.ctx, page.actor, days),
        days,
    )


def summary(found: harvesting.IdleReport) -> None:
    cost = found.seat_cost
    columns = st.columns(3)
    columns[0].metric("Idle allocations", f"{len(found.allocations):,}", border=True)
    columns[1].metric("Idle seats", f"{found.idle_seats:,}", border=True)
    columns[2].metric(
        "Their cost",
        f"{cost:,.2f}" if cost else "–",
        help="seats × the price per seat an admin entered (features without a price count 0)",
        border=True,
    )


def totals(page: PageContext, found: harvesting.IdleReport) -> None:
    st.subheader("Per pool")
    table_with_download(
        found.per_pool, "idle seats per pool", key="idle_per_pool", column_config=TOTAL_CONFIG
    )
    if page.actor.role is not Role.MANAGER:
        st.subheader("Per manager")
        table_with_download(
            found.per_manager,
            "idle seats per manager",
            key="idle_per_manager",
            column_config=TOTAL_CONFIG,
        )


def allocations(page: PageContext, found: harvesting.IdleReport) -> None:
    st.subheader("Idle allocations")
    every = found.allocations
    if every.empty:
        st.success(f"No seat has been idle for {found.days} days.", icon=":material/check_circle:")
        return
    frame = every.head(SHOWN_MAX)  # idle longest first
    if len(every) > SHOWN_MAX:
        st.caption(
            f"The {SHOWN_MAX:,} idle longest of {len(every):,} are listed (the sums above count "
            "them all); the CSV below the table has every one."
        )
    if page.actor.role is Role.ANALYST:
        table_with_download(
            frame,
            "idle allocations",
            key="idle_allocations",
            column_order=IDLE_COLUMNS,
            column_config=IDLE_CONFIG,
        )
    else:
        st.caption("Tick the allocations to release: each reservation leaves its license server.")
        rows = table_with_selection(
            frame,
            "idle allocations",
            key="idle_allocations",
            column_order=IDLE_COLUMNS,
            column_config=IDLE_CONFIG,
        )
        _release_button(page, frame.iloc[rows], found.days)
    if len(every) > SHOWN_MAX:
        download_csv(
            every[IDLE_COLUMNS],
            "all idle allocations",
            key="download_all_idle",
            column_config=IDLE_CONFIG,
        )


def _release_all(page: PageContext, chosen: pd.DataFrame, days: int) -> tuple[int, list[str]]:
    released, refused = 0, []
    for pool_id, rows in chosen.groupby("pool_id"):
        ids = [int(i) for i in rows["id"]]
        for result in harvesting.release_idle(page.ctx, page.actor, int(pool_id), ids, days):
            if result.ok:
                released += 1
            else:
                refused.append(result.message)
    return released, refused


def _released(outcome: tuple[int, list[str]]) -> None:
    released, refused = outcome
    flash(f"{released} idle allocation(s) released; their reservations leave the servers.")
    for message in refused:
        flash(message, "error")


def _release_button(page: PageContext, chosen: pd.DataFrame, days: int) -> None:
    seats = int(chosen["count"].sum()) if not chosen.empty else 0
    confirmed_action(
        f"Release {len(chosen)} selected…",
        key="release_idle",
        question=Question(
            "release_idle_confirm",
            f"Release {len(chosen)} idle allocation(s) ({seats} seat(s))? Their reservations "
            "are removed from the license servers and the seats go back to their pools; the "
            "audit log keeps who held them.",
            "Release",
        ),
        act=lambda: _release_all(page, chosen, days),
        done=_released,
        icon=":material/recycling:",
        enabled=not chosen.empty,
    )


def policy_form(page: PageContext) -> None:
    box = lazy_expander("Release policy", key="idle_policy_section", icon=":material/policy:")
    if box is None:
        return
    with box:
        policy = harvesting.harvest_policy(page.ctx, page.actor)
        st.caption(
            "The manager of an allocation idle for the first number of days is warned (audited, "
            "and told by the 'allocations idle' alert); if it is still idle at the second, it is "
            "released through the same audited path as a manager's release. Servers whose last "
            "read failed are left alone."
        )
        with st.form("idle_policy"):
            enabled = st.toggle("Policy on", value=bool(policy and policy["enabled"]))
            warn_col, release_col = st.columns(2)
            warn = warn_col.number_input(
                "Warn after (days)",
                min_value=1,
                max_value=3650,
                value=int(policy["warn_after_days"]) if policy else 30,
            )
            release = release_col.number_input(
                "Release after (days)",
                min_value=1,
                max_value=3650,
                value=int(policy["release_after_days"]) if policy else 60,
            )
            fields = field_slots(warn_after_days=warn_col, release_after_days=release_col)
            save = st.form_submit_button("Save policy", type="primary")
        if save:
            outcome = attempt(
                harvesting.set_harvest_policy,
                page.ctx,
                page.actor,
                enabled=enabled,
                warn_after_days=warn,
                release_after_days=release,
                fields=fields,
            )
            if outcome.ok:
                flash("Release policy saved.")
                st.rerun()


def _feature_choices(page: PageContext) -> list[tuple[str, str]]:
    frame = per_generation(
        page, "idle: features", lambda: servers.server_features(page.ctx, page.actor)
    )
    pairs = zip(frame["feature_name"], frame["feature_version"], strict=True)
    return sorted({(str(name), str(version)) for name, version in pairs})


def prices_form(page: PageContext) -> None:
    box = lazy_expander("Seat prices", key="idle_prices_section", icon=":material/sell:")
    if box is None:
        return
    with box:
        prices = harvesting.list_prices(page.ctx, page.actor)
        if prices.empty:
            st.caption("No price yet: idle seats are counted, not costed.")
        else:
            table_with_download(prices, "seat prices", key="seat_prices")
        with st.form("seat_price"):
            feature_col, price_col = st.columns(2)
            feature = feature_col.selectbox(
                "Feature", _feature_choices(page), format_func=lambda f: f"{f[0]} {f[1]}"
            )
            price = price_col.number_input("Price of one seat", min_value=0.0, value=0.0)
            remove = st.checkbox("Remove this feature's price instead")
            fields = field_slots(feature=feature_col, price=price_col)
            save = st.form_submit_button("Save price", type="primary")
        if save and feature is not None:
            outcome = attempt(
                harvesting.set_price,
                page.ctx,
                page.actor,
                feature,
                None if remove else price,
                fields=fields,
            )
            if outcome.ok:
                flash(f"Price of {feature[0]} {feature[1]} {'removed' if remove else 'saved'}.")
                st.rerun()

"""Inputs for pool quantities: one number per VLM feature, checked on submit against what the
VLM has (the reason shown under the input), and the column list of pool tables."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import pandas as pd
import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from vlm.context import ServiceContext
from vlm.domain import DAYS_MAX, Actor, FeatureKey
from vlm.services import pools
from vlm.ui.grid.selection import FEATURE_PARAM, POOL_PARAM, feature_param
from vlm.ui.memo import per_frame
from vlm.ui.messages import FeatureBounds, quantity_problems
from vlm.ui.widgets import Outcome, attempt, clear_banners, field_slots, flash

COLUMNS_PER_ROW = 3
# The columns of a pool list, in display order (also the column choices on My Pools).
POOL_COLUMNS = [
    "name",
    "vlm_name",
    "manager",
    "allocations_link",
    "allocated_share",
    "quantity",
    "allocated",
    "available",
    "features",
    "allocations",
    "failed",
    "over_committed",
    "default_duration_days",
    "max_duration_days",
    "created_at",
    "description",
]
ALLOCATIONS_URL = "allocations"  # relative: the Allocations page next to this one


@functools.lru_cache(maxsize=4096)
def _quoted(text: str) -> str:
    """A URL parameter's value quoted as urlencode(..., quote_via=quote) does."""
    return quote(text, safe="")


def allocations_url(pool_id: int, feature: FeatureKey | None = None) -> str:
    """The link that opens a pool's (and feature's) allocation grid."""
    url = f"{ALLOCATIONS_URL}?{_quoted(POOL_PARAM)}={int(pool_id)}"
    if feature is None:
        return url
    return f"{url}&{_quoted(FEATURE_PARAM)}={_quoted(feature_param(feature))}"


def _share(allocated: pd.Series, quantity: pd.Series) -> pd.Series:
    quantity = quantity.astype(float)
    return (allocated.astype(float) / quantity.where(quantity > 0)).fillna(0.0).clip(0.0, 1.0)


def with_grid_links(frame: pd.DataFrame, *, pool_column: str = "id") -> pd.DataFrame:
    """Pool (or pool feature) rows with 'allocated of quantity' and a link to their grid."""
    shown = frame.copy()
    shown["allocated_share"] = _share(shown["allocated"], shown["quantity"])
    pool_ids = shown[pool_column].astype(int).tolist()
    if "feature_name" in shown.columns:
        features = zip(
            shown["feature_name"].astype(str), shown["feature_version"].astype(str), strict=True
        )
        links = [allocations_url(p, f) for p, f in zip(pool_ids, features, strict=True)]
    else:
        links = [allocations_url(p) for p in pool_ids]
    shown["allocations_link"] = links
    return shown


def pool_table_config() -> dict[str, Any]:
    """Progress bar, grid link, widths and formats of pool tables."""
    cc = st.column_config
    return {
        "name": cc.TextColumn("Pool"),
        "allocations_link": cc.LinkColumn(
            "Allocation grid",
            display_text="Open grid",
            help="open this pool's allocation grid (new tab)",
            width="small",
        ),
        "allocated_share": cc.ProgressColumn(
            "Allocated of quantity",
            min_value=0.0,
            max_value=1.0,
            format="percent",
            help="allocated ÷ quantity",
            width="small",
        ),
        "description": cc.TextColumn("Description", width="medium"),
        "default_duration_days": cc.NumberColumn("Default days", format="%d", width="small"),
        "max_duration_days": cc.NumberColumn("Max days", format="%d", width="small"),
    }


def _key(prefix: str, name: str, version: str) -> str:
    digest = hashlib.sha1("\0".join((name, version)).encode()).hexdigest()[:10]
    return f"{prefix}_{digest}"


def feature_bounds(bounds: pd.DataFrame) -> dict[FeatureKey, FeatureBounds]:
    """Per feature: the least (allocated) and the most (available to this pool) it may get."""
    return {
        (str(row.feature_name), str(row.feature_version)): FeatureBounds(
            int(row.minimum), max(int(row.maximum), int(row.minimum))
        )
        for row in bounds.itertuples()
    }


@dataclass
class QuantityInputs:
    """The quantities typed in a pool form, the figures they are checked against, and a place
    under each input for what is wrong with it."""

    values: dict[FeatureKey, int]
    now: dict[FeatureKey, FeatureBounds]
    shown_before: dict[FeatureKey, FeatureBounds]
    slots: dict[FeatureKey, DeltaGenerator] = field(default_factory=dict)

    def problems(self) -> dict[FeatureKey, str]:
        """Why each typed quantity cannot be had (saying so when the figures moved)."""
        return quantity_problems(self.values, self.now, self.shown_before)

    def recheck(self, bounds: pd.DataFrame) -> dict[FeatureKey, str]:
        """The problems against freshly read figures (after the service refused a quantity)."""
        return quantity_problems(self.values, feature_bounds(bounds), self.now)

    def show(self, problems: Mapping[FeatureKey, str]) -> None:
        """Each problem under its own input, in place of the input's caption."""
        for key, problem in problems.items():
            slot = self.slots.get(key)
            if slot is not None:
                slot.error(problem, icon=":material/error:")

    def chosen(self) -> dict[FeatureKey, int]:
        """The features given a quantity above 0."""
        return {key: quantity for key, quantity in self.values.items() if quantity > 0}


def _caption(bounds: FeatureBounds, total: int, deficit: int) -> str:
    text = f"{bounds.maximum} available (VLM total {total})"
    if bounds.minimum:
        text += f"; {bounds.minimum} allocated, so at least that"
    if deficit:
        text += f"; ⚠ over-committed by {deficit}"
    return text


@dataclass(frozen=True)
class QuantityField:
    """One feature's number input: its label, key (after the form's prefix), value, caption."""

    feature: FeatureKey
    label: str
    key_suffix: str
    value: int
    caption: str


@dataclass(frozen=True)
class QuantityFields:
    """What a pool form's quantity inputs show, derived once from the bounds read."""

    fields: tuple[QuantityField, ...]
    bounds: dict[FeatureKey, FeatureBounds]


def _field(row: Any, now: Mapping[FeatureKey, FeatureBounds]) -> QuantityField:
    name, version = str(row.feature_name), str(row.feature_version)
    return QuantityField(
        (name, version),
        f"{name} {version}",
        _key("", name, version),
        max(int(row.quantity), 0),
        _caption(now[(name, version)], int(row.total), int(row.deficit)),
    )


def quantity_fields(bounds: pd.DataFrame) -> QuantityFields:
    """The inputs of the features in bounds, in its order, with what each may be set to."""
    now = feature_bounds(bounds)
    return QuantityFields(tuple(_field(row, now) for row in bounds.itertuples()), now)


def quantity_inputs(bounds: pd.DataFrame, *, key_prefix: str) -> QuantityInputs:
    """A number input per feature with what it may be set to written under it.

    The inputs take any whole number from 0: a bound on the input itself would reset a typed
    value the moment availability moved, and the browser would refuse a value above it
    without a word. What is typed is checked on submit instead (QuantityInputs.problems).
    The fields are derived once per bounds frame (pages keep it until the next write), and
    each caption is the place its problem replaces.
    """
    memo = f"_{key_prefix}_shown"
    shown_before = st.session_state.get(memo, {})
    prepared = per_frame(bounds, "quantity fields", lambda: quantity_fields(bounds))
    st.session_state[memo] = prepared.bounds
    typed = QuantityInputs({}, prepared.bounds, shown_before)
    columns = st.columns(COLUMNS_PER_ROW)
    for index, field_ in enumerate(prepared.fields):
        column = columns[index % COLUMNS_PER_ROW]
        value = column.number_input(
            field_.label,
            min_value=0,
            value=field_.value,
            step=1,
            key=f"{key_prefix}{field_.key_suffix}",
        )
        typed.values[field_.feature] = int(value)
        typed.slots[field_.feature] = column.caption(field_.caption)
    return typed


def quantities_fit(
    typed: QuantityInputs, summary: DeltaGenerator, outcome: str, *, require_one: bool = True
) -> bool:
    """On submit: True when every typed quantity can be had; else each problem is shown under
    its input and `summary` says what did not happen (a submit never silently does nothing)."""
    clear_banners()
    problems = typed.problems()
    if problems:
        typed.show(problems)
        names = ", ".join(f"{name} {version}" for name, version in problems)
        summary.error(
            f"{outcome}: check the quantity of {names} (the reason is under the field).",
            icon=":material/error:",
        )
        return False
    if require_one and not typed.chosen():
        summary.error(
            f"{outcome}: give at least one feature a quantity above 0.", icon=":material/error:"
        )
        return False
    return True


def recheck_quantities(
    outcome: Outcome[Any], typed: QuantityInputs, fresh_bounds: Callable[[], pd.DataFrame]
) -> None:
    """After the service refused a quantity (the figures moved between check and write): each
    feature it no longer fits, under its input, against the figures read now."""
    if outcome.ok or outcome.error is None or outcome.error.field != "quantity":
        return
    typed.show(typed.recheck(fresh_bounds()))


def _days_or_none(value: float | int | None) -> int | None:
    return None if value is None else int(value)


def duration_form(ctx: ServiceContext, actor: Actor, pool: Mapping[str, Any]) -> None:
    """The admin's form for a pool's default and maximum allocation duration (blank: none)."""
    pool_id = int(pool["id"])
    with st.form(f"pool_durations_{pool_id}"):
        st.markdown(
            "**Time limits of allocations** — an allocation holds its license from its start "
            "day through its end day; leave blank for none. Existing allocations keep their dates."
        )
        default_col, max_col = st.columns(2)
        default_days = default_col.number_input(
            "Default duration (days)",
            min_value=1,
            max_value=DAYS_MAX,
            value=_stored_days(pool.get("default_duration_days")),
            step=1,
            key=f"pool_default_days_{pool_id}",
            help="fills the end of a new allocation given none",
        )
        max_days = max_col.number_input(
            "Maximum duration (days)",
            min_value=1,
            max_value=DAYS_MAX,
            value=_stored_days(pool.get("max_duration_days")),
            step=1,
            key=f"pool_max_days_{pool_id}",
            help="the most days one allocation may hold its license; extensions included",
        )
        fields = field_slots(default_duration_days=default_col, max_duration_days=max_col)
        save = st.form_submit_button("Save time limits")
    if save:
        outcome = attempt(
            pools.set_pool_durations,
            ctx,
            actor,
            pool_id,
            default_days=_days_or_none(default_days),
            max_days=_days_or_none(max_days),
            fields=fields,
        )
        if outcome.ok:
            flash(f"Time limits of pool '{pool['name']}' saved.")
            st.rerun()


def _stored_days(value: object) -> int | None:
    """A stored duration for a number input (None, NaN and NA: blank)."""
    return None if value is None or pd.isna(value) else int(value)

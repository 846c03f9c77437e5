"""Which pool and feature the Allocations page shows, and keeping that choice.

The choice lives in the URL (`?pool=3&feature=cad%201.0`, so a link opens the same grid) and in
the session (so it survives leaving the page and coming back). A pool or feature in the URL
that the user may not open, or that does not exist, falls back to the remembered or default
choice with a message. Picking another pool or feature while the grid holds unsaved edits does
not switch: the page asks first ("Discard changes" / "Keep editing").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd
import streamlit as st

from vlm.domain import FeatureKey
from vlm.ui.grid.state import GridScope
from vlm.ui.pickers import feature_label, labelled_selectbox
from vlm.ui.widgets import danger_button

POOL_PARAM = "pool"
FEATURE_PARAM = "feature"
# "_alloc_grid_" keys are dropped with the rest of the session on sign-out
_REMEMBERED = "_alloc_grid_choice"
_NOTICE = "_alloc_grid_choice_notice"
_ROUND = "_alloc_grid_picker_round"
SWITCH_KEY = "alloc_switch"


@dataclass(frozen=True)
class Choice:
    """A pool and one of its features (None while the pool has none)."""

    pool_id: int
    feature: FeatureKey | None = None

    @property
    def scope(self) -> GridScope | None:
        return None if self.feature is None else GridScope(self.pool_id, self.feature)


FeatureLoader = Callable[[int], pd.DataFrame]


def feature_param(feature: FeatureKey) -> str:
    """A feature as the URL names it: 'name version'."""
    return f"{feature[0]} {feature[1]}"


def feature_options(features: pd.DataFrame) -> list[FeatureKey]:
    return [(str(r.feature_name), str(r.feature_version)) for r in features.itertuples()]


def default_feature(features: pd.DataFrame) -> FeatureKey | None:
    """The feature a pool opens with: the one with the most allocations (the first on a tie)."""
    if features.empty:
        return None
    busiest = int(features["allocations"].reset_index(drop=True).idxmax())
    return feature_options(features)[busiest]


def _remembered() -> dict[str, Any]:
    return st.session_state.setdefault(_REMEMBERED, {"pool": None, "features": {}})


def remember(choice: Choice) -> None:
    """Keep the choice for this session and in the URL."""
    memory = _remembered()
    memory["pool"] = choice.pool_id
    if choice.feature is not None:
        memory["features"][choice.pool_id] = choice.feature
    wanted = {POOL_PARAM: str(choice.pool_id)}
    if choice.feature is not None:
        wanted[FEATURE_PARAM] = feature_param(choice.feature)
    if st.query_params.get(FEATURE_PARAM) is not None and FEATURE_PARAM not in wanted:
        del st.query_params[FEATURE_PARAM]
    if any(st.query_params.get(k) != v for k, v in wanted.items()):
        st.query_params.update(wanted)


def _linked_pool(pool_labels: dict[int, str], notes: list[str]) -> tuple[int, bool]:
    """The pool to open, and whether it came from the URL."""
    remembered = _remembered()["pool"]
    fallback = remembered if remembered in pool_labels else next(iter(pool_labels))
    raw = st.query_params.get(POOL_PARAM)
    if raw is None:
        return fallback, False
    text = raw.strip()
    if text.isdigit() and int(text) in pool_labels:
        return int(text), True
    notes.append(
        f"The link asks for pool '{raw}', which is not a pool you can open; "
        f"showing {pool_labels[fallback]} instead."
    )
    return fallback, False


def _remembered_feature(pool_id: int, features: pd.DataFrame) -> FeatureKey | None:
    """The feature of pool_id shown last in this session, else the pool's default."""
    remembered = _remembered()["features"].get(pool_id)
    return remembered if remembered in feature_options(features) else default_feature(features)


def _linked_feature(
    pool_id: int, pool_name: str, features: pd.DataFrame, notes: list[str]
) -> FeatureKey | None:
    """The URL's feature of pool_id, else the remembered or default one."""
    fallback = _remembered_feature(pool_id, features)
    raw = st.query_params.get(FEATURE_PARAM)
    if raw is None or fallback is None:
        return fallback
    by_param = {feature_param(o): o for o in feature_options(features)}
    if raw.strip() in by_param:
        return by_param[raw.strip()]
    notes.append(
        f"Pool {pool_name} has no feature '{raw}'; showing {feature_param(fallback)} instead."
    )
    return fallback


def _wanted(pool_labels: dict[int, str], load: FeatureLoader) -> tuple[Choice, pd.DataFrame]:
    """The choice the URL or the session asks for, with a message for what could not be had."""
    notes: list[str] = []
    pool_id, from_url = _linked_pool(pool_labels, notes)
    features = load(pool_id)
    if from_url or st.query_params.get(POOL_PARAM) is None:
        feature = _linked_feature(pool_id, pool_labels[pool_id], features, notes)
    else:  # the URL's pool was refused, so its feature means nothing here
        feature = _remembered_feature(pool_id, features)
    choice = Choice(pool_id, feature)
    if notes:
        st.session_state[_NOTICE] = (" ".join(notes), choice)
    return choice, features


def _show_notice(choice: Choice) -> None:
    """A fallback message stays while the grid it fell back to is shown."""
    notice = st.session_state.get(_NOTICE)
    if notice is None:
        return
    message, shown_for = notice
    if shown_for != choice:
        del st.session_state[_NOTICE]
        return
    st.warning(message, icon=":material/link_off:")


def _unsaved(choice: Choice) -> bool:
    scope = choice.scope
    return scope is not None and scope.editing()


def _switch_prompt(current: Choice, target: Choice, pool_labels: dict[int, str]) -> str:
    where = pool_labels[target.pool_id]
    if target.pool_id == current.pool_id and target.feature is not None:
        where = f"feature {feature_param(target.feature)}"
    return (
        "The grid has edits you have not applied. Switching to "
        f"{where} discards them. Apply them first (Review changes), or choose:"
    )


def _ask_to_switch(
    current: Choice, target: Choice, pool_labels: dict[int, str], discard: Callable[[], None]
) -> None:
    """Hold a switch away from unsaved edits until the user decides."""
    with st.container(border=True, key=SWITCH_KEY):
        st.warning(_switch_prompt(current, target, pool_labels), icon=":material/warning:")
        discard_col, keep_col = st.columns(2)
        if danger_button(
            "Discard changes",
            key=f"{SWITCH_KEY}_discard",
            container=discard_col,
            icon=":material/delete_sweep:",
        ):
            discard()
            remember(target)
            _new_round()
            st.rerun()
        if keep_col.button("Keep editing", key=f"{SWITCH_KEY}_keep"):
            _new_round()
            st.rerun()


def _new_round() -> None:
    """Redraw both selectors from the current choice (fresh widgets)."""
    st.session_state[_ROUND] = st.session_state.get(_ROUND, 0) + 1


def _pick_pool(current: Choice, pool_labels: dict[int, str]) -> int:
    ids = list(pool_labels)
    round_ = st.session_state.get(_ROUND, 0)
    return int(
        labelled_selectbox("Pool", ids, pool_labels, current.pool_id, key=f"alloc_pool_{round_}")
    )


def _pick_feature(current: Choice, features: pd.DataFrame) -> FeatureKey | None:
    if current.feature is None:
        return None
    labels = {
        o: feature_label(r)
        for o, r in zip(feature_options(features), features.to_dict("records"), strict=True)
    }
    round_ = st.session_state.get(_ROUND, 0)
    key = f"alloc_feature_{current.pool_id}_{round_}"
    return labelled_selectbox("Feature", list(labels), labels, current.feature, key=key)


def choose_grid(
    pool_labels: dict[int, str], load: FeatureLoader, discard: Callable[[GridScope], None]
) -> tuple[Choice, pd.DataFrame]:
    """Draw the Pool and Feature selectors; the grid to show and its pool's features."""
    current, features = _wanted(pool_labels, load)
    unsaved = _unsaved(current)
    target: Choice | None = None
    pool_col, feature_col = st.columns(2)
    with pool_col:
        picked_pool = _pick_pool(current, pool_labels)
    if picked_pool != current.pool_id:
        if unsaved:
            target = Choice(picked_pool, _remembered()["features"].get(picked_pool))
        else:
            features = load(picked_pool)
            current = Choice(picked_pool, _remembered_feature(picked_pool, features))
    with feature_col:
        picked_feature = _pick_feature(current, features)
    if picked_feature != current.feature and target is None:
        if unsaved:
            target = Choice(current.pool_id, picked_feature)
        else:
            current = Choice(current.pool_id, picked_feature)
    remember(current)
    _show_notice(current)
    if target is not None:
        scope = current.scope
        assert scope is not None  # unsaved edits belong to a feature's grid
        _ask_to_switch(current, target, pool_labels, lambda: discard(scope))
    return current, features

"""Allocations (managers: own pools; admins: any): the grid, bulk add, live reservation states."""

import streamlit as st

from vlm.domain import Role
from vlm.services import pools
from vlm.ui.grid.bulk import render_bulk_import
from vlm.ui.grid.selection import choose_grid
from vlm.ui.grid.state import GridScope
from vlm.ui.grid.view import render_grid
from vlm.ui.memo import per_generation
from vlm.ui.pickers import pool_labels
from vlm.ui.session import page_context
from vlm.ui.widgets import show_flashes

page = page_context(Role.ADMIN, Role.MANAGER)
st.title("Allocations")
show_flashes()

pool_frame = per_generation(
    page, "allocations: pools", lambda: pools.list_pools(page.ctx, page.actor)
)
if pool_frame.empty:
    st.info("You do not manage any pool yet. An admin assigns pools to managers.")
    st.stop()

choice, features = choose_grid(
    per_generation(page, "allocations: pool labels", lambda: pool_labels(pool_frame)),
    lambda pool_id: per_generation(
        page,
        "allocations: pool features",
        lambda: pools.pool_features(page.ctx, page.actor, pool_id),
        pool_id,
    ),
    lambda scope: scope.restart(page.ctx, page.actor),
)
feature = choice.feature
if feature is None:
    st.info("This pool has no features yet.")
    st.stop()

figures = features[
    (features["feature_name"] == feature[0]) & (features["feature_version"] == feature[1])
].iloc[0]
tiles = st.columns(5)
tiles[0].metric("Quantity", int(figures["quantity"]), border=True)
tiles[1].metric("Allocated", int(figures["allocated"]), border=True)
tiles[2].metric("Available", int(figures["available"]), border=True)
tiles[3].metric("Pending", int(figures["pending"]), border=True)
tiles[4].metric("Failed", int(figures["failed"]), border=True)
if bool(figures["over_committed"]):
    st.error(
        "This feature is over-committed on its license server: new allocations and larger "
        "counts are refused until an admin lowers the pools.",
        icon=":material/warning:",
    )

scope = GridScope(choice.pool_id, feature)
render_grid(page, scope)
render_bulk_import(page, scope)

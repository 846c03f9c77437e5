"""My Pools (managers: their pools; admins: all): figures per pool and per feature, requests
for more licenses."""

import streamlit as st

from vlm.domain import Role
from vlm.services import pools
from vlm.ui.memo import per_generation
from vlm.ui.navigation import page_path_of
from vlm.ui.pool_forms import POOL_COLUMNS, pool_table_config, with_grid_links
from vlm.ui.requests import own_requests, request_form
from vlm.ui.session import page_context
from vlm.ui.widgets import choose_columns, show_flashes, table_with_download

FEATURE_COLUMNS = [
    "pool_name",
    "vlm_name",
    "manager",
    "feature_name",
    "feature_version",
    "allocations_link",
    "allocated_share",
    "quantity",
    "allocated",
    "available",
    "allocations",
    "pending",
    "failed",
    "over_committed",
]
POOL_DEFAULT = [c for c in POOL_COLUMNS if c not in ("description", "created_at")]

page = page_context(Role.ADMIN, Role.MANAGER)
st.title("All Pools" if page.actor.is_admin else "My Pools")
show_flashes()
search = st.text_input(
    "Search", placeholder="pool, VLM or manager name", key="my_pools_search"
).strip()
pool_frame = per_generation(
    page,
    "all pools: pools",
    lambda: with_grid_links(pools.list_pools(page.ctx, page.actor, search=search or None)),
    search,
)
if pool_frame.empty:
    st.info("No pool matches." if search else "You do not manage any pool yet.")
    st.stop()

st.subheader(f"Pools ({len(pool_frame)})")
shown = choose_columns(POOL_COLUMNS, key="my_pools_columns", default=POOL_DEFAULT)
table_with_download(
    pool_frame,
    "pools",
    column_order=shown,
    key="my_pools",
    column_config=pool_table_config(),
)

st.subheader("Features per pool")
features = per_generation(
    page,
    "all pools: pool features",
    lambda: with_grid_links(pools.pool_features(page.ctx, page.actor), pool_column="pool_id"),
)
features = features[features["pool_id"].isin(pool_frame["id"])]
shown_features = choose_columns(FEATURE_COLUMNS, key="my_pool_features_columns")
table_with_download(
    features,
    "pool features",
    column_order=shown_features,
    key="my_pool_features",
    column_config=pool_table_config(),
)

st.subheader("Allocate")
labels = per_generation(
    page,
    "all pools: pool labels",
    lambda: dict(
        zip(pool_frame["id"], pool_frame["vlm_name"] + " / " + pool_frame["name"], strict=True)
    ),
    search,
)
target = st.selectbox("Pool", list(labels), format_func=labels.get, key="my_pools_target")
st.page_link(
    page_path_of("allocations"),
    label=f"Allocations of {labels[target]}",
    icon=":material/assignment:",
    query_params={"pool": str(target)},
)

st.subheader("Requests for more licenses")
st.caption(
    "A pool is full? Ask the admins for more of a feature, saying why. They see what the VLM "
    "still has, and approve, approve partly or decline; you are told either way (set where on "
    "your Profile page)."
)
with st.expander("Ask for more", icon=":material/move_up:"):
    request_form(page, labels)
own_requests(page)

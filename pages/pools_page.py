"""Virtual Pools (admin): create in a VLM, edit quantities and manager, delete with confirmation."""

import streamlit as st

from vlm.domain import Role
from vlm.services import pools, users, vlms
from vlm.ui.confirm import Question, confirmed_action
from vlm.ui.memo import per_generation
from vlm.ui.pickers import pick_row, pool_labels
from vlm.ui.pool_forms import (
    POOL_COLUMNS,
    duration_form,
    pool_table_config,
    quantities_fit,
    quantity_inputs,
    recheck_quantities,
    with_grid_links,
)
from vlm.ui.session import page_context
from vlm.ui.widgets import (
    attempt,
    field_slots,
    flash,
    lazy_expander,
    show_flashes,
    table_with_download,
    text_or_blank,
)

page = page_context(Role.ADMIN)
ctx, actor = page.ctx, page.actor
st.title("Virtual Pools")
show_flashes()

pool_frame = per_generation(
    page, "virtual pools: pools", lambda: with_grid_links(pools.list_pools(ctx, actor))
)
table_with_download(
    pool_frame,
    "virtual pools",
    key="pools",
    column_order=POOL_COLUMNS,
    column_config=pool_table_config(),
)
vlm_frame = per_generation(page, "virtual pools: vlms", lambda: vlms.list_vlms(ctx, actor))
managers = per_generation(page, "virtual pools: managers", lambda: users.managers(ctx, actor))

new_pool = lazy_expander(
    "Create a pool",
    key="new_pool_section",
    icon=":material/add_circle:",
    expanded=pool_frame.empty,
)
if new_pool is not None:
    with new_pool:
        if vlm_frame.empty:
            st.info("Create a virtual license manager first (Virtual LMs page).")
        elif not managers:
            st.info("Add a user with the manager role first (Users page).")
        else:
            vlm_id = pick_row(vlm_frame, key="new_pool_vlm", label="Virtual license manager")
            bounds = per_generation(
                page,
                "virtual pools: new pool bounds",
                lambda: pools.pool_quantity_bounds(ctx, actor, vlm_id),
                vlm_id,
            )
            with st.form("new_pool"):
                name_col, manager_col = st.columns(2)
                name = name_col.text_input("Pool name")
                manager = manager_col.selectbox("Manager", managers)
                fields = field_slots(name=name_col, manager=manager_col)
                description = st.text_input("Description")
                fields["description"] = st.empty()
                st.markdown(
                    "**Quantity per feature** (bounded by what the VLM still has available)"
                )
                typed = quantity_inputs(bounds, key_prefix=f"new_pool_q_{vlm_id}")
                fields["quantity"] = st.empty()
                create = st.form_submit_button("Create pool", type="primary")
            if create and quantities_fit(typed, fields["quantity"], "Pool not created"):
                outcome = attempt(
                    pools.create_pool,
                    ctx,
                    actor,
                    vlm_id,
                    name,
                    manager,
                    typed.chosen(),
                    description=description,
                    fields=fields,
                )
                if outcome.ok:
                    flash(f"Pool '{name.strip()}' created for {manager}.")
                    st.rerun()
                recheck_quantities(
                    outcome, typed, lambda: pools.pool_quantity_bounds(ctx, actor, vlm_id)
                )

if pool_frame.empty:
    st.stop()

st.subheader("Edit or delete a pool")
labels = per_generation(page, "virtual pools: pool labels", lambda: pool_labels(pool_frame))
pool_id = st.selectbox("Pool", list(labels), format_func=labels.get, key="edit_pool")
pool = per_generation(
    page, "virtual pools: pool", lambda: pool_frame[pool_frame["id"] == pool_id].iloc[0], pool_id
)
bounds = per_generation(
    page,
    "virtual pools: bounds",
    lambda: pools.pool_quantity_bounds(ctx, actor, int(pool["vlm_id"]), pool_id),
    int(pool["vlm_id"]),
    pool_id,
)
with st.form(f"edit_pool_{pool_id}"):
    name_col, manager_col = st.columns(2)
    name = name_col.text_input("Pool name", value=pool["name"])
    options = sorted({*managers, pool["manager"]})
    manager = manager_col.selectbox("Manager", options, index=options.index(pool["manager"]))
    fields = field_slots(name=name_col, manager=manager_col)
    description = st.text_input("Description", value=text_or_blank(pool["description"]))
    fields["description"] = st.empty()
    st.markdown("**Quantity per feature** (not below what is allocated)")
    typed = quantity_inputs(bounds, key_prefix=f"edit_pool_q_{pool_id}")
    fields["quantity"] = st.empty()
    save = st.form_submit_button("Save changes", type="primary")
if save and quantities_fit(typed, fields["quantity"], "Not saved", require_one=False):
    outcome = attempt(
        pools.update_pool,
        ctx,
        actor,
        pool_id,
        name=name,
        manager=manager,
        description=description,
        quantities=typed.values,
        fields=fields,
    )
    if outcome.ok:
        flash(f"Pool '{name.strip()}' saved.")
        st.rerun()
    recheck_quantities(
        outcome, typed, lambda: pools.pool_quantity_bounds(ctx, actor, int(pool["vlm_id"]), pool_id)
    )

duration_form(ctx, actor, pool)

impact = per_generation(
    page,
    "virtual pools: deletion impact",
    lambda: pools.deletion_impact(ctx, actor, pool_id),
    pool_id,
)
confirmed_action(
    "Delete pool…",
    key="delete_pool",
    question=Question(
        f"delete_pool_{pool_id}",
        f"Delete pool '{pool['name']}'? This removes its {impact['allocations']} allocation(s) "
        f"and {impact['reservations']} reservation(s) of {impact['hosts']} host(s) from the "
        "license servers. This cannot be undone.",
        f"Delete pool and {impact['allocations']} allocation(s)",
    ),
    act=lambda: pools.delete_pool(ctx, actor, pool_id, confirmed_allocations=impact["allocations"]),
    done=f"Pool '{pool['name']}' deleted with {impact['allocations']} allocation(s).",
)

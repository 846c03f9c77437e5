"""Users (admin): add with a role and a one-time password, change role, disable, reset password;
sign-in: break-glass accounts, the local sign-in switch, each provider's role mapping."""

import streamlit as st

from vlm.domain import Role
from vlm.services import sso, users
from vlm.ui import one_time
from vlm.ui.confirm import Question, confirmed_action
from vlm.ui.memo import per_generation
from vlm.ui.session import page_context
from vlm.ui.widgets import (
    attempt,
    field_slots,
    flash,
    show_flashes,
    table_with_download,
    text_or_blank,
)

ROLES = [r.value for r in Role]

page = page_context(Role.ADMIN)
ctx, actor = page.ctx, page.actor
st.title("Users")
show_flashes()
one_time.show()

people = per_generation(page, "users: people", lambda: users.list_users(ctx, actor))
table_with_download(people, "users", key="users")

with st.expander("Add a user", icon=":material/person_add:"):
    # a refused submit keeps what was typed; an added user starts a fresh, empty form
    added = st.session_state.get("_users_added", 0)
    with st.form(f"add_user_{added}"):
        name_col, role_col = st.columns(2)
        username = name_col.text_input("User name", help="2–32 characters: a-z, 0-9, . _ -")
        fields = field_slots(username=name_col)
        role = role_col.selectbox("Role", ROLES, index=ROLES.index(Role.MANAGER.value))
        fields |= field_slots(role=role_col)
        display_name = name_col.text_input("Display name")
        fields |= field_slots(display_name=name_col)
        email = role_col.text_input("E-mail")
        fields |= field_slots(email=role_col)
        add = st.form_submit_button("Add user", type="primary")
    if add:
        outcome = attempt(
            users.add_user,
            ctx,
            actor,
            username,
            role,
            display_name=display_name,
            email=email,
            fields=fields,
        )
        if outcome.ok:
            one_time.remember(username.strip().lower(), str(outcome.value))
            flash(f"User {username.strip().lower()} added as {role}.")
            st.session_state["_users_added"] = added + 1
            st.rerun()

st.subheader("Manage a user")
chosen = st.selectbox("User", people["username"].tolist(), key="users_selected")
if chosen:
    user = people[people["username"] == chosen].iloc[0]
    status = "disabled" if user["disabled"] else "active"
    st.caption(
        f"{text_or_blank(user['display_name']) or chosen} · {user['role']} · {status} · "
        f"manages {user['pools']} pool(s)"
    )
    role_col, action_col = st.columns(2)
    with role_col:
        new_role = st.selectbox(
            "Role", ROLES, index=ROLES.index(user["role"]), key=f"users_role_{chosen}"
        )
        changed = st.button(
            "Change role", key="users_change_role", disabled=new_role == user["role"]
        )
        if changed and attempt(users.change_role, ctx, actor, chosen, new_role).ok:
            flash(f"{chosen} is now {new_role}.")
            st.rerun()
    # the buttons sit in action_col; their questions come under both columns
    confirmed_action(
        "Reset password…",
        key="users_reset",
        container=action_col,
        icon=":material/lock_reset:",
        question=Question(
            f"reset_password_{chosen}",
            f"Reset the password of {chosen}? Their current password stops working at once; you "
            "get a one-time password to hand them, and they must choose their own at sign-in.",
            f"Reset password of {chosen}",
        ),
        act=lambda: users.reset_password(ctx, actor, chosen),
        done=lambda password: one_time.remember(chosen, str(password)),
    )
    if not user["disabled"]:
        confirmed_action(
            "Disable…",
            key="users_disable",
            container=action_col,
            icon=":material/block:",
            question=Question(
                f"disable_user_{chosen}",
                f"Disable {chosen}? They are signed out at their next click and cannot sign in "
                "until enabled again. Their pools and allocations stay.",
                f"Disable {chosen}",
            ),
            act=lambda: users.set_disabled(ctx, actor, chosen, True),
            done=f"{chosen} is disabled.",
        )
    elif (
        action_col.button("Enable", key="users_enable")
        and attempt(users.set_disabled, ctx, actor, chosen, False).ok
    ):
        flash(f"{chosen} is enabled again.")
        st.rerun()
    flag = bool(user["break_glass"])
    if (
        action_col.button(
            "Clear break-glass" if flag else "Mark break-glass",
            key="users_break_glass",
            help="A break-glass account signs in with its password while local sign-in is off.",
        )
        and attempt(sso.set_break_glass, ctx, actor, chosen, not flag).ok
    ):
        flash(f"{chosen} is {'no longer' if flag else 'now'} a break-glass account.")
        st.rerun()

st.subheader("Sign-in")
methods = per_generation(page, "users: sign-in methods", lambda: sso.sign_in_methods(ctx, actor))
table_with_download(methods, "sign-in-methods", key="users_sign_in_methods")
providers = sso.provider_settings(ctx, actor)
local_on = sso.local_sign_in_enabled(ctx)
if local_on:
    st.caption("Local password sign-in is **on** for every account.")
    confirmed_action(
        "Switch local sign-in off…",
        key="users_local_off",
        icon=":material/password:",
        enabled=bool(providers),
        question=Question(
            "local_sign_in_off",
            "Switch local password sign-in off? Only accounts marked break-glass can then sign "
            "in with a password; everyone else signs in through the identity provider. Password "
            "sessions of other accounts end at their next click.",
            "Switch local sign-in off",
        ),
        act=lambda: sso.set_local_sign_in(ctx, actor, False),
        done="Local sign-in is off (break-glass accounts excepted).",
    )
    if not providers:
        st.caption("Configure an identity provider in secrets.toml [auth] to switch it off.")
else:
    st.caption("Local password sign-in is **off**: only break-glass accounts use a password.")
    if (
        st.button("Switch local sign-in on", key="users_local_on")
        and attempt(sso.set_local_sign_in, ctx, actor, True).ok
    ):
        flash("Local sign-in is on for every account.")
        st.rerun()

for view in providers:
    provider = view.provider
    with st.expander(
        f"{provider.display_name} ({provider.name}): role mapping from {view.source}",
        icon=":material/badge:",
    ):
        with st.form(f"sso_provider_{provider.name}"):
            left, right = st.columns(2)
            auto = left.checkbox(
                "Create unknown users at first sign-in (with the mapped role)",
                value=provider.auto_create,
            )
            claim = right.text_input("Role claim", value=provider.role_claim)
            slots = field_slots(auto_create=left, role_claim=right)
            texts = {}
            for role in ROLES:
                texts[role] = st.text_input(
                    f"Claim values that make an {role}" if role[0] in "aeiou"
                    else f"Claim values that make a {role}",
                    value=", ".join(provider.values_for(role)),
                    help="Comma-separated, as the IdP sends them (group names or ids).",
                )  # fmt: skip
                slots |= field_slots(**{role: st.container()})
            saved = st.form_submit_button("Save mapping", type="primary")
        if saved and attempt(
            sso.set_provider_settings, ctx, actor, provider.name,
            auto_create=auto, role_claim=claim, role_map=texts, fields=slots,
        ).ok:  # fmt: skip
            flash(f"The {provider.display_name} mapping applies from the next sign-in.")
            st.rerun()
        if view.source == "Users page":
            confirmed_action(
                "Use secrets.toml…",
                key=f"sso_clear_{provider.name}",
                icon=":material/undo:",
                question=Question(
                    f"sso_clear_{provider.name}",
                    f"Drop the mapping set here for {provider.display_name}? From the next "
                    "sign-in on, [vlm.sso] in secrets.toml applies again.",
                    "Use secrets.toml",
                ),
                act=lambda name=provider.name: sso.clear_provider_settings(ctx, actor, name),
                done=f"{provider.display_name} uses secrets.toml again.",
            )

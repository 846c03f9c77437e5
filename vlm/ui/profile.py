"""The Profile page's parts: the signed-in account, where VLM sends the user's own messages, a
form that creates a personal API token (shown once), the user's tokens with their last use,
revoking one; admins see and revoke all."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
import streamlit as st

from vlm.services import notifications, tokens
from vlm.ui.confirm import Question, confirmed_action
from vlm.ui.memo import per_generation
from vlm.ui.session import PageContext
from vlm.ui.widgets import attempt, field_slots, flash, table_with_download

NEW_TOKEN_KEY = "_vlm_new_token"
SHOWN_COLUMNS = ["name", "hint", "read_only", "status", "created_at", "expires_at", "last_used_at"]
ALL_COLUMNS = ["username", *SHOWN_COLUMNS, "revoked_by"]
TOKEN_LABELS = {
    "hint": "Starts with",
    "read_only": "Read-only",
    "status": "Status",
    "expires_at": "Expires",
    "last_used_at": "Last used",
    "revoked_by": "Revoked by",
    "username": "User",
}


def show_account(page: PageContext) -> None:
    st.caption(f"Signed in as **{page.actor.username}** ({page.actor.role.value}).")


DESTINATION_HELP = (
    "One apprise URL per line: mailtos://user:password@smtp.example.com?to=me@example.com, "
    "slack://TokenA/TokenB/TokenC, msteams://…, json://hooks.example.com/me (a webhook). "
    "They are stored encrypted and shown masked. Saving replaces the ones you have."
)


def notification_destinations(page: PageContext) -> None:
    """The user's own destinations (masked), a form that replaces them and a way to clear them."""
    current = per_generation(
        page,
        "profile: destinations",
        lambda: notifications.own_destinations(page.ctx, page.actor),
    )
    if current:
        st.markdown("Messages for you go to:")
        st.code("\n".join(current), language=None)
    else:
        st.caption("You have no destination yet: VLM's messages for you are not sent anywhere.")
    saved = st.session_state.get("_profile_destinations_saved", 0)
    with st.form(f"own_destinations_{saved}"):
        text = st.text_area("Send my messages to", help=DESTINATION_HELP, height=100)
        fields = field_slots(destinations=st)
        save = st.form_submit_button("Save destinations", icon=":material/save:")
    if save:
        outcome = attempt(
            notifications.set_own_destinations, page.ctx, page.actor, text, fields=fields
        )
        if outcome.ok:
            st.session_state["_profile_destinations_saved"] = saved + 1
            flash(f"{len(outcome.value or [])} destination(s) saved.")
            st.rerun()
    if current:
        if st.button("Send test", key="own_destinations_test", icon=":material/send:"):
            with st.spinner("Sending a test message to each destination…"):
                outcome = attempt(notifications.send_own_test, page.ctx, page.actor)
            if outcome.ok and outcome.value is not None:
                if outcome.value.delivered:
                    st.success(f"Delivered to {outcome.value.delivered} destination(s).")
                for error in outcome.value.errors:
                    st.error(f"Not delivered: {error}", icon=":material/error:")
        confirmed_action(
            "Remove all destinations…",
            key="clear_destinations",
            question=Question(
                "clear_destinations",
                f"Remove your {len(current)} destination(s)? VLM's messages for you are then "
                "not sent anywhere.",
                "Remove all",
            ),
            act=lambda: notifications.set_own_destinations(page.ctx, page.actor, ""),
            done="Your destinations are removed.",
        )


def show_new_token() -> None:
    """The token just created, until the user confirms they copied it (it cannot be shown again)."""
    stored = st.session_state.get(NEW_TOKEN_KEY)
    if stored is None:
        return
    name, token = stored
    with st.container(border=True, key="new_token"):
        st.success(
            f"Your token **{name}** — copy it now (the copy button is at the right of the box): "
            "once you press Done it cannot be shown again. Send it as "
            "`Authorization: Bearer <token>`.",
            icon=":material/key:",
        )
        st.code(token, language=None)
        if st.button("Done, I copied it", key="new_token_done"):
            st.session_state.pop(NEW_TOKEN_KEY, None)
            st.rerun()


def new_token_form(page: PageContext) -> None:
    """Name, read-only and an optional expiry; a created token is kept to be shown once."""
    made = st.session_state.get("_profile_tokens_made", 0)
    with st.form(f"new_token_{made}"):
        name_col, expiry_col = st.columns(2)
        name = name_col.text_input(
            "Token name", placeholder="e.g. provisioning script", key=f"new_token_name_{made}"
        )
        fields = field_slots(name=name_col)
        expires = expiry_col.date_input(
            "Expires after (optional)",
            value=None,
            min_value=date.today(),
            max_value=date.today() + timedelta(days=3650),
            help="The token works through this day; leave empty for no expiry.",
            key=f"new_token_expires_{made}",
        )
        fields |= field_slots(expires_at=expiry_col)
        read_only = st.checkbox(
            "Read-only",
            help="A read-only token may read what you may read, and change nothing.",
            key=f"new_token_read_only_{made}",
        )
        create = st.form_submit_button(
            "Create token", type="primary", icon=":material/key:", key=f"new_token_create_{made}"
        )
    if create:
        outcome = attempt(
            tokens.create_token,
            page.ctx,
            page.actor,
            name,
            read_only=read_only,
            expires_at=expires,
            fields=fields,
        )
        if outcome.ok and outcome.value is not None:
            st.session_state[NEW_TOKEN_KEY] = (outcome.value.name, outcome.value.token)
            st.session_state["_profile_tokens_made"] = made + 1
            st.rerun()


def _token_label(row: pd.Series, *, with_user: bool) -> str:
    owner = f"{row['username']}: " if with_user else ""
    return f"{owner}{row['name']} ({row['hint']}…)"


def _revoke(page: PageContext, frame: pd.DataFrame, *, key: str, with_user: bool) -> None:
    """Pick an active token and revoke it after a confirmation that states the impact."""
    active = frame[frame["status"] == tokens.ACTIVE]
    if active.empty:
        return
    labels = {int(r["id"]): _token_label(r, with_user=with_user) for _, r in active.iterrows()}
    chosen = st.selectbox(
        "Token", list(labels), format_func=labels.__getitem__, key=f"{key}_choice"
    )
    if chosen is None:
        return
    token_id = int(chosen)
    confirmed_action(
        "Revoke…",
        key=f"{key}_revoke",
        question=Question(
            f"revoke_token_{token_id}",
            f"Revoke {labels[token_id]}? Every script using it is refused at once (401); "
            "this cannot be undone.",
            f"Revoke {labels[token_id]}",
        ),
        act=lambda: tokens.revoke_token(page.ctx, page.actor, token_id),
        done=f"Token {labels[token_id]} revoked.",
        icon=":material/key_off:",
    )


def _table(frame: pd.DataFrame, columns: list[str], name: str, key: str) -> None:
    if frame.empty:
        st.caption("No tokens yet.")
        return
    table_with_download(frame[columns], name, column_config=TOKEN_LABELS, key=key)


def own_tokens(page: PageContext) -> None:
    frame = per_generation(
        page, "profile: own tokens", lambda: tokens.list_own_tokens(page.ctx, page.actor)
    )
    _table(frame, SHOWN_COLUMNS, "my API tokens", "profile_tokens")
    _revoke(page, frame, key="profile_own", with_user=False)


def all_tokens(page: PageContext) -> None:
    """Every user's tokens (admins), with a revoke for any active one."""
    frame = per_generation(
        page, "profile: all tokens", lambda: tokens.list_all_tokens(page.ctx, page.actor)
    )
    _table(frame, ALL_COLUMNS, "all API tokens", "profile_all_tokens")
    _revoke(page, frame, key="profile_any", with_user=True)

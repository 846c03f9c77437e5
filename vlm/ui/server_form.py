"""The license-server connection form (add and edit), and Sync now with progress."""

from __future__ import annotations

import math
from typing import Any

import streamlit as st

from vlm.domain import TIMEOUT_MAX_SECONDS, TIMEOUT_MIN_SECONDS
from vlm.runtime import Runtime
from vlm.services.servers import ConnectionCheck, ServerInput
from vlm.ui.messages import Explained, explain_server_error
from vlm.ui.session import current_actor
from vlm.ui.widgets import show_problem

DEFAULT_TIMEOUT_SECONDS = 10.0


def _timeout_default(stored: object) -> float:
    """The stored timeout if usable, else the default (never NaN or out of range)."""
    try:
        value = float(stored)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return DEFAULT_TIMEOUT_SECONDS
    if not math.isfinite(value) or not TIMEOUT_MIN_SECONDS <= value <= TIMEOUT_MAX_SECONDS:
        return DEFAULT_TIMEOUT_SECONDS
    return value


def server_form(
    key: str, current: dict[str, Any] | None = None
) -> tuple[str | None, ServerInput, bool]:
    """Render the form; returns (pressed action: 'test' | 'save' | None, input, keep_password)."""
    current = current or {}
    with st.form(key):
        name_col, url_col = st.columns(2)
        name = name_col.text_input("Name", value=current.get("name", ""))
        base_url = url_col.text_input(
            "Base URL", value=current.get("base_url", ""), placeholder="http://lls.example:7070"
        )
        instance_col, user_col, password_col = st.columns(3)
        instance = instance_col.text_input(
            "Instance", value=current.get("instance", "~"), help="'~' for an LLS, the id for a CLS"
        )
        username = user_col.text_input("User", value=current.get("username") or "")
        password = password_col.text_input(
            "Password",
            type="password",
            help="Stored encrypted, never shown again."
            + (" Leave empty to keep the stored one." if current else ""),
        )
        tls_col, ca_col, timeout_col = st.columns(3)
        verify_tls = tls_col.checkbox(
            "Verify TLS certificate",
            value=bool(current.get("verify_tls", True)),
            help="Turn off only for a self-signed LLS certificate.",
        )
        ca_path = ca_col.text_input("CA bundle path (optional)", value=current.get("ca_path") or "")
        timeout = timeout_col.number_input(
            "Timeout (s)",
            min_value=TIMEOUT_MIN_SECONDS,
            max_value=TIMEOUT_MAX_SECONDS,
            value=_timeout_default(current.get("timeout_seconds", DEFAULT_TIMEOUT_SECONDS)),
        )
        description = st.text_input("Description", value=current.get("description") or "")
        test_col, save_col = st.columns(2)
        test = test_col.form_submit_button("Test connection", icon=":material/network_check:")
        save = save_col.form_submit_button(
            "Save changes" if current else "Add server", type="primary"
        )
    data = ServerInput(
        name=name,
        base_url=base_url,
        instance=instance,
        username=username or None,
        password=password or None,
        verify_tls=verify_tls,
        ca_path=ca_path or None,
        timeout_seconds=timeout,
        description=description,
    )
    action = "test" if test else "save" if save else None
    return action, data, bool(current) and not password


def show_check(check: ConnectionCheck, *, server: str | None = None) -> None:
    """A "Test connection" result in plain words (the raw error for admins, folded away)."""
    if check.ok:
        detail = f"{check.message} ({check.latency_ms:.0f} ms)"
        if check.security:
            detail += f" · security: {check.security}"
        st.success(detail, icon=":material/check_circle:")
        return
    explained = explain_server_error(check.message, server=server)
    show_problem(Explained(f"{explained.text} ({check.latency_ms:.0f} ms)", explained.detail))


def _result_line(result: Any) -> str:
    """One server's line in the Sync now status: ✓ name, or ✗ name and why in plain words."""
    name = getattr(result, "server_name", "server")
    if getattr(result, "ok", True):
        return f"✓ {name}"
    error = getattr(result, "error", None)
    if not error:
        return f"✗ {name}: see the server list"
    return f"✗ {name}: {explain_server_error(error, server=name).text}"


def sync_now(runtime: Runtime) -> None:
    """Run a full inventory + reconcile pass now, with a progress bar."""
    if runtime.scheduler is None:
        st.error(runtime.scheduler_problem or "the sync engine is not running")
        return
    with st.status("Syncing license servers…", expanded=True) as status:
        bar = st.progress(0.0, text="starting")

        def progress(fraction: float, text: str) -> None:
            bar.progress(min(max(float(fraction), 0.0), 1.0), text=text)

        results = runtime.scheduler.sync_now(progress=progress) or []
        failed = [r for r in results if not getattr(r, "ok", True)]
        for result in results:
            st.write(_result_line(result))
        details = [f"{r.server_name}: {r.error}" for r in failed if getattr(r, "error", None)]
        actor = current_actor()
        if details and actor is not None and actor.is_admin:
            with st.expander("Technical detail (admins)", icon=":material/code:"):
                st.code("\n".join(details), language=None, wrap_lines=True)
        bar.progress(1.0, text="done")
        status.update(
            label=f"Sync finished: {len(results) - len(failed)} ok, {len(failed)} with errors",
            state="error" if failed else "complete",
            expanded=bool(failed),
        )

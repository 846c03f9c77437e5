"""The runtime as Streamlit sessions get it: the server's (see vlm/lifespan.py), else one opened
here from env + secrets; refused when the settings are unsafe."""

from __future__ import annotations

import logging
from dataclasses import astuple
from typing import NoReturn

import streamlit as st

from vlm.config import ConfigError, Settings, secrets_overrides
from vlm.runtime import Runtime, current_runtime, open_runtime, runtime_refusal
from vlm.services.harvesting import AFTER_SYNC_PASS

log = logging.getLogger(__name__)


def secret_overrides() -> dict[str, object]:
    """Settings given in .streamlit/secrets.toml, if such a file exists."""
    if not st.secrets.load_if_toml_exists():
        return {}
    return secrets_overrides(st.secrets)


def load_settings() -> Settings:
    """Settings.from_env() overlaid with secrets."""
    return Settings.from_env(**secret_overrides())


def _release(runtime: Runtime) -> None:
    runtime.close()


def _settings_identity(settings: Settings) -> str:
    """Every field, keys included (repr leaves the keys out), to tell runtimes apart."""
    return repr(astuple(settings))


@st.cache_resource(
    show_spinner="Opening the database…",
    on_release=_release,
    hash_funcs={Settings: _settings_identity},
)
def _open_runtime(settings: Settings) -> Runtime:
    return open_runtime(settings, after_pass=AFTER_SYNC_PASS)


def get_runtime() -> Runtime:
    """The runtime the server's lifespan opened; without a server lifespan (AppTest, `streamlit
    run app.py`) the shared cached one. Refuses (error + stop) when the settings are unsafe."""
    served = current_runtime()
    if served is not None:
        return served
    refusal = runtime_refusal()
    if refusal is not None:
        _refuse(refusal, "Restart the server after changing the settings.")
    try:
        settings = load_settings()
        problems = settings.problems()
    except ConfigError as exc:
        problems = [str(exc)]
    if problems:
        _refuse(problems)
    return _open_runtime(settings)


def _refuse(problems: list[str], then: str = "") -> NoReturn:
    """Show why VLM refuses to start and stop the script."""
    st.error(
        "VLM refuses to start: "
        + "; ".join(problems)
        + ". Run `python -m vlm init` to write .streamlit/secrets.toml with fresh keys, "
        "or start the demo with VLM_DEMO=1." + (f" {then}" if then else "")
    )
    # a menu of nothing, so Streamlit never falls back to listing the pages/ folder
    st.navigation([st.Page(_refused, title="VLM", url_path="refused")], position="hidden")
    st.stop()


def _refused() -> None:
    """The only page while the settings are unsafe (the error is shown above it)."""

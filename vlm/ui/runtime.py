"""The process-wide runtime: settings (env + secrets), service context and sync scheduler."""

from __future__ import annotations

import logging
from dataclasses import astuple, dataclass
from typing import Any, Protocol

import streamlit as st

from vlm.config import ConfigError, Settings, secrets_overrides
from vlm.services.context import ServiceContext

log = logging.getLogger(__name__)


class Scheduler(Protocol):
    def start(self) -> Any: ...

    def stop(self) -> Any: ...

    def sync_now(self, progress: Any = None) -> Any: ...


@dataclass
class Runtime:
    """Everything a session shares with every other session of this process."""

    settings: Settings
    ctx: ServiceContext
    scheduler: Scheduler | None
    scheduler_problem: str | None = None

    def close(self) -> None:
        if self.scheduler is not None:
            try:
                self.scheduler.stop()
            except Exception:  # a failing stop must not keep the database open
                log.exception("stopping the sync scheduler failed")
        self.ctx.db.close()


def secret_overrides() -> dict[str, object]:
    """Settings given in .streamlit/secrets.toml, if such a file exists."""
    if not st.secrets.load_if_toml_exists():
        return {}
    return secrets_overrides(st.secrets)


def load_settings() -> Settings:
    """Settings.from_env() overlaid with secrets."""
    return Settings.from_env(**secret_overrides())


def _start_scheduler(ctx: ServiceContext) -> tuple[Scheduler | None, str | None]:
    try:
        from vlm.sync.scheduler import SyncScheduler
    except ImportError as exc:
        log.warning("sync scheduler unavailable: %s", exc)
        return None, f"the sync engine is not available ({exc})"
    scheduler = SyncScheduler(ctx)
    scheduler.start()
    return scheduler, None


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
    ctx = ServiceContext.open(settings)
    scheduler, problem = _start_scheduler(ctx)
    return Runtime(settings, ctx, scheduler, scheduler_problem=problem)


def get_runtime() -> Runtime:
    """The shared runtime; refuses to start (error + stop) when the settings are unsafe."""
    try:
        settings = load_settings()
        problems = settings.problems()
    except ConfigError as exc:
        problems = [str(exc)]
    if problems:
        st.error(
            "VLM refuses to start: "
            + "; ".join(problems)
            + ". Run `python -m vlm init` to write .streamlit/secrets.toml with fresh keys, "
            "or start the demo with VLM_DEMO=1."
        )
        # a menu of nothing, so Streamlit never falls back to listing the pages/ folder
        st.navigation([st.Page(_refused, title="VLM", url_path="refused")], position="hidden")
        st.stop()
    return _open_runtime(settings)


def _refused() -> None:
    """The only page while the settings are unsafe (the error is shown above it)."""

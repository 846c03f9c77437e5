"""VLM's one ASGI server: the Streamlit UI (app.py; with single sign-on also Streamlit's own
/auth/login, /auth/logout and /oauth2callback, and VLM's /sso/refused) and the REST API (/api/v1)
on one port, over one runtime that the lifespan opens before the first request and closes on
shutdown.

Start it with `streamlit run server.py` (Streamlit finds `app` and serves it with uvicorn).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import streamlit as st
from streamlit import config

from vlm.api import api_routes
from vlm.lifespan import serve_runtime
from vlm.ui.sso import sso_routes


def secret_files() -> list[Path]:
    """The secrets.toml files Streamlit reads (its secrets.files option, e.g. --secrets.files)."""
    return [Path(p) for p in config.get_option("secrets.files")]


@asynccontextmanager
async def lifespan(app: st.App) -> AsyncIterator[None]:
    """The runtime (database and sync scheduler) lives exactly as long as the server."""
    async with serve_runtime(secret_files()):
        yield


app = st.App("app.py", routes=[*api_routes(), *sso_routes()], lifespan=lifespan)

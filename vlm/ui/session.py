"""What a page needs from the entrypoint: the runtime and the acting user, checked by role."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import streamlit as st

from vlm.config import Settings
from vlm.context import ServiceContext
from vlm.domain import Actor, Role, VlmError
from vlm.services import users
from vlm.ui.memo import remembered
from vlm.ui.runtime import Runtime, get_runtime

_entry = threading.local()


@dataclass(frozen=True)
class PageContext:
    runtime: Runtime
    actor: Actor

    @property
    def ctx(self) -> ServiceContext:
        return self.runtime.ctx

    @property
    def settings(self) -> Settings:
        return self.runtime.settings


@contextmanager
def entrypoint_run(actor: Actor | None) -> Iterator[None]:
    """app.py runs the chosen page inside this, with the user it resolved in this very run."""
    _entry.actor = actor
    _entry.active = True
    _entry.scratch = {}
    try:
        yield
    finally:
        _entry.active = False
        _entry.actor = None
        _entry.scratch = {}


def current_actor() -> Actor | None:
    """The user app.py resolved for this run (None outside it or when signed out)."""
    if not getattr(_entry, "active", False):
        return None
    actor = getattr(_entry, "actor", None)
    return actor if isinstance(actor, Actor) else None


def run_scratch() -> dict[str, Any]:
    """Storage that lives for one run of the script (e.g. the banners shown in it)."""
    scratch = getattr(_entry, "scratch", None)
    if scratch is None:
        scratch = _entry.scratch = {}
    return scratch


def page_context(*roles: Role) -> PageContext:
    """The page's runtime and actor; stops a page opened outside app.py or by another role."""
    if not getattr(_entry, "active", False):
        st.error("Open VLM from its start page.")
        st.stop()
    actor = _entry.actor
    if not isinstance(actor, Actor):
        st.error("Please sign in.")
        st.stop()
    if roles and actor.role not in roles:
        allowed = ", ".join(r.value for r in roles)
        st.error(f"This page is for {allowed} users; you are signed in as {actor.role.value}.")
        st.stop()
    return PageContext(get_runtime(), actor)


def recheck(page: PageContext) -> None:
    """For fragment reruns: if the user was disabled or changed role since, rerun the app.
    Read again after any write only (a role change or a disabled account is one)."""

    def current_actor() -> Actor | None:
        try:
            return users.actor_for(page.ctx, page.actor.username)
        except VlmError:
            return None

    key = ("session: current actor", page.actor.username)
    current = remembered(page.ctx.db, key, current_actor)
    if current != page.actor:
        st.rerun()

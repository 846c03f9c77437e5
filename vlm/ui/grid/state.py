"""Per (pool, feature) grid state kept in st.session_state: editor version, snapshot, drafts."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import streamlit as st

from vlm.context import ServiceContext
from vlm.domain import Actor, FeatureKey
from vlm.services import allocations
from vlm.ui.grid.diff import has_edits
from vlm.ui.grid.drafts import Drafts, build_source


@dataclass
class GridMemory:
    """What one grid remembers between runs."""

    version: int = 0
    source: pd.DataFrame | None = None
    generation: int = -1
    drafts: Drafts = field(default_factory=Drafts)
    tracked: dict[int, dict[str, Any]] = field(default_factory=dict)
    results: list[dict[str, Any]] = field(default_factory=list)
    summary: str = ""
    preview: bool = False
    retry_round: int = 0


@dataclass(frozen=True)
class GridScope:
    """The grid of one feature of one pool."""

    pool_id: int
    feature: FeatureKey

    @property
    def tag(self) -> str:
        digest = hashlib.sha1("\0".join(self.feature).encode()).hexdigest()[:8]
        return f"{self.pool_id}_{digest}"

    @property
    def memory(self) -> GridMemory:
        return st.session_state.setdefault(f"_alloc_grid_{self.tag}", GridMemory())

    @property
    def editor_key(self) -> str:
        return f"alloc_grid_{self.tag}_{self.memory.version}"

    def editor_state(self) -> Any:
        return st.session_state.get(self.editor_key)

    def editing(self) -> bool:
        return has_edits(self.editor_state())

    def source(self, ctx: ServiceContext, actor: Actor) -> pd.DataFrame:
        """The editor input: a snapshot kept while edits are pending, else refreshed on change."""
        memory = self.memory
        stale = memory.source is None or memory.generation != ctx.db.generation
        if stale and not self.editing():
            self.refresh(ctx, actor)
        assert memory.source is not None
        return memory.source

    def refresh(self, ctx: ServiceContext, actor: Actor) -> None:
        memory = self.memory
        memory.generation = ctx.db.generation
        rows = allocations.list_allocations(ctx, actor, self.pool_id, self.feature)
        memory.source = build_source(rows, memory.drafts)

    def restart(self, ctx: ServiceContext, actor: Actor, drafts: Drafts | None = None) -> None:
        """A fresh editor (new key) over fresh data with the given drafts."""
        memory = self.memory
        memory.version += 1
        memory.drafts = drafts or Drafts()
        memory.preview = False
        self.refresh(ctx, actor)

"""What a page computed from the database, kept for the session until the next committed write.

A rerun with nothing written since (a widget click, the Dashboard's 15 s refresh) reuses the
frames and figures of the last run instead of querying and drawing them again. Entries are keyed
by the signed-in actor, so a permitted answer is only ever reused for the user it was computed
for, and sign-out drops them (the "_vlm_" session prefix). Any write by any replica moves the
database generation and every entry is computed again on its next use.

What is derived from such a frame for showing it (per_frame) is kept with the very frame object
it came from: a frame kept until the next write is derived from once, a new frame anew.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Protocol, TypeVar

import streamlit as st

if TYPE_CHECKING:
    from vlm.ui.session import PageContext

T = TypeVar("T")
MEMO_KEY = "_vlm_memo"
MAX_ENTRIES = 32
FRAMES_KEY = "_vlm_frame_memo"
MAX_FRAMES = 8


class HasGeneration(Protocol):
    @property
    def generation(self) -> int: ...


def per_generation(page: PageContext, name: str, compute: Callable[[], T], *extra: Hashable) -> T:
    """compute()'s answer for this actor, computed again only after the database changed.

    extra distinguishes answers of one name (a period, a server, the minute a window ends)."""
    return remembered(page.ctx.db, (name, page.actor, *extra), compute)


def remembered(db: HasGeneration, key: tuple, compute: Callable[[], T]) -> T:
    """compute()'s answer under key for this session, computed again after the next write
    (for what is read before anyone is signed in, key by what the answer depends on)."""
    memo: dict[tuple, tuple[int, object]] = st.session_state.setdefault(MEMO_KEY, {})
    generation = db.generation
    found = memo.get(key)
    if found is not None and found[0] == generation:
        return found[1]  # type: ignore[return-value]
    value = compute()
    current = {k: v for k, v in memo.items() if v[0] == generation and k != key}
    while len(current) >= MAX_ENTRIES:
        current.pop(next(iter(current)))
    current[key] = (generation, value)
    st.session_state[MEMO_KEY] = current
    return value


def per_frame(frame: object, key: Hashable, compute: Callable[[], T]) -> T:
    """compute()'s answer for this very frame object (and key), kept for the session.

    The entry holds the frame, so no other object can take its id while the entry is kept;
    the MAX_FRAMES most recently used entries are kept."""
    memo: dict[tuple, tuple[object, object]] = st.session_state.setdefault(FRAMES_KEY, {})
    entry_key = (id(frame), key)
    found = memo.pop(entry_key, None)
    if found is not None and found[0] is frame:
        memo[entry_key] = found
        return found[1]  # type: ignore[return-value]
    value = compute()
    memo[entry_key] = (frame, value)
    while len(memo) > MAX_FRAMES:
        memo.pop(next(iter(memo)))
    return value

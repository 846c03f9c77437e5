"""An action that asks first: ask -> confirm -> attempt -> flash -> rerun, in one widget."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from vlm.ui.widgets import ask_confirmation, attempt, confirmation, danger_button, flash

T = TypeVar("T")
DELETE_ICON = ":material/delete_forever:"


@dataclass(frozen=True)
class Question:
    """The confirmation an action asks for: opened under `key` (its buttons are `{key}_confirm`
    and `{key}_cancel`), stating the impact in `text`, confirmed with `confirm_label`."""

    key: str
    text: str
    confirm_label: str


def _ask_button(
    label: str,
    *,
    key: str,
    container: DeltaGenerator | None,
    icon: str,
    destructive: bool,
    enabled: bool,
) -> bool:
    """The button that opens the question: red for a destructive action."""
    if destructive:
        return danger_button(label, key=key, container=container, icon=icon, disabled=not enabled)
    return (container or st).button(label, key=key, icon=icon, disabled=not enabled)


def confirmed_action(
    label: str,
    *,
    key: str,
    question: Question,
    act: Callable[[], T],
    done: str | Callable[[T], Any],
    container: DeltaGenerator | None = None,
    icon: str = DELETE_ICON,
    destructive: bool = True,
    enabled: bool = True,
) -> None:
    """A button (`key`, drawn in `container`) that opens `question` here; once confirmed, `act`
    runs through attempt() (a refusal is shown in place and nothing else happens); on success
    `done` is flashed when it is text, else called with act's result, and the page reruns.
    A disabled (`enabled=False`) action shows its button greyed and no question."""
    if _ask_button(
        label, key=key, container=container, icon=icon, destructive=destructive, enabled=enabled
    ):
        ask_confirmation(question.key)
    if not enabled:
        return
    if not confirmation(
        question.key, question.text, question.confirm_label, destructive=destructive
    ):
        return
    outcome = attempt(act)
    if not outcome.ok:
        return
    if isinstance(done, str):
        flash(done)
    else:
        done(outcome.value)
    st.rerun()

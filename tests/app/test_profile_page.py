"""The Profile page: create a personal API token (shown once), see it listed with its last use,
revoke it after a confirmation; an admin sees every user's tokens and may revoke any."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from tests.app.conftest import open_page, service_context
from vlm.domain import Actor, Role
from vlm.services import tokens
from vlm.services.tokens import InvalidToken

MANAGER = Actor("mia", Role.MANAGER)


def _widget(widgets, prefix: str):
    return next(w for w in widgets if w.key and w.key.startswith(prefix))


def _create(at: AppTest, name: str, *, read_only: bool = False) -> AppTest:
    _widget(at.text_input, "new_token_name_").input(name)
    if read_only:
        _widget(at.checkbox, "new_token_read_only_").check()
    _widget(at.button, "new_token_create_").click()
    at.run()
    return at


def _shown_tokens(at: AppTest) -> list[str]:
    return [c.value for c in at.code if c.value.startswith("vlm_")]


def test_a_token_is_shown_once_and_works_as_its_user(app) -> None:
    at = _create(open_page(app("mia"), "profile"), "ci pipeline", read_only=True)

    assert not at.error, [e.value for e in at.error]
    shown = _shown_tokens(at)
    assert len(shown) == 1
    actor = tokens.authenticate(service_context(), shown[0])
    assert (actor.username, actor.role, actor.read_only) == ("mia", Role.MANAGER, True)
    listed = tokens.list_own_tokens(service_context(), MANAGER)
    assert list(listed["name"]) == ["ci pipeline"] and bool(listed["read_only"].iloc[0])

    at.button(key="new_token_done").click()
    at.run()

    assert _shown_tokens(at) == []
    assert shown[0] not in " ".join(m.value for m in at.markdown)
    table = at.dataframe[0].value
    assert list(table["name"]) == ["ci pipeline"] and list(table["status"]) == ["active"]


def test_a_token_without_a_name_is_refused_at_its_field(app) -> None:
    at = _create(open_page(app("mia"), "profile"), "   ")

    assert any("token name is empty" in e.value for e in at.error)
    assert _shown_tokens(at) == []
    assert tokens.list_own_tokens(service_context(), MANAGER).empty


def test_revoking_asks_first_then_the_token_stops(app) -> None:
    made = tokens.create_token(service_context(), MANAGER, "old script")
    at = open_page(app("mia"), "profile")

    at.button(key="profile_own_revoke").click()
    at.run()
    warning = " ".join(w.value for w in at.warning)
    assert "old script" in warning and "refused at once" in warning
    assert tokens.authenticate(service_context(), made.token).username == "mia"
    at.button(key=f"revoke_token_{made.id}_confirm").click()
    at.run()

    assert not at.error
    with pytest.raises(InvalidToken):
        tokens.authenticate(service_context(), made.token)
    assert list(tokens.list_own_tokens(service_context(), MANAGER)["status"]) == ["revoked"]


def test_an_admin_sees_and_revokes_every_users_tokens(app) -> None:
    theirs = tokens.create_token(service_context(), MANAGER, "mia's script")
    manager_page = open_page(app("mia"), "profile")
    assert "Every user's tokens" not in [s.value for s in manager_page.subheader]

    at = open_page(app("admin"), "profile")
    assert "Every user's tokens" in [s.value for s in at.subheader]
    everyone = at.dataframe[-1].value
    assert "mia" in set(everyone["username"])
    at.selectbox(key="profile_any_choice").set_value(theirs.id)
    at.run()
    at.button(key="profile_any_revoke").click()
    at.run()
    at.button(key=f"revoke_token_{theirs.id}_confirm").click()
    at.run()

    with pytest.raises(InvalidToken):
        tokens.authenticate(service_context(), theirs.token)
    listed = tokens.list_own_tokens(service_context(), MANAGER)
    assert list(listed["revoked_by"]) == ["admin"]

"""The enabled users for the cookie check are read once per database generation, and each run
gets its own copy: streamlit-authenticator marks in it who signed in."""

from __future__ import annotations

from types import SimpleNamespace

from tests.conftest import ADMIN
from tests.unit.services.estate import add_people
from vlm.services import users
from vlm.ui import auth, memo


def test_each_run_gets_a_fresh_copy_and_a_write_is_seen(ctx, monkeypatch):
    monkeypatch.setattr(memo.st, "session_state", {})
    add_people(ctx)
    runtime = SimpleNamespace(ctx=ctx)
    first = auth._cookie_credentials(runtime)
    assert "password" not in first["usernames"]["bob"]
    first["usernames"]["bob"]["logged_in"] = True
    first["usernames"]["bob"]["roles"].append("admin")

    again = auth._cookie_credentials(runtime)
    assert again["usernames"]["bob"]["logged_in"] is False
    assert again["usernames"]["bob"]["roles"] == ["manager"]

    users.set_disabled(ctx, ADMIN, "bob", True)
    assert "bob" not in auth._cookie_credentials(runtime)["usernames"]


def test_a_signed_in_session_gets_only_its_own_entry_as_a_fresh_copy(ctx, monkeypatch):
    monkeypatch.setattr(memo.st, "session_state", {})
    add_people(ctx)
    runtime = SimpleNamespace(ctx=ctx)
    first = auth._cookie_credentials(runtime, "bob")
    assert list(first["usernames"]) == ["bob"]
    assert "password" not in first["usernames"]["bob"]
    first["usernames"]["bob"]["logged_in"] = True
    first["usernames"]["bob"]["roles"].append("admin")

    again = auth._cookie_credentials(runtime, "bob")
    assert again["usernames"]["bob"]["logged_in"] is False
    assert again["usernames"]["bob"]["roles"] == ["manager"]
    assert len(auth._cookie_credentials(runtime)["usernames"]) > 1

    users.set_disabled(ctx, ADMIN, "bob", True)
    assert auth._cookie_credentials(runtime, "bob") == {"usernames": {}}

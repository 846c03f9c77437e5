"""Start-up refuses placeholder, short, blank or patterned cookie keys and bad Fernet keys (#7.5,
#7.10); the keys `python -m vlm init` writes pass."""

from __future__ import annotations

import base64
import secrets

import pytest

from vlm.cli import fresh_keys
from vlm.config import (
    DEMO_COOKIE_KEY,
    DEMO_SECRET_KEY,
    EXAMPLE_SECRETS,
    Settings,
    read_secrets_file,
)
from vlm.secret_box import SecretBox

EXAMPLE = read_secrets_file(EXAMPLE_SECRETS)
# the example file's cookie key before issue #7: a cookie signed with it signed in as admin
OLD_EXAMPLE_COOKIE_KEY = "replace-with-a-long-random-string-of-at-least-32-bytes"
OLD_EXAMPLE_SECRET_KEY = "replace-with-a-fernet-key"


def good_cookie_key() -> str:
    return secrets.token_urlsafe(48)


def settings(**values: object) -> Settings:
    keys = {"cookie_key": good_cookie_key(), "secret_key": SecretBox.generate_key()}
    return Settings(**{**keys, **values})


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode()


def test_fresh_random_keys_start():
    assert settings().problems() == []
    cookie_key, secret_key = fresh_keys()
    assert settings(cookie_key=cookie_key, secret_key=secret_key).problems() == []


def test_the_example_file_holds_both_keys_and_they_are_refused():
    assert {"cookie_key", "secret_key"} <= EXAMPLE.keys()
    problems = settings(**{k: EXAMPLE[k] for k in ("cookie_key", "secret_key")}).problems()
    assert len(problems) == 2
    assert any("VLM_COOKIE_KEY" in p for p in problems)
    assert any("VLM_SECRET_KEY" in p for p in problems)


@pytest.mark.parametrize(
    "key",
    [
        OLD_EXAMPLE_COOKIE_KEY,
        DEMO_COOKIE_KEY,
        "<paste a long random string of at least 32 bytes here>",
        "change-me-change-me-0123456789-abcdefghijklmnop",
        "CHANGEME-4f9a1c2e8b7d6f5a3c1e9b8d7f6a5c4e",
        "example-4f9a1c2e8b7d6f5a3c1e9b8d7f6a5c4e3b2a",
        "placeholder-4f9a1c2e8b7d6f5a3c1e9b8d7f6a5c4e",
        "your-key-goes-here-Replace-4f9a1c2e8b7d6f5a3c",
    ],
)
def test_placeholder_cookie_keys_are_refused(key):
    problems = settings(cookie_key=key).problems()
    assert len(problems) == 1
    assert "VLM_COOKIE_KEY" in problems[0] and "placeholder" in problems[0]


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        (None, "missing"),
        ("", "missing"),
        (" " * 40, "missing"),
        ("\t\n" * 20, "missing"),
        ("Zq8!x2#Lm0@", "shorter than 32 bytes"),
        ("a" * 64, "not random"),
        ("ab" * 32, "not random"),
        ("0123456789" * 4, "not random"),  # ten distinct characters, but one block repeated
        ("aaaaaaaaaaaaaaaaaaaabbbbbbbbbbbbbbbbbbbbcccc", "not random"),  # three distinct
        ("kQ3-kQ3-kQ3-kQ3-kQ3-kQ3-kQ3-kQ3-kQ3-kQ3-", "not random"),
    ],
)
def test_missing_short_blank_and_patterned_cookie_keys_are_refused(key, reason):
    problems = settings(cookie_key=key).problems()
    assert len(problems) == 1
    assert "VLM_COOKIE_KEY" in problems[0] and reason in problems[0]


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        (None, "missing"),
        ("   ", "missing"),
        ("not-a-fernet-key", "not a valid Fernet key"),
        ("x" * 44, "not a valid Fernet key"),
        (b64(secrets.token_bytes(16)), "not a valid Fernet key"),
        (b64(secrets.token_bytes(33)), "not a valid Fernet key"),
        (" " + SecretBox.generate_key(), "not a valid Fernet key"),
        (SecretBox.generate_key()[:20] + " " + SecretBox.generate_key()[21:], "not a valid"),
        (OLD_EXAMPLE_SECRET_KEY, "not a valid Fernet key"),
        (DEMO_SECRET_KEY, "placeholder"),
        (b64(bytes(32)), "not random"),
        (b64(b"\x01\x02" * 16), "not random"),
        (b64(b"my own secret key, 32 bytes long"), "not random"),  # text, not random bytes
    ],
)
def test_invalid_placeholder_and_weak_fernet_keys_are_refused(key, reason):
    problems = settings(secret_key=key).problems()
    assert len(problems) == 1
    assert "VLM_SECRET_KEY" in problems[0] and reason in problems[0]


def test_a_missing_and_an_invalid_fernet_key_are_refused_alike():
    missing = settings(secret_key=None).problems()
    invalid = settings(secret_key="garbage").problems()
    assert missing[0].split(" is ")[0] == invalid[0].split(" is ")[0]
    assert "python -m vlm init" in missing[0] and "python -m vlm init" in invalid[0]


def test_demo_mode_fills_in_demo_keys_but_still_refuses_an_invalid_fernet_key(monkeypatch):
    for name in ("VLM_COOKIE_KEY", "VLM_SECRET_KEY", "VLM_GROUP_PREFIX"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("VLM_DEMO", "1")
    demo = Settings.from_env()
    assert (demo.cookie_key, demo.secret_key) == (DEMO_COOKIE_KEY, DEMO_SECRET_KEY)
    assert demo.problems() == []
    broken = Settings.from_env(secret_key="garbage").problems()
    assert len(broken) == 1 and "not a valid Fernet key" in broken[0]
    monkeypatch.setenv("VLM_DEMO", "0")
    outside = Settings.from_env(cookie_key=DEMO_COOKIE_KEY, secret_key=DEMO_SECRET_KEY)
    assert len(outside.problems()) == 2

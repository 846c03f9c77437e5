"""Settings from the environment and secrets.toml: they reach the database they configure, and
a group prefix that could claim foreign groups stops the start (#7.2)."""

from __future__ import annotations

import os
import secrets

import pytest

from vlm.config import ConfigError, Settings, read_secrets_file
from vlm.context import ServiceContext
from vlm.secret_box import SecretBox


def test_duckdb_memory_limit_comes_from_the_environment(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("VLM_DB_MEMORY_LIMIT", "300MB")
    settings = Settings.from_env(
        db_path=str(tmp_path / "vlm.duckdb"), secret_key=SecretBox.generate_key()
    )
    assert settings.db_memory_limit == "300MB"
    ctx = ServiceContext.open(settings)
    try:
        limit = ctx.db.scalar("SELECT current_setting('memory_limit')")
    finally:
        ctx.db.close()
    assert limit.replace(" ", "") in {"286.1MiB", "300.0MB", "300MB"}, limit


def clear_vlm_environment(monkeypatch) -> None:
    for name in [n for n in os.environ if n.startswith("VLM_")]:
        monkeypatch.delenv(name)


def valid_keys() -> dict[str, str]:
    return {"cookie_key": secrets.token_urlsafe(48), "secret_key": SecretBox.generate_key()}


@pytest.mark.parametrize("prefix", ["vlm-", "team_a_", "vlm.", "abc-", "VLM-prod-"])
def test_a_group_prefix_of_three_characters_or_more_ending_in_a_separator_starts(prefix):
    assert Settings(group_prefix=prefix, **valid_keys()).problems() == []


@pytest.mark.parametrize(
    ("prefix", "reason"),
    [
        ("", "is empty"),
        ("   ", "is empty"),
        ("\t", "is empty"),
        ("a-", "at least 3 characters"),
        ("-", "at least 3 characters"),
        ("vlm", "must end with a separator"),
        ("vlm-x", "must end with a separator"),
        ("vlm -", "must not contain spaces"),
        (" vlm-", "must not contain spaces"),
    ],
)
@pytest.mark.parametrize("demo", [False, True])
def test_an_empty_short_or_unseparated_group_prefix_is_refused_in_demo_mode_too(
    prefix, reason, demo
):
    problems = Settings(group_prefix=prefix, demo=demo, **valid_keys()).problems()
    assert len(problems) == 1
    assert "VLM_GROUP_PREFIX" in problems[0] and reason in problems[0]
    assert Settings(group_prefix=prefix, **valid_keys()).problems(needs_cookie_key=False)


def test_an_empty_prefix_in_the_environment_and_in_secrets_toml_are_refused_alike(
    monkeypatch, tmp_path
):
    clear_vlm_environment(monkeypatch)
    keys = valid_keys()
    secrets_toml = tmp_path / "secrets.toml"
    secrets_toml.write_text(f'[vlm]\ngroup_prefix = ""\nsecret_key = "{keys["secret_key"]}"\n')
    from_file = Settings.from_env(cookie_key=keys["cookie_key"], **read_secrets_file(secrets_toml))
    monkeypatch.setenv("VLM_GROUP_PREFIX", "")
    from_environment = Settings.from_env(**keys)
    assert from_file.group_prefix == from_environment.group_prefix == ""
    assert from_file.problems() == from_environment.problems()
    assert len(from_file.problems()) == 1 and "is empty" in from_file.problems()[0]


def test_secrets_toml_values_win_over_the_environment(monkeypatch, tmp_path):
    clear_vlm_environment(monkeypatch)
    monkeypatch.setenv("VLM_GROUP_PREFIX", "from-env-")
    monkeypatch.setenv("VLM_MAX_LOGIN_ATTEMPTS", "9")
    secrets_toml = tmp_path / "secrets.toml"
    secrets_toml.write_text('[vlm]\ngroup_prefix = "from-file-"\n[auth]\nmax_login_attempts = 3\n')
    settings = Settings.from_env(**read_secrets_file(secrets_toml))
    assert (settings.group_prefix, settings.max_login_attempts) == ("from-file-", 3)
    assert read_secrets_file(tmp_path / "absent.toml") == {}


@pytest.mark.parametrize(
    ("variable", "value", "setting"),
    [
        ("VLM_SYNC_INTERVAL", "", "sync_interval_seconds"),
        ("VLM_SYNC_INTERVAL", "soon", "sync_interval_seconds"),
        ("VLM_MAX_LOGIN_ATTEMPTS", "five", "max_login_attempts"),
        ("VLM_SYNC_IN_FLIGHT", "many", "sync_in_flight"),
    ],
)
def test_a_number_that_is_not_one_names_its_setting(monkeypatch, variable, value, setting):
    clear_vlm_environment(monkeypatch)
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=setting):
        Settings.from_env()


def test_a_broken_secrets_toml_is_a_config_error(tmp_path):
    broken = tmp_path / "secrets.toml"
    broken.write_text("[auth\ncookie_key = 'x'\n")
    with pytest.raises(ConfigError, match="cannot be read"):
        read_secrets_file(broken)


def test_at_least_one_sign_in_attempt_is_allowed():
    problems = Settings(max_login_attempts=0, **valid_keys()).problems()
    assert problems == ["max_login_attempts (VLM_MAX_LOGIN_ATTEMPTS) must be at least 1"]


def test_requests_in_flight_per_server_come_from_the_environment_or_secrets(monkeypatch, tmp_path):
    clear_vlm_environment(monkeypatch)
    assert Settings.from_env().sync_in_flight == 8
    monkeypatch.setenv("VLM_SYNC_IN_FLIGHT", "3")
    assert Settings.from_env().sync_in_flight == 3
    secrets_toml = tmp_path / "secrets.toml"
    secrets_toml.write_text("[vlm]\nsync_in_flight = 16\n")
    assert Settings.from_env(**read_secrets_file(secrets_toml)).sync_in_flight == 16


@pytest.mark.parametrize(("in_flight", "refused"), [(0, True), (1, False), (64, False), (65, True)])
def test_requests_in_flight_per_server_are_between_1_and_64(in_flight, refused):
    problems = Settings(sync_in_flight=in_flight, **valid_keys()).problems()
    expected = ["sync_in_flight (VLM_SYNC_IN_FLIGHT) must be between 1 and 64"] if refused else []
    assert problems == expected


def test_hosts_per_batch_group_come_from_the_environment_or_secrets(monkeypatch, tmp_path):
    clear_vlm_environment(monkeypatch)
    assert Settings.from_env().sync_batch_hosts == 250
    monkeypatch.setenv("VLM_SYNC_BATCH_HOSTS", "0")
    assert Settings.from_env().sync_batch_hosts == 0
    secrets_toml = tmp_path / "secrets.toml"
    secrets_toml.write_text("[vlm]\nsync_batch_hosts = 40\n")
    monkeypatch.delenv("VLM_SYNC_BATCH_HOSTS")
    assert Settings.from_env(**read_secrets_file(secrets_toml)).sync_batch_hosts == 40


@pytest.mark.parametrize(
    ("hosts", "refused"), [(-1, True), (0, False), (1000, False), (1001, True)]
)
def test_hosts_per_batch_group_are_between_0_and_1000(hosts, refused):
    problems = Settings(sync_batch_hosts=hosts, **valid_keys()).problems()
    expected = ["sync_batch_hosts (VLM_SYNC_BATCH_HOSTS) must be between 0 and 1000"]
    assert problems == (expected if refused else [])

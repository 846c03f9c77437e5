"""secrets.toml's single sign-on settings: providers as Streamlit finds them, VLM's own keys in
[vlm.sso.<provider>], and the problems that refuse the start (vlm/sso_config.py)."""

from __future__ import annotations

import tomllib

from vlm.cli import secrets_toml
from vlm.config import Settings, secrets_overrides
from vlm.sso_config import mapped_role, read_sso_settings

PROVIDER = {"client_id": "c", "client_secret": "s", "server_metadata_url": "https://idp/x"}
GOOD = {
    "auth": {
        "cookie_key": "k",
        "redirect_uri": "https://vlm.example/oauth2callback",
        "cookie_secret": "Zq3-vT8pLw2Rk9Xm4Yc7Nb1Hd6Fg5Js0A",
        "okta": PROVIDER,
        "keycloak": PROVIDER,
    },
    "vlm": {"sso": {"okta": {"admin": ["ops"], "analyst": "staff", "auto_create": True}}},
}


def test_providers_and_their_vlm_settings():
    sso = read_sso_settings(GOOD)
    assert [p.name for p in sso.providers] == ["keycloak", "okta"] and not sso.problems
    okta = sso.provider("okta")
    assert okta.display_name == "Okta" and okta.auto_create and okta.client_id == "c"
    assert okta.role_map == (("ops", "admin"), ("staff", "analyst"))
    keycloak = sso.provider("keycloak")
    assert not keycloak.auto_create and keycloak.role_map == () and keycloak.role_claim == "groups"
    settings = Settings.from_env(**secrets_overrides(GOOD), demo=True)
    assert settings.sso == sso and "Zq3" not in repr(settings)


def test_a_single_top_level_provider_is_streamlits_default():
    sso = read_sso_settings({"auth": {**GOOD["auth"], "okta": None, "keycloak": None, **PROVIDER}})
    assert [p.name for p in sso.providers] == ["default"]


def test_no_provider_no_sso_and_no_problem():
    assert read_sso_settings({"auth": {"cookie_key": "k"}}).providers == ()
    assert Settings.from_env(**secrets_overrides({"auth": {"cookie_key": "k"}})).sso.providers == ()


def test_broken_settings_refuse_the_start_with_reasons():
    broken = {
        "auth": {
            "redirect_uri": "https://vlm.example/",
            "cookie_secret": "short",
            "my_idp": {"client_id": "c"},
        },
        "vlm": {"sso": {"my_idp": {"admin": [1], "colour": "red"}, "ghost": {}}},
    }
    problems = Settings.from_env(**secrets_overrides(broken)).problems()
    text = "\n".join(problems)
    for expected in (
        "redirect_uri must end with /oauth2callback",
        "must not contain '_'",
        "missing client_secret, server_metadata_url",
        "admin must be a list of non-empty strings",
        "unknown keys ['colour']",
        "[vlm.sso.ghost] names no provider",
        "single sign-on cookie secret ([auth] cookie_secret in secrets.toml) is shorter",
    ):
        assert expected in text, (expected, problems)
    # the command line signs nobody in: it does not refuse for SSO settings
    assert not any(
        "sso" in p.lower()
        for p in Settings.from_env(**secrets_overrides(broken)).problems(needs_cookie_key=False)
    )


def test_mapping_takes_the_highest_role_and_ignores_other_claim_shapes():
    role_map = (("a", "analyst"), ("m", "manager"), ("x", "admin"))
    assert mapped_role({"groups": ["a", "m"]}, "groups", role_map) == "manager"
    assert mapped_role({"groups": "x"}, "groups", role_map) == "admin"
    assert mapped_role({"groups": {"x": 1}}, "groups", role_map) is None
    assert mapped_role({}, "groups", role_map) is None


def test_init_writes_a_commented_template_that_turns_nothing_on():
    text = secrets_toml("c" * 48, "k")
    assert "[auth.okta]" in text and "[vlm.sso.okta]" in text
    assert read_sso_settings(tomllib.loads(text)).providers == ()

"""Tampered ID tokens are refused (issue 13): a token for another audience, an expired one, one
from another issuer, one signed by a key the IdP does not publish. These are Authlib's checks in
Streamlit's /oauth2callback; the tests prove VLM's configuration (Streamlit 1.67's st.login over
server.py, secrets.toml's [auth]) keeps them on: the tampered sign-in sets no identity cookie,
while the same round trip with the token merely re-signed does (so the refusals come from the
claims, not from the re-signing)."""

from __future__ import annotations

import pytest

from tests.e2e.sso import CREATING, identity_cookie_set, oauth_round_trip

pytestmark = pytest.mark.e2e

REASONS = {
    "audience": "azp",
    "expired": "exp",
    "issuer": "iss",
    "forged": "",
}


@pytest.fixture
def tamper(sso_provider):
    assert sso_provider.tamper is not None
    yield sso_provider.tamper
    sso_provider.tamper.mode = None


def test_an_untampered_round_trip_signs_in(sso_server, sso_provider, tamper):
    sso_provider.set_user("tamper-target", email="t@idp.example", groups=["vlm-analysts"])
    assert identity_cookie_set(oauth_round_trip(sso_server.url, CREATING, "tamper-target"))
    tamper.mode = "resign"
    answer = oauth_round_trip(sso_server.url, CREATING, "tamper-target")
    assert answer.status_code == 302 and identity_cookie_set(answer)


@pytest.mark.parametrize("mode", sorted(REASONS))
def test_a_tampered_id_token_is_refused(sso_server, sso_provider, tamper, mode):
    sso_provider.set_user("tamper-target", email="t@idp.example", groups=["vlm-analysts"])
    log_before = sso_server.log_path.read_text(errors="replace")
    tamper.mode = mode
    answer = oauth_round_trip(sso_server.url, CREATING, "tamper-target")
    assert answer.status_code == 302 and answer.headers["location"].endswith("/")
    assert not identity_cookie_set(answer)
    logged = sso_server.log_path.read_text(errors="replace")[len(log_before) :]
    assert "OAuth token exchange failed" in logged
    if REASONS[mode]:
        assert f"'{REASONS[mode]}'" in logged or f'"{REASONS[mode]}"' in logged, logged[-2000:]


def test_another_audience_named_in_azp_passes_authlib_and_vlm_refuses_it(
    sso_server, sso_provider, tamper
):
    """Authlib (as Streamlit calls it, without claims_options) checks aud only through azp: a
    token for another client whose azp names VLM's client gets the identity cookie. VLM's own
    check (logins.sign_in_oidc) then refuses it: tests/e2e/test_sso.py signs in with one."""
    sso_provider.set_user("tamper-target", email="t@idp.example", groups=["vlm-analysts"])
    tamper.mode = "audience-azp"
    assert identity_cookie_set(oauth_round_trip(sso_server.url, CREATING, "tamper-target"))

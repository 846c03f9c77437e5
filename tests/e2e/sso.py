"""Single sign-on test kit: a mock OpenID provider that can issue tampered ID tokens, the app
server configured for it, and the browser-less OAuth round trip (httpx) the tampering tests use."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs, urljoin, urlparse

import httpx
from joserfc import jwt
from joserfc.jwk import OctKey, RSAKey

from vlm.sso_demo import RunningProvider, sso_secrets_toml, start_mock_provider

COOKIE_SECRET = "e2e-sso-cookie-secret-3f9a7c1d5b2e8f4a6c0d9e1b7a3f5c2d"
# [auth.<name>] sections of the e2e app: the same mock IdP behind two providers
CREATING = "mock"  # creates unknown users with the mapped role
STRICT = "strict"  # refuses unknown users
IDENTITY_COOKIE = "_streamlit_user"
MUTATIONS: dict[str, Callable[[dict[str, Any]], None]] = {
    # re-signed as it was: the control that shows re-signing alone is accepted
    "resign": lambda claims: None,
    "audience": lambda claims: claims.update(aud="some-other-client"),
    # another audience, naming this client as the authorized party (azp)
    "audience-azp": lambda claims: claims.update(aud="some-other-client", azp="vlm-demo"),
    "expired": lambda claims: claims.update(
        iat=int(time.time()) - 7200, exp=int(time.time()) - 3600
    ),
    "issuer": lambda claims: claims.update(iss="http://127.0.0.1:1/not-the-issuer"),
}


class TamperingProvider:
    """WSGI middleware around oidc-provider-mock. With `mode` set, the token endpoint's ID token
    is decoded, changed by MUTATIONS[mode] and signed again with a key of this middleware, whose
    public half /jwks then serves (so the signature checks out and only the claim is wrong);
    mode "forged" signs with a key /jwks does not serve. `mode = None`: the mock as it is."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.mode: str | None = None
        self.key = RSAKey.generate_key(2048, parameters={"kid": "tamper-1"})
        self.other_key = RSAKey.generate_key(2048, parameters={"kid": "tamper-1"})

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if self.mode is None or path not in {"/jwks", "/oauth2/token"}:
            return self.app(environ, start_response)
        if path == "/jwks":
            return self._json(start_response, {"keys": [self.key.as_dict(private=False)]})
        captured: dict[str, Any] = {}

        def keep(status: str, headers: list, exc_info: Any = None) -> Callable:
            captured["status"], captured["headers"] = status, headers
            return lambda data: None

        body = b"".join(self.app(environ, keep))
        if not captured["status"].startswith("200"):
            start_response(captured["status"], captured["headers"])
            return [body]
        token = json.loads(body)
        token["id_token"] = self._tampered(token["id_token"])
        return self._json(start_response, token)

    def _tampered(self, id_token: str) -> str:
        claims = json.loads(_b64decode(id_token.split(".")[1]))
        signer = self.other_key if self.mode == "forged" else self.key
        MUTATIONS.get(self.mode or "", lambda c: None)(claims)
        return jwt.encode({"alg": "RS256", "kid": "tamper-1"}, claims, signer)

    @staticmethod
    def _json(start_response: Callable, value: object) -> list[bytes]:
        data = json.dumps(value).encode()
        start_response(
            "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
        )
        return [data]


def _b64decode(part: str) -> bytes:
    import base64

    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


class SsoProvider:
    """The running mock IdP with its tampering switch and its users' claims."""

    def __init__(self) -> None:
        self.tamper: TamperingProvider | None = None

        def wrap(app: Any) -> TamperingProvider:
            self.tamper = TamperingProvider(app)
            return self.tamper

        self.running: RunningProvider = start_mock_provider(0, identities={}, wrap=wrap)

    @property
    def url(self) -> str:
        return self.running.url

    def set_user(self, sub: str, **claims: Any) -> None:
        """Create or replace an identity's claims (the next ID token carries them)."""
        response = httpx.put(f"{self.url}/users/{sub}", json=claims, timeout=5)
        assert response.status_code == 204, response.text

    def stop(self) -> None:
        self.running.stop()


def sso_secrets(app_url: str, provider_url: str) -> str:
    """Two providers over the one mock IdP: one creates unknown users, one refuses them."""
    groups = {"admin": ["vlm-admins"], "manager": ["vlm-managers"], "analyst": ["vlm-analysts"]}
    creating = sso_secrets_toml(
        app_url, provider_url, cookie_secret=COOKIE_SECRET, provider=CREATING,
        display_name="Demo IdP", auto_create=True, role_groups=groups,
    )  # fmt: skip
    strict = sso_secrets_toml(
        app_url, provider_url, cookie_secret=COOKIE_SECRET, provider=STRICT,
        display_name="Strict IdP", auto_create=False, role_groups=groups,
    )  # fmt: skip
    # the second file's [auth] head and its redirect_uri/cookie_secret lines are dropped
    strict_tables = strict.split(f"[auth.{STRICT}]", 1)[1]
    return f"{creating}\n[auth.{STRICT}]{strict_tables}"


def provider_token(provider: str) -> str:
    """What st.login puts in /auth/login?provider=…: the provider name signed with the cookie
    secret (Streamlit's auth_util.encode_provider_token)."""
    claims = {"provider": provider, "exp": int(time.time()) + 120}
    return jwt.encode({"alg": "HS256"}, claims, OctKey.import_key(COOKIE_SECRET))


def oauth_round_trip(app_url: str, provider: str, sub: str) -> httpx.Response:
    """Sign in through the app's /auth/login, the IdP's authorize form (submitted as sub) and the
    app's /oauth2callback, without a browser; returns the callback's answer."""
    with httpx.Client(timeout=15, follow_redirects=False) as client:
        login = client.get(f"{app_url}/auth/login", params={"provider": provider_token(provider)})
        assert login.status_code in (302, 307), login.text
        authorize = login.headers["location"]
        assert "/oauth2/authorize" in authorize, authorize
        granted = client.post(authorize, data={"sub": sub})
        assert granted.status_code in (302, 303), granted.text
        callback = urljoin(authorize, granted.headers["location"])
        query = parse_qs(urlparse(callback).query)
        assert "code" in query and "state" in query, callback
        return client.get(callback)


def identity_cookie_set(response: httpx.Response) -> bool:
    """Whether the answer stores Streamlit's identity cookie (not just deletes it)."""
    for header in response.headers.get_list("set-cookie"):
        name, _, rest = header.partition("=")
        if (
            name.strip() == IDENTITY_COOKIE
            and not rest.startswith('""')
            and "Max-Age=0" not in (rest)
        ):
            return True
    return False

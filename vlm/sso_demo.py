"""A local OpenID provider for the single sign-on demo and tests: oidc-provider-mock (a
development dependency) on loopback, with a few demo identities, and the secrets.toml that
points VLM at it. `python -m vlm sso-demo` (make run-sso) serves the demo with it.

The mock signs ID tokens with its own RSA key and serves discovery, JWKS, token, userinfo and
end_session endpoints like a real IdP; its sign-in page asks for nothing but a subject (or one
click on a predefined identity). It runs Flask's debugger: keep it on 127.0.0.1, never expose it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

PROVIDER = "mock"
DISPLAY_NAME = "Demo IdP"
# identities offered on the mock's sign-in page: sub -> claims (groups map to VLM roles)
DEMO_IDENTITIES: dict[str, dict[str, Any]] = {
    "sam": {
        "email": "sam@idp.example",
        "email_verified": True,
        "name": "Sam SSO-Admin",
        "preferred_username": "sam",
        "groups": ["vlm-admins"],
    },
    "kim": {
        "email": "kim@idp.example",
        "email_verified": True,
        "name": "Kim SSO-Manager",
        "preferred_username": "kim",
        "groups": ["vlm-managers"],
    },
    "lee": {
        "email": "lee@idp.example",
        "email_verified": True,
        "name": "Lee SSO-Analyst",
        "preferred_username": "lee",
        "groups": ["vlm-analysts"],
    },
    "noah": {
        "email": "noah@idp.example",
        "email_verified": True,
        "name": "Noah (no VLM group)",
        "groups": ["sales"],
    },
}
ROLE_GROUPS = {"admin": ["vlm-admins"], "manager": ["vlm-managers"], "analyst": ["vlm-analysts"]}
Middleware = Callable[[Any], Any]


@dataclass
class RunningProvider:
    """A mock OpenID provider serving on loopback until stop()."""

    url: str
    server: Any = field(repr=False)
    thread: threading.Thread = field(repr=False)

    @property
    def metadata_url(self) -> str:
        return f"{self.url}/.well-known/openid-configuration"

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join(timeout=5)
        self.server.server_close()


def start_mock_provider(
    port: int = 0,
    identities: dict[str, dict[str, Any]] | None = None,
    *,
    wrap: Middleware | None = None,
) -> RunningProvider:
    """Serve oidc-provider-mock on 127.0.0.1:port (0: a free port) in a thread; `wrap` can put
    a WSGI middleware around it (tests use one that issues tampered tokens)."""
    import werkzeug.serving
    from oidc_provider_mock import User, app

    chosen = DEMO_IDENTITIES if identities is None else identities
    flask_app = app(
        user_claims=[User(sub=sub, claims=dict(claims)) for sub, claims in chosen.items()]
    )
    wsgi = wrap(flask_app) if wrap else flask_app
    server = werkzeug.serving.make_server("127.0.0.1", port, wsgi, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1})
    thread.daemon = True
    thread.start()
    return RunningProvider(f"http://127.0.0.1:{server.server_port}", server, thread)


def _toml_list(values: Iterable[str]) -> str:
    return "[" + ", ".join(f'"{v}"' for v in values) + "]"


def sso_secrets_toml(
    app_url: str,
    provider_url: str,
    *,
    cookie_secret: str,
    provider: str = PROVIDER,
    display_name: str = DISPLAY_NAME,
    auto_create: bool = True,
    role_groups: dict[str, list[str]] | None = None,
) -> str:
    """The [auth] and [vlm.sso.<provider>] sections that point VLM at a (mock) provider."""
    groups = ROLE_GROUPS if role_groups is None else role_groups
    lines = [
        "[auth]",
        f'redirect_uri = "{app_url}/oauth2callback"',
        f'cookie_secret = "{cookie_secret}"',
        "",
        f"[auth.{provider}]",
        'client_id = "vlm-demo"',
        'client_secret = "vlm-demo-client-secret"',
        f'server_metadata_url = "{provider_url}/.well-known/openid-configuration"',
        "",
        f"[vlm.sso.{provider}]",
        f'display_name = "{display_name}"',
        f"auto_create = {'true' if auto_create else 'false'}",
        'role_claim = "groups"',
        *(f"{role} = {_toml_list(values)}" for role, values in groups.items()),
        "",
    ]
    return "\n".join(lines)

"""Single sign-on settings read from secrets.toml (no Streamlit here).

Streamlit's native OIDC (st.login) reads the `[auth]` section: `redirect_uri`, `cookie_secret`
and one `[auth.<provider>]` table per identity provider (`client_id`, `client_secret`,
`server_metadata_url`, optional `client_kwargs`), or those keys directly in `[auth]` for a
single provider Streamlit calls "default". VLM's own per-provider settings live apart, in
`[vlm.sso.<provider>]`, so that nothing VLM adds reaches Authlib:

    [vlm.sso.okta]
    display_name = "Okta"          # the button reads "Sign in with Okta"
    auto_create = false            # unknown users are refused (true: created with the mapped role)
    role_claim = "groups"          # the ID-token claim whose values map to VLM roles
    admin = ["vlm-admins"]         # claim values that make an admin
    manager = ["vlm-managers"]
    analyst = ["vlm-analysts"]
    match_email = true             # link a first sign-in to the VLM user with that e-mail
    max_age_hours = 12             # an IdP sign-in older than this must be repeated

`[auth] cookie_key` and the other keys VLM reads from `[auth]` are plain values, which
Streamlit and Authlib ignore (they only take tables that look like a provider's).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

ROLE_NAMES = ("admin", "manager", "analyst")  # highest first: several matches give the highest
PROVIDER_KEYS = frozenset(
    {
        "client_id",
        "client_secret",
        "server_metadata_url",
        "authorize_url",
        "api_base_url",
        "request_token_url",
    }
)
REQUIRED_PROVIDER_KEYS = ("client_id", "client_secret", "server_metadata_url")
VLM_SSO_KEYS = frozenset(
    {"display_name", "auto_create", "role_claim", "match_email", "max_age_hours", *ROLE_NAMES}
)
DEFAULT_ROLE_CLAIM = "groups"
DEFAULT_MAX_AGE_HOURS = 12.0
MAX_CLAIM_VALUES = 200
MAX_CLAIM_VALUE_LENGTH = 256


@dataclass(frozen=True)
class SsoProvider:
    """One identity provider: its `[auth.<name>]` section exists; the rest is VLM's."""

    name: str
    display_name: str
    auto_create: bool = False
    role_claim: str = DEFAULT_ROLE_CLAIM
    # (claim value, role name) pairs
    role_map: tuple[tuple[str, str], ...] = ()
    match_email: bool = True
    max_age_hours: float = DEFAULT_MAX_AGE_HOURS
    # [auth.<name>] client_id: an ID token whose aud does not name it is refused (Authlib lets
    # one through when its azp names this client)
    client_id: str = ""

    def values_for(self, role: str) -> list[str]:
        return [value for value, mapped in self.role_map if mapped == role]


@dataclass(frozen=True)
class SsoSettings:
    """The providers, the Streamlit cookie secret (checked like VLM's keys) and what is wrong."""

    providers: tuple[SsoProvider, ...] = ()
    cookie_secret: str | None = field(default=None, repr=False)
    problems: tuple[str, ...] = ()

    def provider(self, name: str) -> SsoProvider | None:
        return next((p for p in self.providers if p.name == name), None)


def _provider_sections(auth: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """The provider tables of [auth] as Streamlit finds them (plus its "default" provider)."""
    found = {
        str(name): value
        for name, value in auth.items()
        if isinstance(value, Mapping) and PROVIDER_KEYS & set(value)
    }
    if "default" not in found and PROVIDER_KEYS & set(auth):
        found["default"] = auth
    return found


def _as_bool(value: object, where: str, problems: list[str]) -> bool:
    if isinstance(value, bool):
        return value
    problems.append(f"{where} must be true or false, not {value!r}")
    return False


def _values(value: object, where: str, problems: list[str]) -> list[str]:
    """A role's claim values: a list of strings (one string is taken as a one-item list)."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(v, str) and v.strip() for v in items):
        problems.append(f"{where} must be a list of non-empty strings")
        return []
    return [v.strip() for v in items]


def _vlm_provider(
    name: str, options: Mapping[str, Any], problems: list[str], client_id: str = ""
) -> SsoProvider:
    where = f"[vlm.sso.{name}]"
    unknown = sorted(set(options) - VLM_SSO_KEYS)
    if unknown:
        problems.append(f"{where} has unknown keys {unknown} (known: {sorted(VLM_SSO_KEYS)})")
    display = options.get("display_name", name.title() if name != "default" else "SSO")
    if not isinstance(display, str) or not display.strip():
        problems.append(f"{where} display_name must be a non-empty string")
        display = name
    claim = options.get("role_claim", DEFAULT_ROLE_CLAIM)
    if not isinstance(claim, str) or not claim.strip():
        problems.append(f"{where} role_claim must be a non-empty string")
        claim = DEFAULT_ROLE_CLAIM
    hours = options.get("max_age_hours", DEFAULT_MAX_AGE_HOURS)
    if isinstance(hours, bool) or not isinstance(hours, int | float) or hours <= 0:
        problems.append(f"{where} max_age_hours must be a number above 0")
        hours = DEFAULT_MAX_AGE_HOURS
    role_map = tuple(
        (value, role)
        for role in ROLE_NAMES
        if role in options
        for value in _values(options[role], f"{where} {role}", problems)
    )
    return SsoProvider(
        name=name,
        display_name=display.strip(),
        auto_create=_as_bool(options.get("auto_create", False), f"{where} auto_create", problems),
        role_claim=claim.strip(),
        role_map=role_map,
        match_email=_as_bool(options.get("match_email", True), f"{where} match_email", problems),
        max_age_hours=float(hours),
        client_id=client_id,
    )


def read_sso_settings(secrets: Mapping[str, Any]) -> SsoSettings:
    """The SSO settings of a secrets mapping (no providers: single sign-on is off)."""
    auth = secrets.get("auth") or {}
    vlm = secrets.get("vlm") or {}
    vlm_sso = vlm.get("sso") if isinstance(vlm, Mapping) else None
    vlm_sso = vlm_sso if isinstance(vlm_sso, Mapping) else {}
    sections = _provider_sections(auth) if isinstance(auth, Mapping) else {}
    problems: list[str] = []
    for name in sorted(set(vlm_sso) - set(sections)):
        problems.append(f"[vlm.sso.{name}] names no provider: there is no [auth.{name}] section")
    if not sections:
        return SsoSettings(problems=tuple(problems))
    redirect = auth.get("redirect_uri")
    if not isinstance(redirect, str) or not redirect.strip():
        problems.append(
            "[auth] redirect_uri is missing: single sign-on needs this app's "
            "https://<host>/oauth2callback address"
        )
    elif not redirect.rstrip("/").endswith("/oauth2callback"):
        problems.append("[auth] redirect_uri must end with /oauth2callback")
    secret = auth.get("cookie_secret")
    if not isinstance(secret, str) or not secret.strip():
        problems.append("[auth] cookie_secret is missing (it signs Streamlit's identity cookie)")
        secret = None
    providers = []
    for name, section in sorted(sections.items()):
        if "_" in name:
            problems.append(f"[auth.{name}]: a provider name must not contain '_'")
        missing = [key for key in REQUIRED_PROVIDER_KEYS if not section.get(key)]
        if missing:
            problems.append(f"[auth.{name}] is missing {', '.join(missing)}")
        options = vlm_sso.get(name) or {}
        if not isinstance(options, Mapping):
            problems.append(f"[vlm.sso.{name}] must be a table")
            options = {}
        client_id = section.get("client_id")
        providers.append(
            _vlm_provider(name, options, problems, client_id if isinstance(client_id, str) else "")
        )
    return SsoSettings(tuple(providers), secret, tuple(problems))


def claim_values(claims: Mapping[str, Any], claim: str) -> list[str]:
    """The values of a claim as strings: a list claim as it is, a string as one value."""
    value = claims.get(claim)
    if isinstance(value, str):
        items: Iterable[object] = [value]
    elif isinstance(value, list | tuple):
        items = value[:MAX_CLAIM_VALUES]
    else:
        return []
    return [str(v)[:MAX_CLAIM_VALUE_LENGTH] for v in items if isinstance(v, str | int)]


def audiences(claims: Mapping[str, Any]) -> list[str]:
    """The aud claim as a list (one string or a list of them)."""
    aud = claims.get("aud")
    if isinstance(aud, str):
        return [aud]
    return [a for a in aud if isinstance(a, str)] if isinstance(aud, list) else []


def mapped_role(
    claims: Mapping[str, Any], role_claim: str, role_map: Iterable[tuple[str, str]]
) -> str | None:
    """The highest role whose mapped claim values the claims hold, or None."""
    held = set(claim_values(claims, role_claim))
    granted = {role for value, role in role_map if value in held}
    return next((role for role in ROLE_NAMES if role in granted), None)

"""Runtime settings from environment variables and secrets.toml, and the checks that refuse to
start with unsafe ones (placeholder or weak keys, an invalid Fernet key, a prefix that owns all)."""

from __future__ import annotations

import base64
import binascii
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any

from vlm.dburl import is_postgres_url
from vlm.sso_config import SsoSettings, read_sso_settings

DEMO_COOKIE_KEY = "vlm-demo-cookie-key-not-for-production-use-0001"
DEMO_SECRET_KEY = "dmxtLWRlbW8tZmVybmV0LWtleS1ub3QtZm9yLXByb2Q="
EXAMPLE_SECRETS = Path(__file__).resolve().parent.parent / ".streamlit" / "secrets.toml.example"
SECRETS_FILE = Path(".streamlit") / "secrets.toml"

MIN_COOKIE_KEY_BYTES = 32
MIN_DISTINCT_CHARACTERS = 10
MIN_GROUP_PREFIX_LENGTH = 3
DEFAULT_IN_FLIGHT = 8
MAX_IN_FLIGHT = 64
DEFAULT_BATCH_HOSTS = 250  # new hosts one batch group holds at most (vlm.sync.batch)
MAX_BATCH_HOSTS = 1000
GROUP_PREFIX_SEPARATORS = "-_."
PLACEHOLDER_MARKERS = (
    "<",
    ">",
    "change-me",
    "changeme",
    "change_me",
    "example",
    "placeholder",
    "replace",
)

COOKIE_KEY_SETTING = "the cookie key (VLM_COOKIE_KEY or [auth] cookie_key in secrets.toml)"
SSO_SECRET_SETTING = "the single sign-on cookie secret ([auth] cookie_secret in secrets.toml)"
SECRET_KEY_SETTING = "the Fernet key (VLM_SECRET_KEY or [vlm] secret_key in secrets.toml)"
GROUP_PREFIX_SETTING = "the group prefix (VLM_GROUP_PREFIX or [vlm] group_prefix in secrets.toml)"
INIT_HINT = "python -m vlm init writes fresh keys"
DB_PATH_SETTING = "the database path (VLM_DB_PATH or [vlm] db_path in secrets.toml)"
DB_URL_SETTING = "the database URL (VLM_DB_URL or [vlm] db_url in secrets.toml)"

# secrets.toml section -> key -> Settings field
SECRET_FIELDS: dict[str, dict[str, str]] = {
    "auth": {
        "cookie_key": "cookie_key",
        "cookie_name": "cookie_name",
        "cookie_expiry_days": "cookie_expiry_days",
        "max_login_attempts": "max_login_attempts",
    },
    "vlm": {
        "secret_key": "secret_key",
        "db_path": "db_path",
        "db_url": "db_url",
        "demo": "demo",
        "group_prefix": "group_prefix",
        "sync_interval_seconds": "sync_interval_seconds",
        "sync_in_flight": "sync_in_flight",
        "sync_batch_hosts": "sync_batch_hosts",
        "db_memory_limit": "db_memory_limit",
    },
}
NUMBER_FIELDS: dict[str, type] = {
    "sync_interval_seconds": float,
    "sync_in_flight": int,
    "sync_batch_hosts": int,
    "cookie_expiry_days": float,
    "max_login_attempts": int,
}


class ConfigError(ValueError):
    """A setting cannot be read at all (not a number, a broken secrets.toml)."""


def _as_bool(value: object) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes", "on"}
    return bool(value)


def _as_number(name: str, value: object, kind: type) -> float | int:
    if isinstance(value, bool):
        raise ConfigError(f"{name} must be a number, not {value!r}")
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number, not {value!r}") from None


def _env_values() -> dict[str, object]:
    """The VLM_* environment variables that are set, by Settings field."""
    names = {
        "db_path": "VLM_DB_PATH",
        "db_url": "VLM_DB_URL",
        "demo": "VLM_DEMO",
        "group_prefix": "VLM_GROUP_PREFIX",
        "sync_interval_seconds": "VLM_SYNC_INTERVAL",
        "sync_in_flight": "VLM_SYNC_IN_FLIGHT",
        "sync_batch_hosts": "VLM_SYNC_BATCH_HOSTS",
        "db_memory_limit": "VLM_DB_MEMORY_LIMIT",
        "cookie_key": "VLM_COOKIE_KEY",
        "secret_key": "VLM_SECRET_KEY",
        "max_login_attempts": "VLM_MAX_LOGIN_ATTEMPTS",
    }
    return {name: os.environ[env] for name, env in names.items() if env in os.environ}


def secrets_overrides(secrets: Mapping[str, Any]) -> dict[str, object]:
    """Settings given in a secrets mapping ([auth] and [vlm]); empty values are kept, so that an
    empty value in secrets.toml is judged like an empty environment variable."""
    overrides: dict[str, object] = {}
    for section, fields in SECRET_FIELDS.items():
        values = secrets.get(section) or {}
        for key, name in fields.items():
            if key in values and values[key] is not None:
                overrides[name] = values[key]
    sso = read_sso_settings(secrets)
    if sso.providers or sso.problems:
        overrides["sso"] = sso
    return overrides


def read_secrets_file(path: Path = SECRETS_FILE) -> dict[str, object]:
    """Settings from a secrets.toml file (none when the file does not exist)."""
    if not path.is_file():
        return {}
    try:
        with path.open("rb") as handle:
            return secrets_overrides(tomllib.load(handle))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path} cannot be read: {exc}") from None


@cache
def example_values() -> frozenset[str]:
    """The key values of .streamlit/secrets.toml.example (placeholders, never real keys)."""
    try:
        overrides = read_secrets_file(EXAMPLE_SECRETS)
    except ConfigError:
        return frozenset()
    return frozenset(str(overrides[k]) for k in ("cookie_key", "secret_key") if k in overrides)


def _smallest_period(text: str) -> int:
    """Length of the shortest block whose repetition makes up text."""
    for period in range(1, len(text) // 2 + 1):
        if all(text[i] == text[i % period] for i in range(len(text))):
            return period
    return len(text)


def low_variety(text: str) -> bool:
    """Too few distinct characters, or one block repeated (not what a random key looks like)."""
    return len(set(text)) < MIN_DISTINCT_CHARACTERS or _smallest_period(text) <= len(text) // 2


def is_placeholder(value: str) -> bool:
    """A demo key, a value of the example file, or text that marks a value to be replaced."""
    lowered = value.lower()
    if value in {DEMO_COOKIE_KEY, DEMO_SECRET_KEY} or value in example_values():
        return True
    return any(marker in lowered for marker in PLACEHOLDER_MARKERS)


def fernet_key_bytes(key: str) -> bytes | None:
    """The 32 bytes of a Fernet key (url-safe base64), or None when key is not one."""
    try:
        raw = base64.b64decode(key.encode("ascii"), altchars=b"-_", validate=True)
    except (UnicodeEncodeError, binascii.Error, ValueError):
        return None
    return raw if len(raw) == 32 else None


def cookie_key_problem(key: object, *, demo: bool = False) -> str | None:
    """Why key cannot sign login cookies, or None."""
    if key is None or (isinstance(key, str) and not key.strip()):
        return f"{COOKIE_KEY_SETTING} is missing ({INIT_HINT})"
    if not isinstance(key, str):
        return f"{COOKIE_KEY_SETTING} must be text"
    if demo:
        return None
    if is_placeholder(key):
        return f"{COOKIE_KEY_SETTING} is a placeholder or demo value, not a secret"
    if len(key.encode()) < MIN_COOKIE_KEY_BYTES:
        return f"{COOKIE_KEY_SETTING} is shorter than {MIN_COOKIE_KEY_BYTES} bytes"
    if low_variety(key):
        return f"{COOKIE_KEY_SETTING} is not random (too few distinct characters or a pattern)"
    return None


def secret_key_problem(key: object, *, demo: bool = False) -> str | None:
    """Why key cannot encrypt license-server passwords, or None."""
    if key is None or (isinstance(key, str) and not key.strip()):
        return f"{SECRET_KEY_SETTING} is missing ({INIT_HINT})"
    raw = fernet_key_bytes(key) if isinstance(key, str) else None
    if raw is None:
        return (
            f"{SECRET_KEY_SETTING} is not a valid Fernet key: 32 url-safe base64-encoded bytes "
            f"({INIT_HINT})"
        )
    if demo:
        return None
    if is_placeholder(key):
        return f"{SECRET_KEY_SETTING} is a placeholder or demo value, not a secret"
    if low_variety(key.rstrip("=")) or (raw.isascii() and raw.decode().isprintable()):
        return (
            f"{SECRET_KEY_SETTING} is not random (readable text, few distinct bytes or a pattern)"
        )
    return None


def group_prefix_problem(prefix: object) -> str | None:
    """Why prefix cannot tell VLM's reservation groups from everyone else's, or None."""
    separators = ", ".join(f"'{s}'" for s in GROUP_PREFIX_SEPARATORS)
    if not isinstance(prefix, str) or not prefix.strip():
        return f"{GROUP_PREFIX_SETTING} is empty: VLM would own every reservation group"
    if any(c.isspace() for c in prefix):
        return f"{GROUP_PREFIX_SETTING} must not contain spaces"
    if len(prefix) < MIN_GROUP_PREFIX_LENGTH:
        return f"{GROUP_PREFIX_SETTING} must be at least {MIN_GROUP_PREFIX_LENGTH} characters long"
    if prefix[-1] not in GROUP_PREFIX_SEPARATORS:
        return f"{GROUP_PREFIX_SETTING} must end with a separator ({separators}), e.g. 'vlm-'"
    return None


@dataclass(frozen=True)
class Settings:
    """Everything VLM needs to know about its installation (repr never shows the keys)."""

    db_path: str = "data/vlm.duckdb"
    db_url: str | None = field(default=None, repr=False)
    demo: bool = False
    group_prefix: str = "vlm-"
    sync_interval_seconds: float = 60.0
    sync_in_flight: int = DEFAULT_IN_FLIGHT
    sync_batch_hosts: int = DEFAULT_BATCH_HOSTS
    db_memory_limit: str = "512MB"
    cookie_key: str | None = field(default=None, repr=False)
    cookie_name: str = "vlm_auth"
    cookie_expiry_days: float = 1.0
    secret_key: str | None = field(default=None, repr=False)
    max_login_attempts: int = 5
    demo_dir: Path = field(default_factory=lambda: Path("data/demo"))
    # single sign-on (vlm/sso_config.py): no providers, no "Sign in with …"
    sso: SsoSettings = field(default_factory=SsoSettings)

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        """Build settings from VLM_* environment variables, then apply overrides (secrets.toml);
        raises ConfigError for a number that is not one."""
        values: dict[str, object] = {**_env_values(), **overrides}
        values["demo"] = _as_bool(values.get("demo", False))
        for name, kind in NUMBER_FIELDS.items():
            if name in values:
                values[name] = _as_number(name, values[name], kind)
        settings = cls(**values)  # type: ignore[arg-type]
        if settings.demo:
            settings = replace(
                settings,
                cookie_key=settings.cookie_key or DEMO_COOKIE_KEY,
                secret_key=settings.secret_key or DEMO_SECRET_KEY,
            )
        return settings

    @property
    def database(self) -> str:
        """What to open: the PostgreSQL URL when one is set, else the DuckDB file."""
        return self.db_url.strip() if self.db_url and self.db_url.strip() else self.db_path

    def problems(self, *, needs_cookie_key: bool = True) -> list[str]:
        """Reasons VLM must refuse to start (the command line needs no cookie key)."""
        found = [
            group_prefix_problem(self.group_prefix),
            secret_key_problem(self.secret_key, demo=self.demo),
            cookie_key_problem(self.cookie_key, demo=self.demo) if needs_cookie_key else None,
        ]
        if not str(self.db_path or "").strip():
            found.append(f"{DB_PATH_SETTING} is empty")
        if self.db_url and self.db_url.strip() and not is_postgres_url(self.db_url):
            found.append(f"{DB_URL_SETTING} must start with postgresql://")
        if not 1 <= self.sync_in_flight <= MAX_IN_FLIGHT:
            found.append(
                f"sync_in_flight (VLM_SYNC_IN_FLIGHT) must be between 1 and {MAX_IN_FLIGHT}"
            )
        if not 0 <= self.sync_batch_hosts <= MAX_BATCH_HOSTS:
            found.append(
                f"sync_batch_hosts (VLM_SYNC_BATCH_HOSTS) must be between 0 and {MAX_BATCH_HOSTS}"
            )
        if self.max_login_attempts < 1:
            found.append("max_login_attempts (VLM_MAX_LOGIN_ATTEMPTS) must be at least 1")
        if needs_cookie_key:  # the app's sign-in (the command line signs nobody in)
            found.extend(self.sso.problems)
        if needs_cookie_key and self.sso.cookie_secret:
            problem = cookie_key_problem(self.sso.cookie_secret, demo=self.demo)
            if problem:
                found.append(problem.replace(COOKIE_KEY_SETTING, SSO_SECRET_SETTING))
        return [problem for problem in found if problem]

"""Database targets: a DuckDB file path or a PostgreSQL URL, and how a URL may be shown."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

POSTGRES_SCHEMES = ("postgresql", "postgres")


def is_postgres_url(target: str) -> bool:
    """True for postgresql://… and postgres://… targets."""
    return urlsplit(str(target)).scheme.lower() in POSTGRES_SCHEMES


def redact_url(target: str) -> str:
    """The target as it may be logged or shown: a URL's password replaced by ***."""
    parts = urlsplit(str(target))
    if parts.password is None:
        return str(target)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))

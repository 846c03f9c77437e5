"""Exceptions raised by the FlexNet License Server client."""

from __future__ import annotations

from vlm.domain import redact_userinfo


class FlexNetError(Exception):
    """Base class for every error the FlexNet client raises."""

    def __init__(self, message: str, status: int | None = None) -> None:
        message = redact_userinfo(message)  # errors are stored and shown: never a URL password
        super().__init__(message if status is None else f"{message} (HTTP {status})")
        self.message = message
        self.status = status


class AuthenticationError(FlexNetError):
    """Bad credentials, a 401 that survived a fresh login, or a 403 (role missing)."""


class NotFoundError(FlexNetError):
    """The server answered 404."""


class RefusedError(FlexNetError):
    """The server refused a request (4xx other than 401/403/404); `message` is the server's text."""


class TransientError(FlexNetError):
    """Unreachable server, timeout, dropped connection, 5xx or 429: safe to retry later."""

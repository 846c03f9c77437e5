"""Plain-language text for what went wrong: license-server errors, pool quantities, access.

Nothing here talks to Streamlit: the functions turn errors and figures into sentences a user
can act on, and keep the technical text apart (shown to admins only, in an expander).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from vlm.domain import redact_userinfo

_KIND = re.compile(r"^\s*([A-Z][A-Za-z]*(?:Error|Exception))\s*:\s*(.*)$", re.DOTALL)
_STATUS = re.compile(r"\(HTTP (\d{3})\)\s*$")
_TRANSPORT = re.compile(r"\b(?:GET|POST|PUT|PATCH|DELETE|HEAD) (\S+) failed: (.*)$", re.DOTALL)
_CA_BUNDLE = re.compile(r"cannot load CA certificates from (.+?):")
_NOT_ATTEMPTED = "not attempted, the server keeps failing: "
_SYNC_PART = re.compile(r"^(inventory|reservations): ")

# what a failed connection's detail means, first match wins (the detail is lower-cased)
_TRANSPORT_REASONS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("refused", "errno 111]"), "connection refused"),
    (("timed out", "timeout", "errno 110]"), "no answer within the time limit"),
    (
        (
            "name or service not known",
            "nodename nor servname",
            "getaddrinfo",
            "name resolution",
            "errno -2]",
            "errno -3]",
            "errno -5]",
        ),
        "the host name is unknown",
    ),
    (
        ("certificate verify failed", "certificate_verify_failed"),
        "its TLS certificate is not trusted",
    ),
    (("ssl", "tls"), "the TLS handshake failed"),
    (("unreachable", "no route to host"), "the network cannot reach it"),
    (
        ("disconnected", "remoteprotocolerror", "connection reset", "closed"),
        "the connection was closed before an answer came",
    ),
)


@dataclass(frozen=True)
class Explained:
    """A sentence for the user and, when it differs, the technical text behind it."""

    text: str
    detail: str | None = None


@dataclass(frozen=True)
class _Error:
    kind: str | None
    message: str
    status: int | None


def _parse(error: BaseException | str) -> _Error:
    """The error's class name, message and HTTP status, from an exception or its text."""
    if isinstance(error, BaseException):
        message = str(getattr(error, "message", None) or error)
        status = getattr(error, "status", None)
        return _Error(type(error).__name__, redact_userinfo(message), status)
    text = redact_userinfo(str(error)).strip()
    match = _KIND.match(text)
    kind, message = (match.group(1), match.group(2)) if match else (None, text)
    status_match = _STATUS.search(message)
    status = int(status_match.group(1)) if status_match else None
    if status_match:
        message = message[: status_match.start()].rstrip()
    return _Error(kind, message, status)


def _origin(url: str) -> str:
    """scheme://host[:port] of a URL (no path), or the text as given if it is no URL."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else url


def _transport_reason(detail: str) -> str:
    lowered = detail.lower()
    for needles, reason in _TRANSPORT_REASONS:
        if any(needle in lowered for needle in needles):
            return reason
    return "the connection failed"


def _server(server: str | None) -> str:
    return f"the license server {server}" if server else "the license server"


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def _explain_text(error: _Error, server: str | None, base_url: str | None) -> str:
    """The plain sentence for one parsed error."""
    who = _server(server)
    message, kind, status = error.message, error.kind or "", error.status
    if message.startswith(_NOT_ATTEMPTED):
        reason = _parse(message[len(_NOT_ATTEMPTED) :])
        reason = replace(reason, status=reason.status or status)
        inner = _explain_text(reason, server, base_url)
        return f"Not tried now, because {who} keeps failing: {inner[:1].lower()}{inner[1:]}"
    transport = _TRANSPORT.search(message)
    if transport:
        where = base_url or _origin(transport.group(1))
        name = server or "the license server"
        return f"Could not reach {name} at {where}: {_transport_reason(transport.group(2))}"
    ca_bundle = _CA_BUNDLE.search(message)
    if ca_bundle:
        return f"The CA bundle {ca_bundle.group(1)} could not be read; check the path"
    lowered = message.lower()
    if "cannot be decrypted" in lowered:
        return (
            f"The stored password of {who} cannot be decrypted with this installation's key; "
            "enter the password again"
        )
    if "no secret key configured" in lowered:
        return "No secret key is configured (VLM_SECRET_KEY), so stored passwords cannot be used"
    if "carries no token" in lowered:
        return (
            f"{_sentence(who)} answered the sign-in without a token; check that the base URL "
            "points to a FlexNet license server"
        )
    if status == 403:
        return f"{_sentence(who)} refused access: the user lacks a role VLM needs"
    if kind == "NotFoundError" or status in (404, 410):
        said = f" ({message})" if message and message.lower() != "not found" else ""
        return f"{_sentence(who)} has no such address{said}; check the base URL and the instance"
    if kind == "AuthenticationError" or status == 401:
        return f"{_sentence(who)} refused the user name or password"
    if status == 429:
        return f"{_sentence(who)} is busy (too many requests); VLM tries again later"
    if status is not None and status >= 500:
        return f"{_sentence(who)} had an internal error (HTTP {status}); VLM tries again later"
    if "json" in lowered or "expected a" in lowered:
        return (
            f"{_sentence(who)} gave an answer VLM cannot read; check that the base URL points "
            "to a FlexNet license server"
        )
    if kind == "RefusedError" or (status is not None and 400 <= status < 500):
        return f"{_sentence(who)} refused the request: {message}"
    if not kind:
        return _sentence(message)
    return f"{_sentence(who)} reported a problem: {message}"


def explain_server_error(
    error: BaseException | str, *, server: str | None = None, base_url: str | None = None
) -> Explained:
    """A license-server error (exception or stored text) in plain words, with its detail.

    A sync result joins several parts ("inventory: …; reservations: …"): each part is
    explained on its own and a part said already is not repeated.
    """
    if isinstance(error, BaseException):
        raw = redact_userinfo(f"{type(error).__name__}: {error}")
        parsed = [_parse(error)]
    else:
        raw = redact_userinfo(str(error)).strip()
        parsed = [_parse(part) for part in _parts(raw)]
    sentences: list[str] = []
    for part in parsed:
        sentence = _explain_text(part, server, base_url).rstrip(". ")
        if sentence not in sentences:
            sentences.append(sentence)
    return Explained(". ".join(sentences) + ".", raw)


def _parts(text: str) -> list[str]:
    """The parts of a sync result's error text, without their "inventory: " labels."""
    pieces = re.split(r"; (?=(?:inventory|reservations): |\d+ allocation)", text)
    parts = [_SYNC_PART.sub("", part.strip()) for part in pieces]
    return [p for p in parts if p] or [text]


def no_access(title: str) -> str:
    """What a user sees after opening a page their role may not see."""
    return f"You don't have access to {title}."


# -- pool quantities ---------------------------------------------------------------------------


@dataclass(frozen=True)
class FeatureBounds:
    """What one feature of a pool may be set to: allocated (least) to available (most)."""

    minimum: int
    maximum: int


def quantity_problem(
    feature: str, requested: int, now: FeatureBounds, shown: FeatureBounds | None = None
) -> str | None:
    """Why a requested pool quantity cannot be had, in words; None when it can.

    `shown` is what the form showed when it was drawn: when the figure moved since, the
    message says so and gives the new figure.
    """
    if requested < 0:
        return f"{feature}: the quantity cannot be negative"
    if requested > now.maximum:
        over = requested - now.maximum
        text = f"{feature}: {requested} requested, {now.maximum} available — {over} over"
        if shown is not None and shown.maximum != now.maximum:
            text += (
                f". Availability changed while you were editing: {now.maximum} available now "
                f"(was {shown.maximum})"
            )
        return text
    if requested < now.minimum:
        text = (
            f"{feature}: {requested} requested, but {now.minimum} are allocated — "
            f"at least {now.minimum}"
        )
        if shown is not None and shown.minimum != now.minimum:
            text += (
                f". Allocations changed while you were editing: {now.minimum} allocated now "
                f"(was {shown.minimum})"
            )
        return text
    return None


def quantity_problems(
    requested: Mapping[tuple[str, str], int],
    now: Mapping[tuple[str, str], FeatureBounds],
    shown: Mapping[tuple[str, str], FeatureBounds] | None = None,
) -> dict[tuple[str, str], str]:
    """The problem of every requested feature quantity that cannot be had, by feature."""
    problems: dict[tuple[str, str], str] = {}
    for key, quantity in requested.items():
        bounds = now.get(key)
        label = f"{key[0]} {key[1]}"
        if bounds is None:
            if quantity > 0:
                problems[key] = f"{label}: no longer part of this VLM"
            continue
        problem = quantity_problem(label, quantity, bounds, (shown or {}).get(key))
        if problem:
            problems[key] = problem
    return problems

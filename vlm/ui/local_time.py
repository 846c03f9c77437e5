"""Times as the user reads them: stored times are the server's local wall clock (naive), shown
in the browser's zone (st.context.timezone) or, when the browser did not say, the server's."""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, time, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd
import streamlit as st

ZONEINFO_DIR = "zoneinfo/"
LOCALTIME = "/etc/localtime"
UTC_NAMES = {"UTC", "Etc/UTC", "Etc/Universal", "Universal", "Zulu", "Etc/Zulu", "GMT", "Etc/GMT"}
_fixed = threading.local()


def _zone(name: str | None) -> ZoneInfo | None:
    if not name:
        return None
    try:
        return ZoneInfo(name.removeprefix(":"))
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _system_zone_name() -> str | None:
    """The IANA name of the machine's zone: TZ, else where /etc/localtime points."""
    if os.environ.get("TZ"):
        return os.environ["TZ"]
    return _linked_zone_name(_link_stamp(LOCALTIME))


def _link_stamp(path: str) -> tuple[str, float] | None:
    """What the link points at and when it last changed (one lstat and one readlink)."""
    try:
        return os.readlink(path), os.lstat(path).st_mtime
    except OSError:
        return None


@functools.lru_cache(maxsize=8)
def _linked_zone_name(stamp: tuple[str, float] | None) -> str | None:
    """The zone name /etc/localtime resolves to, resolved once per state of the link (every
    table's time columns ask, on every rerun)."""
    target = str(Path(LOCALTIME).resolve())
    return target.split(ZONEINFO_DIR, 1)[1] if ZONEINFO_DIR in target else None


def server_zone() -> tzinfo:
    """The zone the server stores its (naive) timestamps in."""
    return _zone(_system_zone_name()) or datetime.now().astimezone().tzinfo or ZoneInfo("UTC")


def user_zone() -> tzinfo:
    """The browser's zone when it told us, else the server's (or the zone fixed on this thread
    by in_zone, where there is no script run to ask: a download built when clicked)."""
    fixed = getattr(_fixed, "zone", None)
    if fixed is not None:
        return fixed
    return _zone(st.context.timezone) or server_zone()


@contextmanager
def in_zone(zone: tzinfo) -> Iterator[None]:
    """user_zone() is zone on this thread inside the block."""
    before = getattr(_fixed, "zone", None)
    _fixed.zone = zone
    try:
        yield
    finally:
        _fixed.zone = before


def zone_label(zone: tzinfo) -> str:
    """'UTC', 'Europe/Berlin' or, for a zone without a name, 'UTC+01:00'."""
    name = getattr(zone, "key", None)
    if name in UTC_NAMES:
        return "UTC"
    if name:
        return str(name)
    offset = datetime.now(zone).utcoffset()
    minutes = int(offset.total_seconds() // 60) if offset is not None else 0
    if minutes == 0:
        return "UTC"
    sign, minutes = ("+" if minutes > 0 else "-"), abs(minutes)
    return f"UTC{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def with_zone(title: str) -> str:
    """A column title naming the zone its times are shown in: 'Created (Europe/Berlin)'."""
    suffix = f" ({zone_label(user_zone())})"
    return title if title.endswith(suffix) else title + suffix


def to_user_time(values: pd.Series) -> pd.Series:
    """Stored (server-local, naive) times as the user's wall clock, still naive."""
    stored = pd.to_datetime(values)
    if stored.dt.tz is None:
        stored = stored.dt.tz_localize(server_zone(), ambiguous="NaT", nonexistent="NaT")
    return stored.dt.tz_convert(user_zone()).dt.tz_localize(None)


def user_time(value: object) -> datetime | None:
    """One stored time as the user's wall clock (None for a missing one)."""
    if value is None or pd.isna(value):
        return None
    return to_user_time(pd.Series([pd.Timestamp(value)])).iloc[0].to_pydatetime()


def format_user_time(value: object, pattern: str = "%Y-%m-%d %H:%M:%S") -> str:
    """'2026-12-01 12:47:28 Europe/Berlin', or '' for a missing time."""
    shown = user_time(value)
    return "" if shown is None else f"{shown:{pattern}} {zone_label(user_zone())}"


def now_for_user() -> datetime:
    return datetime.now(user_zone())


def day_bounds_to_server(start: date, end: date) -> tuple[datetime, datetime]:
    """A day range the user picked (their days) as server-local naive bounds."""
    zone, stored = user_zone(), server_zone()
    since = datetime.combine(start, time.min, tzinfo=zone).astimezone(stored)
    until = datetime.combine(end, time.max, tzinfo=zone).astimezone(stored)
    return since.replace(tzinfo=None), until.replace(tzinfo=None)


def is_timestamp_column(values: pd.Series) -> bool:
    return pd.api.types.is_datetime64_any_dtype(values)

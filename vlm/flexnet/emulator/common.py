"""Vocabulary shared by the emulator modules: the error type, key aliases and time."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable

from vlm.domain import FeatureKey as FeatureKey  # re-exported for the emulator modules

HostKey = tuple[str, str]


class EmulatorError(Exception):
    """A request the emulator refuses; `status` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class TimeSource:
    """The emulator's clock (epoch seconds) and calendar day; tests may replace either."""

    def __init__(self) -> None:
        self.clock: Callable[[], float] = time.time
        self.today_override: dt.date | None = None

    def now(self) -> float:
        return self.clock()

    def today(self) -> dt.date:
        return self.today_override or dt.date.today()


def parse_date(value: str | None) -> dt.date | None:
    """The YYYY-MM-DD prefix of `value` as a date; None when absent or unparsable."""
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value.strip()[:10])
    except ValueError:
        return None


def iso_utc(moment: float) -> str:
    """Epoch seconds as `2023-12-19T05:39:28.850Z`."""
    stamp = dt.datetime.fromtimestamp(moment, tz=dt.UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"

"""DATE, TIMESTAMP and INTERVAL values: conversions, epoch milliseconds, interval text.

A TIMESTAMP is a naive ``datetime`` in UTC (a zone is converted away); ``_timestamp`` and
``_event_time`` are TIMESTAMP(3) read from whatever form the record carried
(:func:`event_timestamp`). Windows and watermarks keep epoch milliseconds inside.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from decimal import Decimal
from typing import Any

from sql.errors import E_CAST, CastError
from sql.errors import short as _short


def to_date(value: Any) -> dt.date | None:
    if value is None or (isinstance(value, dt.date) and not isinstance(value, dt.datetime)):
        return value
    if isinstance(value, dt.datetime):
        return value.date()
    try:
        return dt.date.fromisoformat(str(value).strip()[:10])
    except ValueError as exc:
        raise CastError(E_CAST.format(value=_short(value), type="DATE")) from exc


#: TIMESTAMP values are naive ``datetime``s in UTC; epoch milliseconds count from here.
EPOCH = dt.datetime(1970, 1, 1)
_MS = dt.timedelta(milliseconds=1)
_EPOCH_UTC = EPOCH.replace(tzinfo=dt.UTC)


def millis_to_timestamp(ms: int) -> dt.datetime:
    """Epoch milliseconds as a TIMESTAMP (exact: no float on the way)."""
    try:
        return EPOCH + dt.timedelta(milliseconds=ms)
    except OverflowError as exc:
        raise CastError(E_CAST.format(value=ms, type="TIMESTAMP")) from exc


def timestamp_to_millis(t: dt.date) -> int:
    """Epoch milliseconds of a TIMESTAMP (naive = UTC) or a DATE (its midnight), rounded down."""
    if not isinstance(t, dt.datetime):
        t = dt.datetime(t.year, t.month, t.day)
    elif t.tzinfo is not None:
        t = t.astimezone(dt.UTC).replace(tzinfo=None)
    return (t - EPOCH) // _MS


def to_timestamp(value: Any) -> dt.datetime | None:
    """A TIMESTAMP (naive, UTC): a datetime (one with a zone is moved to UTC), a DATE's midnight,
    epoch milliseconds (an integer, as Kafka record timestamps), ISO-8601 text."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            return value
        return value.astimezone(dt.UTC).replace(tzinfo=None)
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day)
    if isinstance(value, int) and not isinstance(value, bool):
        return millis_to_timestamp(value)
    try:
        return to_timestamp(dt.datetime.fromisoformat(str(value).strip()))
    except ValueError as exc:
        raise CastError(E_CAST.format(value=_short(value), type="TIMESTAMP")) from exc


def event_timestamp(value: Any) -> dt.datetime | None:
    """``_timestamp`` / ``_event_time`` as TIMESTAMP(3): the record timestamp or the declared
    event-time field, whatever form it came in — a number (epoch milliseconds, also as text),
    a timestamp, a date, ISO-8601 text (no zone = UTC), as the windows read it."""
    t = type(value)
    if t is int:
        return EPOCH + dt.timedelta(milliseconds=value)
    if value is None:
        return None
    if t is float or t is Decimal:
        if not value.is_finite() if t is Decimal else not math.isfinite(value):
            raise CastError(E_CAST.format(value=value, type="TIMESTAMP"))
        return millis_to_timestamp(int(value))
    if t is str and value.strip().lstrip("-").isdigit():
        return millis_to_timestamp(int(value))
    return to_timestamp(value)


def to_millis(v: Any) -> int | None:
    """Epoch milliseconds of an event-time value: a number (ms), a timestamp, a date, ISO text;
    None when it is none of these (the windows' and AS OF's reading: the caller names the source
    in its error). :func:`event_timestamp` shows such a value as TIMESTAMP(3)."""
    t = type(v)
    if t is int:
        return v  # type: ignore[no-any-return]
    if t is float and math.isfinite(v):
        return int(v)
    if t is Decimal and v.is_finite():
        return int(v)
    if isinstance(v, str):
        s = v.strip()
        if s.lstrip("-").isdigit():
            return int(s)
        try:
            v = dt.datetime.fromisoformat(s)
        except ValueError:
            return None
        t = dt.datetime
    if t is dt.datetime:
        aware = v if v.tzinfo is not None else v.replace(tzinfo=dt.UTC)
        return (aware - _EPOCH_UTC) // _MS  # type: ignore[no-any-return]
    if t is dt.date:
        return (dt.datetime(v.year, v.month, v.day, tzinfo=dt.UTC) - _EPOCH_UTC) // _MS
    return None


_INTERVAL_UNITS = {
    "microsecond": 1e-6,
    "us": 1e-6,
    "millisecond": 1e-3,
    "ms": 1e-3,
    "second": 1,
    "sec": 1,
    "s": 1,
    "minute": 60,
    "min": 60,
    "m": 60,
    "hour": 3600,
    "h": 3600,
    "day": 86400,
    "d": 86400,
    "week": 604800,
    "w": 604800,
}
_INTERVAL_PART = re.compile(r"([+-]?\d+(?:\.\d+)?)\s*([a-z]+)")
_INTERVAL_CLOCK = re.compile(r"([+-]?)(\d+):(\d{2})(?::(\d{2}(?:\.\d+)?))?$")
_INTERVAL_ISO = re.compile(
    r"P(?:(\d+(?:\.\d+)?)W)?(?:(\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?)?$"
)


def to_interval(value: Any) -> dt.timedelta | None:
    """An INTERVAL from its text: ``'90 minutes'``, ``'1 day 02:00:00'``, ``'01:30'`` or ISO 8601
    ``'P1DT2H'``. Months and years have no fixed length and are refused, as are bare numbers
    (their unit would be a guess)."""
    if value is None or isinstance(value, dt.timedelta):
        return value
    if not isinstance(value, str):
        raise CastError(E_CAST.format(value=_short(value), type="INTERVAL"))
    text = value.strip().lower()
    iso = _INTERVAL_ISO.match(text.upper()) if text.startswith("p") else None
    if iso is not None and any(iso.groups()):
        w, d, h, m, sec = (float(g) if g else 0.0 for g in iso.groups())
        return dt.timedelta(weeks=w, days=d, hours=h, minutes=m, seconds=sec)
    seconds = 0.0
    rest = text
    clock = _INTERVAL_CLOCK.search(rest)
    if clock is not None:
        sign = -1 if clock.group(1) == "-" else 1
        h, m, sec = int(clock.group(2)), int(clock.group(3)), float(clock.group(4) or 0)
        seconds += sign * (h * 3600 + m * 60 + sec)
        rest = rest[: clock.start()]
    pos = 0
    for part in _INTERVAL_PART.finditer(rest):
        word = part.group(2)
        unit = _INTERVAL_UNITS.get(
            word, _INTERVAL_UNITS.get(word[:-1]) if word[-1] == "s" else None
        )
        if unit is None or rest[pos : part.start()].strip():
            raise CastError(E_CAST.format(value=_short(value), type="INTERVAL"))
        seconds += float(part.group(1)) * unit
        pos = part.end()
    if rest[pos:].strip() or (pos == 0 and clock is None):
        raise CastError(E_CAST.format(value=_short(value), type="INTERVAL"))
    return dt.timedelta(seconds=seconds)

"""Times of the result store and its documents: ISO-8601 UTC, in one place.

Every time the product writes (``emitted_at``, ``first_seen``, a status row's
``updated_at``...) is :func:`iso_utc` text of fixed width, so text order is time order;
every time it reads from a document, the store or a query parameter goes through
:func:`utc_datetime` (strict: a ValueError for text that is not ISO-8601) or
:func:`parse_iso` (lenient: None). A trailing ``Z``/``z`` means UTC; naive times and
text without an offset are taken as UTC.

(Event times inside the data, a column of ISO text or epoch numbers, are parsed by
``connectors.decode`` on Arrow arrays: a different job, on the connectors' side.)
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

__all__ = ["iso_utc", "parse_iso", "utc_datetime"]


def utc_datetime(value: Any) -> datetime:
    """An aware UTC datetime for a datetime, ISO-8601 text or epoch seconds.

    Raises ValueError for text that is not ISO-8601 (or out of range) and TypeError for
    any other type.

    >>> utc_datetime("2026-01-01T01:00:00+01:00").isoformat(), utc_datetime(" 2026-01-01T00:00:00z ").isoformat()
    ('2026-01-01T00:00:00+00:00', '2026-01-01T00:00:00+00:00')
    >>> utc_datetime("soon")
    Traceback (most recent call last):
    ValueError: Invalid isoformat string: 'soon'
    """
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        moment = datetime.fromtimestamp(value, timezone.utc)
    elif isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        moment = datetime.fromisoformat(text)
    else:
        raise TypeError(f"expected a datetime, ISO-8601 string or epoch seconds, got {type(value).__name__}")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    try:
        return moment.astimezone(timezone.utc)
    except OverflowError as exc:  # year 1 with a positive offset, say
        raise ValueError(f"time out of range: {value!r}") from exc


def iso_utc(value: Any = None) -> str:
    """Fixed-width ISO-8601 UTC text (``...T..:..:..ffffffZ``) for a datetime, ISO string or epoch seconds (default: now).

    >>> iso_utc("2026-01-01T01:00:00+01:00")
    '2026-01-01T00:00:00.000000Z'
    """
    moment = datetime.now(timezone.utc) if value is None else utc_datetime(value)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_iso(text: Any) -> datetime | None:
    """ISO-8601 text (``...Z`` accepted) as an aware UTC datetime; None for None/garbage.

    >>> parse_iso("2026-01-01T00:00:00Z").isoformat(), parse_iso("soon"), parse_iso(None)
    ('2026-01-01T00:00:00+00:00', None, None)
    """
    if not text:
        return None
    try:
        return utc_datetime(str(text))
    except ValueError:
        return None

"""Time formats and identifiers used by the Bitbucket sandbox.

Times are kept internally as integer microseconds since the Unix epoch (UTC) and rendered in the
exact formats the real API uses for each kind of object (see ``unit_tests/resource/bitbucket-api``).
"""

from __future__ import annotations

import contextlib
import gc
import random
import uuid as _uuid
from datetime import datetime, timedelta, timezone
from functools import lru_cache

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
SECOND = 1_000_000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = 24 * HOUR


def to_datetime(us: int) -> datetime:
    """Microseconds since the epoch -> aware UTC datetime."""
    return EPOCH + timedelta(microseconds=us)


def from_datetime(dt: datetime) -> int:
    """Aware (or naive = UTC) datetime -> microseconds since the epoch."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    delta = dt - EPOCH
    return (delta.days * 86400 + delta.seconds) * SECOND + delta.microseconds


def fmt_us(us: int) -> str:
    """PR / repository style: ``2022-03-21T05:51:36.103720+00:00``."""
    return to_datetime(us).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")


def fmt_s(us: int) -> str:
    """Commit style, whole seconds: ``2019-05-13T13:24:53+00:00``."""
    return to_datetime(us).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def fmt_z(us: int) -> str:
    """Deployment style, ``Z`` and trailing zeros dropped: ``2021-12-05T08:25:21.81136Z``."""
    text = to_datetime(us).strftime("%Y-%m-%dT%H:%M:%S.%f").rstrip("0").rstrip(".")
    return text + "Z"


def fmt_nano(us: int, ns: int = 0, digits: int = 6) -> str:
    """Pipeline style, ``Z`` and ``digits`` (5-9) fraction digits, the last never 0:
    ``2026-09-08T23:55:57.826992388Z``, ``2023-02-20T08:58:19.14397Z`` (``ns``: nanoseconds below ``us``)."""
    fraction = f"{us % SECOND:06d}{ns % 1000:03d}"[:digits]
    if fraction.endswith("0"):
        fraction = fraction[:-1] + "1"
    return to_datetime(us - us % SECOND).strftime("%Y-%m-%dT%H:%M:%S.") + fraction + "Z"


def fmt_naive(us: int) -> str:
    """Membership ``added_on`` style, no offset, milliseconds: ``2021-04-02T14:25:58.600``."""
    return to_datetime(us).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]


@lru_cache(maxsize=200_000)
def parse_iso(text: str) -> int:
    """Parse any ISO-8601 variant the API emits or accepts in BBQL into epoch microseconds.

    Accepts ``Z``, ``+HH:MM``, no offset (= UTC), 0-6 fraction digits and a bare date.
    Raises ``ValueError`` for anything else.
    """
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    if "." in value:  # normalise the fraction to 6 digits for fromisoformat
        head, _, rest = value.partition(".")
        digits = rest[: len(rest) - len(rest.lstrip("0123456789"))]
        tail = rest[len(digits):]
        if not digits or len(digits) > 6:
            raise ValueError(f"bad fraction in {text!r}")
        value = f"{head}.{digits.ljust(6, '0')}{tail}"
    return from_datetime(datetime.fromisoformat(value))


def deploy_micros(rng: random.Random) -> int:
    """A microsecond fraction that renders with 5 or 6 digits in ``fmt_z`` (at most one trailing 0)."""
    value = rng.randrange(1, 1_000_000)
    if value % 100 == 0:
        value += rng.randrange(1, 10)
    return value


def new_uuid(rng: random.Random) -> str:
    """A deterministic braced UUID4 string ``{...}``."""
    return "{" + str(_uuid.UUID(int=rng.getrandbits(128), version=4)) + "}"


def new_hash(rng: random.Random) -> str:
    """A deterministic 40-hex commit hash."""
    return f"{rng.getrandbits(160):040x}"


def new_account_id(rng: random.Random) -> str:
    """A 24-hex Atlassian account id."""
    return f"{rng.getrandbits(96):024x}"


@contextlib.contextmanager
def no_gc():
    """Pause the cyclic garbage collector while building many objects (several times faster)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()

"""Local time for campaigns: the user's zone, quiet hours and birthdays.

A user's zone comes from the ``region`` trait (an ISO 3166-2 code such as ``DE-BE``, a
country code, or an IANA zone name), else the configured default zone.

>>> from triggers.campaigns import QuietHours
>>> berlin = ZoneInfo("Europe/Berlin")
>>> night = 1_794_990_600_000  # 2026-11-18 08:30 UTC, 09:30 in Berlin
>>> quiet_until(night, QuietHours(start="22:00", end="08:00"), berlin) is None
True
>>> end = quiet_until(night, QuietHours(start="09:00", end="10:00"), berlin)
>>> datetime.fromtimestamp(end / 1000, berlin).strftime("%H:%M")
'10:00'
>>> zone_of_region("DE-BE", "UTC").key, zone_of_region("US-CA", "UTC").key
('Europe/Berlin', 'America/Los_Angeles')
>>> next_birthday("1990-02-29", datetime(2027, 3, 1, tzinfo=berlin))
datetime.date(2028, 2, 29)
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

if TYPE_CHECKING:
    from triggers.campaigns import QuietHours

COUNTRY_ZONES = {
    "AT": "Europe/Vienna", "AU": "Australia/Sydney", "BE": "Europe/Brussels",
    "BR": "America/Sao_Paulo", "CA": "America/Toronto", "CH": "Europe/Zurich",
    "CN": "Asia/Shanghai", "CZ": "Europe/Prague", "DE": "Europe/Berlin",
    "DK": "Europe/Copenhagen", "ES": "Europe/Madrid", "FI": "Europe/Helsinki",
    "FR": "Europe/Paris", "GB": "Europe/London", "GR": "Europe/Athens",
    "HU": "Europe/Budapest", "IE": "Europe/Dublin", "IN": "Asia/Kolkata",
    "IT": "Europe/Rome", "JP": "Asia/Tokyo", "KR": "Asia/Seoul", "MX": "America/Mexico_City",
    "NL": "Europe/Amsterdam", "NO": "Europe/Oslo", "NZ": "Pacific/Auckland",
    "PL": "Europe/Warsaw", "PT": "Europe/Lisbon", "RO": "Europe/Bucharest",
    "SE": "Europe/Stockholm", "SG": "Asia/Singapore", "TR": "Europe/Istanbul",
    "UA": "Europe/Kyiv", "UK": "Europe/London", "US": "America/New_York",
    "ZA": "Africa/Johannesburg",
}  # fmt: skip
US_ZONES = {
    **dict.fromkeys(("CA", "WA", "OR", "NV"), "America/Los_Angeles"),
    **dict.fromkeys(("AZ",), "America/Phoenix"),
    **dict.fromkeys(("CO", "UT", "NM", "MT", "WY", "ID"), "America/Denver"),
    **dict.fromkeys(
        ("TX", "IL", "MN", "WI", "IA", "MO", "KS", "OK", "NE", "LA", "AR", "MS", "AL", "TN"),
        "America/Chicago",
    ),
    "AK": "America/Anchorage",
    "HI": "Pacific/Honolulu",
}
DAY_MS = 86_400_000


@lru_cache(maxsize=1024)
def zone(name: str) -> ZoneInfo:
    """An IANA zone; raises ``ValueError`` for an unknown name."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}") from None


@lru_cache(maxsize=4096)
def zone_of_region(region: object, default: str) -> ZoneInfo:
    """The zone of a ``region`` trait value, else ``default``."""
    if isinstance(region, str) and region:
        if "/" in region:
            try:
                return zone(region)
            except ValueError:
                return zone(default)
        country, _, subdivision = region.upper().partition("-")
        if country == "US" and subdivision in US_ZONES:
            return zone(US_ZONES[subdivision])
        if country in COUNTRY_ZONES:
            return zone(COUNTRY_ZONES[country])
    return zone(default)


def _clock(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


def quiet_until(now: int, quiet: QuietHours, tz: ZoneInfo) -> int | None:
    """If ``now`` (epoch ms) falls in the quiet hours, the epoch ms when they end."""
    local = datetime.fromtimestamp(now / 1000, tz)
    start, end = _clock(quiet.start), _clock(quiet.end)
    current = local.time().replace(tzinfo=None)
    if start == end:
        return None
    if start < end:  # e.g. 12:00-14:00, the same day
        if not start <= current < end:
            return None
        end_day = local.date()
    else:  # e.g. 22:00-08:00, across midnight
        if end <= current < start:
            return None
        end_day = local.date() + timedelta(days=1) if current >= start else local.date()
    ends = datetime.combine(end_day, end, tzinfo=tz)
    return int(ends.timestamp() * 1000)


def parse_birthday(value: object) -> tuple[int, int] | None:
    """(month, day) of a ``birthday`` trait: ``YYYY-MM-DD`` or ``MM-DD``; else None."""
    if not isinstance(value, str):
        return None
    parts = value.strip()[:10].split("-")
    try:
        month, day = (int(parts[1]), int(parts[2])) if len(parts) == 3 else map(int, parts)
        date(2000, month, day)  # a leap year: Feb 29 is valid
    except (ValueError, TypeError, IndexError):
        return None
    return month, day


def _on_year(month: int, day: int, year: int) -> date:
    try:
        return date(year, month, day)
    except ValueError:  # Feb 29 outside leap years: Feb 28
        return date(year, month, day - 1)


def next_birthday(value: object, local_now: datetime, *, after_today: bool = False) -> date | None:
    """The date of the user's next birthday (today counts unless ``after_today``)."""
    parsed = parse_birthday(value)
    if parsed is None:
        return None
    today = local_now.date()
    for year in (today.year, today.year + 1, today.year + 2):
        day = _on_year(*parsed, year)
        if day > today or (day == today and not after_today):
            return day
    return None


def start_of(day: date, tz: ZoneInfo) -> int:
    """Epoch ms of local midnight starting ``day``."""
    return int(datetime.combine(day, time(0, 0), tzinfo=tz).timestamp() * 1000)


def month_day(anchor: int) -> tuple[int, int]:
    """(month, day) of a ``YYYYMMDD`` integer."""
    return (anchor // 100) % 100, anchor % 100


def days_of(birthday: tuple[int, int]) -> set[tuple[int, int]]:
    """The calendar days a birthday falls on (Feb 29 is Feb 28 in other years)."""
    return {birthday, (2, 28)} if birthday == (2, 29) else {birthday}

"""Dates and times shifted in their own format: ``7/22`` -> ``9/3``, ``2019-07-22`` -> ``2021-02-14``.

:func:`shift_date` parses the common written forms of a date (numeric m/d/y, m-d-y, ISO y-m-d, m/d,
day-month-year and month-day-year with month names, month and year, a month, a weekday, a year
alone, a two-digit year, a day with an ordinal) and writes the date ``days`` later in the same form:
the same separators, zero padding, year digits, month style (``Jul``, ``July``, ``JULY``, ``Jul.``),
case and ordinal suffix. A date without a year is shifted within a fixed non-leap year, a year alone by
the whole years of the shift (rounded), a weekday by the shift modulo 7, so that intervals between the
dates of one patient stay what they were. :func:`shift_time` shifts a clock time by minutes. Text that
is not a date it knows gives ``None``; the caller then draws a shape-preserving value.
"""

from __future__ import annotations

import datetime as dt
import re

__all__ = ["shift_date", "shift_time", "year_shift"]

_MONTHS = ["january", "february", "march", "april", "may", "june", "july", "august", "september",
           "october", "november", "december"]
_ABBR = {m[:3]: i for i, m in enumerate(_MONTHS)} | {"sept": 8}
_WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
_REFERENCE_YEAR = 2001  # not a leap year: a date without a year is shifted inside it

_MONTH_RE = (r"(?P<month>jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|"
             r"sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)(?P<dot>\.?)")
_FORMS = [
    ("mdy", re.compile(r"(?P<m>[0-9]{1,2})(?P<s1>[/.-])(?P<d>[0-9]{1,2})(?P<s2>[/.-])(?P<y>[0-9]{4}|[0-9]{2})")),
    ("ymd", re.compile(r"(?P<y>[0-9]{4})(?P<s1>[/.-])(?P<m>[0-9]{1,2})(?P<s2>[/.-])(?P<d>[0-9]{1,2})")),
    ("md", re.compile(r"(?P<m>[0-9]{1,2})(?P<s1>[/-])(?P<d>[0-9]{1,2})")),
    ("dmy_text", re.compile(rf"(?P<d>[0-9]{{1,2}})(?P<ord>st|nd|rd|th)?(?P<mid>(?:\s*of)?[\s-]+){_MONTH_RE}"
                            r"(?:(?P<sep>,?[\s-]+)(?P<q>'?)(?P<y>[0-9]{4}|[0-9]{2}))?", re.I)),
    ("mdy_text", re.compile(rf"{_MONTH_RE}(?P<mid>[\s-]+)(?P<d>[0-9]{{1,2}})(?P<ord>st|nd|rd|th)?"
                            r"(?:(?P<sep>,?\s+)(?P<q>'?)(?P<y>[0-9]{4}|[0-9]{2}))?", re.I)),
    ("my_text", re.compile(rf"{_MONTH_RE}(?P<sep>(?:\s+of)?,?\s+)(?P<q>'?)(?P<y>[0-9]{{4}}|[0-9]{{2}})", re.I)),
    ("month", re.compile(_MONTH_RE, re.I)),
    ("weekday", re.compile(r"(?P<w>mon|tues?|wed(?:nes)?|thu(?:rs?)?|fri|sat(?:ur)?|sun)(?P<rest>day)?(?P<dot>\.?)",
                           re.I)),
    ("ordinal", re.compile(r"(?P<d>[0-9]{1,2})(?P<ord>st|nd|rd|th)", re.I)),
    ("year", re.compile(r"(?P<q>'?)(?P<y>[0-9]{4}|[0-9]{2})")),
]


def year_shift(days: int) -> int:
    """The whole years of a shift of ``days`` (at least one year for a shift of a year or more)."""
    return int(round(days / 365.25))


def _case_like(word: str, like: str) -> str:
    if like.isupper() and len(like) > 1:
        return word.upper()
    if like[:1].isupper():
        return word[:1].upper() + word[1:]
    return word.lower()


def _ordinal(day: int, like: str) -> str:
    suffix = "th" if 10 <= day % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return suffix.upper() if like.isupper() else suffix


def _num(value: int, like: str) -> str:
    """``value`` with the zero padding of ``like`` (``07`` -> two digits)."""
    return f"{value:0{len(like)}d}" if like.startswith("0") and len(like) > 1 else str(value)


def _month_name(month: int, like: str, dot: str) -> str:
    """Month ``month`` (0-based) written as ``like`` is: full name, or an abbreviation (``Sept``, ``Jul``)."""
    full = _MONTHS[month]
    if like.lower() in _MONTHS:
        word = full
    else:
        word = full[:4] if full.startswith("sep") and like.lower().startswith("sep") and len(like) == 4 else full[:3]
    return _case_like(word, like) + (dot if len(word) < len(full) else "")


def _month_index(word: str) -> int | None:
    w = word.lower()
    for i, name in enumerate(_MONTHS):
        if w == name:
            return i
    return _ABBR.get(w[:4] if w.startswith("sept") else w[:3])


def _year_value(text: str, pivot: int = 30) -> int:
    value = int(text)
    if len(text) == 2:
        value += 2000 if value < pivot else 1900
    return value


def _year_text(year: int, like: str) -> str:
    return f"{year % 100:02d}" if len(like) == 2 else f"{year:04d}"


def _valid(year: int, month: int, day: int) -> dt.date | None:
    try:
        return dt.date(year, month, day)
    except ValueError:
        return None


def shift_date(text: str, days: int) -> str | None:
    """``text`` (a whole date) written ``days`` later in the same format, or ``None`` when ``text`` is
    not a date :mod:`medtune.deid.dates` knows."""
    stripped = text.strip()
    lead, trail = text[:len(text) - len(text.lstrip())], text[len(text.rstrip()):]
    for kind, pattern in _FORMS:
        m = pattern.fullmatch(stripped)
        if m is None:
            continue
        out = _shift(kind, m, days)
        if out is not None:
            return lead + out + trail
    return None


def _shift(kind: str, m: re.Match[str], days: int) -> str | None:
    g = m.groupdict()
    delta = dt.timedelta(days=days)
    if kind in ("mdy", "ymd", "md"):
        month, day = int(g["m"]), int(g["d"])
        year = _year_value(g["y"]) if g.get("y") else _REFERENCE_YEAR
        date = _valid(year, month, day)
        if date is None:
            return None
        new = _shift_day(date, delta, with_year=bool(g.get("y")))
        padded = kind == "ymd" or any(len(x) == 2 and x.startswith("0") for x in (g["m"], g["d"]))
        mm, dd = (f"{new.month:02d}", f"{new.day:02d}") if padded else (str(new.month), str(new.day))
        if kind == "md":
            return f"{mm}{g['s1']}{dd}"
        yy = _year_text(new.year, g["y"])
        if kind == "ymd":
            return f"{yy}{g['s1']}{mm}{g['s2']}{dd}"
        return f"{mm}{g['s1']}{dd}{g['s2']}{yy}"
    if kind in ("dmy_text", "mdy_text"):
        month = _month_index(g["month"])
        year = _year_value(g["y"]) if g.get("y") else _REFERENCE_YEAR
        date = _valid(year, month + 1, int(g["d"])) if month is not None else None
        if date is None:
            return None
        new = _shift_day(date, delta, with_year=bool(g.get("y")))
        day = _num(new.day, g["d"]) + (_ordinal(new.day, g["ord"]) if g.get("ord") else "")
        month_text = _month_name(new.month - 1, g["month"], g["dot"])
        year_part = f"{g['sep']}{g['q']}{_year_text(new.year, g['y'])}" if g.get("y") else ""
        if kind == "dmy_text":
            return f"{day}{g['mid']}{month_text}{year_part}"
        return f"{month_text}{g['mid']}{day}{year_part}"
    if kind == "my_text":
        month = _month_index(g["month"])
        if month is None:
            return None
        new = _shift_day(dt.date(_year_value(g["y"]), month + 1, 15), delta, with_year=True)
        return f"{_month_name(new.month - 1, g['month'], g['dot'])}{g['sep']}{g['q']}{_year_text(new.year, g['y'])}"
    if kind == "month":
        month = _month_index(g["month"])
        if month is None:
            return None
        new = _shift_day(dt.date(_REFERENCE_YEAR, month + 1, 15), delta, with_year=False)
        return _month_name(new.month - 1, g["month"], g["dot"])
    if kind == "weekday":
        index = next(i for i, w in enumerate(_WEEKDAYS) if w.startswith(g["w"].lower()[:3]))
        name = _WEEKDAYS[(index + days) % 7]
        word = name if g.get("rest") else name[:len(g["w"])]
        return _case_like(word, g["w"]) + g["dot"]
    if kind == "ordinal":
        day = int(g["d"])
        if not 1 <= day <= 31:
            return None
        new = (day - 1 + days) % 28 + 1
        return _num(new, g["d"]) + _ordinal(new, g["ord"])
    if kind == "year":
        return g["q"] + _year_text(_year_value(g["y"]) + year_shift(days), g["y"])
    return None  # pragma: no cover - every kind is handled above


def _shift_day(date: dt.date, delta: dt.timedelta, *, with_year: bool) -> dt.date:
    new = date + delta
    if with_year:
        return new
    # no year written: stay inside the reference year, so that a day shifts the same way every time
    offset = (date.timetuple().tm_yday - 1 + delta.days) % 365
    return dt.date(_REFERENCE_YEAR, 1, 1) + dt.timedelta(days=offset)


_TIME = re.compile(r"(?P<h>[0-9]{1,2})(?P<colon>:?)(?P<mi>[0-9]{2})?(?P<sp>\s*)(?P<ampm>[ap]\.?m\.?)?(?P<hrs>\s*hrs?)?",
                   re.I)


def shift_time(text: str, minutes: int) -> str | None:
    """A clock time (``14:30``, ``0930``, ``9:30am``, ``7 pm``) ``minutes`` later in the same format."""
    m = _TIME.fullmatch(text.strip())
    if m is None or (m["mi"] is None and m["ampm"] is None) or (m["colon"] and m["mi"] is None):
        return None
    hour, minute = int(m["h"]), int(m["mi"] or 0)
    if m["mi"] is not None and not m["colon"] and len(m["h"]) != 2:
        return None
    twelve = m["ampm"] is not None
    if minute > 59 or (twelve and not 1 <= hour <= 12) or (not twelve and hour > 23):
        return None
    if twelve:
        hour = hour % 12 + (12 if m["ampm"].lower().startswith("p") else 0)
    total = (hour * 60 + minute + minutes) % (24 * 60)
    hour, minute = divmod(total, 60)
    out_hour = hour
    ampm = ""
    if twelve:
        out_hour = hour % 12 or 12
        mark = "pm" if hour >= 12 else "am"
        like = m["ampm"]
        mark = mark[0] + "." + mark[1] + "." if "." in like else mark
        ampm = m["sp"] + (mark.upper() if like.isupper() else mark)
    hour_text = f"{out_hour:02d}" if len(m["h"]) == 2 else str(out_hour)
    minute_text = f"{m['colon']}{minute:02d}" if m["mi"] is not None else ""
    return text[:len(text) - len(text.lstrip())] + hour_text + minute_text + ampm + (m["hrs"] or "") + \
        text[len(text.rstrip()):]

"""Surrogates: readable, format-keeping stand-ins for PHI, consistent per patient under a secret key.

Every choice is a keyed hash: ``HMAC-SHA256(key, category | patient | normalised string | attempt)``
picks the surrogate, so that

* within a document the same real string always gives the same surrogate (``Masci``, ``MASCI`` and
  ``masci`` give one surname, each in its own case);
* with one key (``--date-shift-key KEYFILE``), all the notes of one patient get the same surrogates and
  one date shift; another patient gets others; without a key file a fresh random key is drawn per
  run (:func:`random_key`), so the surrogates and shift differ between runs;
* a surrogate equal to a real PHI string of the same document (or to the surrogate of another real
  string) is redrawn (the next ``attempt``). Dates and times are the exception: they are shifted, not
  drawn, so that intervals stay exact.

Shapes: a name by a name (given names from ``lists/first_names.txt``, surnames from
``lists/last_names.txt``) with the same case, initials kept as initials and first + last as first +
last; a date by the same date shifted by the patient's offset, in its own format
(:mod:`medtune.deid.dates`); a phone by a fictional number of the same layout (``555-01xx``); an id by
random digits and letters of the same length; a place by a place name of ``lists/places.txt`` (an
abbreviation by letters); an age over 89 by ``90+``; an e-mail, URL or IP address by reserved
example ones (``example.org``, ``192.0.2.x``).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from functools import lru_cache
from importlib import resources
from pathlib import Path

from medtune.deid.dates import shift_date, shift_time
from medtune.deid.types import PhiCategory
from medtune.errors import ConfigError

__all__ = ["read_key", "random_key", "Surrogates", "MIN_KEY_BYTES", "normalise"]

MIN_KEY_BYTES = 16
_MAX_ATTEMPTS = 50


def random_key() -> bytes:
    """A fresh 32-byte key (a run without ``--date-shift-key``)."""
    return secrets.token_bytes(32)


def read_key(path: str | Path) -> bytes:
    """The secret key of a key file: its bytes without surrounding white space (16 or more)."""
    path = Path(path)
    fix = (f"write a secret of {MIN_KEY_BYTES} or more characters into the key file, e.g. "
           "`python -c 'import secrets; print(secrets.token_hex(32))' > deid.key`, and keep it private")
    if not path.is_file():
        raise ConfigError(f"date-shift key file {path} {'is not a file' if path.exists() else 'does not exist'}",
                          fix=fix)
    try:
        key = path.read_bytes().strip()
    except OSError as err:
        raise ConfigError(f"date-shift key file {path} cannot be read ({type(err).__name__})", fix=fix) from None
    if len(key) < MIN_KEY_BYTES:
        raise ConfigError(f"date-shift key file {path} holds {len(key)} bytes, fewer than {MIN_KEY_BYTES}", fix=fix)
    return key


@lru_cache(maxsize=None)
def _names(file: str) -> tuple[str, ...]:
    text = resources.files("medtune.deid").joinpath("lists").joinpath(file).read_text(encoding="utf-8")
    words = [w for line in text.splitlines() for w in line.split("#", 1)[0].split()]
    return tuple(dict.fromkeys(words))


def normalise(category: PhiCategory, text: str) -> str:
    """The form two mentions of one PHI string share: case and spacing folded; digits only for a
    phone (``410-555-0123`` = ``(410) 555 0123``); letters and digits only for an id."""
    if category is PhiCategory.PHONE:
        return re.sub(r"[^0-9]", "", text) or text.lower()
    if category is PhiCategory.ID:
        return re.sub(r"[^0-9A-Za-z]", "", text).lower() or text.lower()
    return " ".join(text.lower().split())


_WORD = re.compile(r"[A-Za-z]+")
_HOLIDAYS = ("christmas", "thanksgiving", "easter", "new year's day", "labor day", "memorial day", "halloween",
             "independence day")
_STREET = {"st", "street", "ave", "avenue", "rd", "road", "blvd", "boulevard", "ln", "lane", "dr", "drive", "ct",
           "court", "way", "pl", "place", "terrace", "circle", "pike", "parkway", "hospital", "hosp", "medical",
           "center", "ctr", "clinic", "rehab", "campus", "memorial", "regional", "house", "home", "of", "the",
           "and", "north", "south", "east", "west", "saint", "university", "u"}


class Surrogates:
    """The surrogates of one document: ``Surrogates(key, patient, reserved).make(category, text)``.

    ``reserved`` holds the normalised real PHI strings of the document (and their words), which no
    surrogate may equal. One instance per document keeps the document's choices consistent.
    """

    def __init__(self, key: bytes, patient: str, reserved: set[str] | None = None) -> None:
        self.key = key
        self.patient = patient
        self.reserved = set(reserved or ())
        self._chosen: dict[tuple[str, str], str] = {}  # (kind, normalised original) -> surrogate
        self._taken: dict[tuple[str, str], str] = {}  # (kind, normalised surrogate) -> original
        self.days = self._date_shift()
        self.minutes = 1 + self._number("time-shift", "", 0, 24 * 60 - 1)

    # ------------------------------------------------------------------ keyed draws
    def _number(self, kind: str, value: str, attempt: int, n: int) -> int:
        """A number in ``[0, n)`` from the key, the patient, ``kind``, ``value`` and ``attempt``."""
        message = "\x1f".join((kind, self.patient, value, str(attempt))).encode("utf-8")
        digest = hmac.new(self.key, message, hashlib.sha256).digest()
        return int.from_bytes(digest[:8], "big") % n

    def _date_shift(self) -> int:
        """The patient's shift in days: 1 to 10 years back or forward, never a whole number of weeks
        or of 365 days (a weekday or a date without a year would then come back unchanged)."""
        for attempt in range(_MAX_ATTEMPTS):
            days = 365 + self._number("date-shift", "", attempt, 9 * 365)
            days = -days if self._number("date-shift-sign", "", attempt, 2) else days
            if days % 7 and days % 365:
                return days
        return 400  # pragma: no cover - 50 draws without a usable shift do not happen

    def _draw(self, kind: str, original: str, build) -> str:
        """``build(attempt)`` until the surrogate is neither reserved nor another string's surrogate."""
        cached = self._chosen.get((kind, original))
        if cached is not None:
            return cached
        value = build(0)
        for attempt in range(1, _MAX_ATTEMPTS):
            norm = " ".join(value.lower().split())
            forms = {norm, re.sub(r"[^0-9]", "", norm), re.sub(r"[^0-9a-z]", "", norm)} - {""}
            owner = self._taken.get((kind, norm))
            if not forms & self.reserved and owner in (None, original):
                break
            value = build(attempt)
        self._chosen[(kind, original)] = value
        self._taken[(kind, " ".join(value.lower().split()))] = original
        return value

    # ------------------------------------------------------------------ by category
    def make(self, category: PhiCategory, text: str, label: str | None = None) -> str:
        """The surrogate of ``text`` (PHI of ``category``; ``label`` the fine-grained type, if any)."""
        if not text.strip():
            return text
        if category in (PhiCategory.NAME, PhiCategory.INITIALS):
            return self._name(text, initials=category is PhiCategory.INITIALS)
        if category is PhiCategory.DATE:
            return self._date(text, label)
        if category is PhiCategory.TIME:
            return shift_time(text, self.minutes) or self._shape(category, text)
        if category is PhiCategory.AGE:
            return self._age(text)
        if category is PhiCategory.PHONE:
            return self._phone(text)
        if category is PhiCategory.EMAIL:
            return self._email(text)
        if category is PhiCategory.URL:
            return self._url(text)
        if category is PhiCategory.IP:
            return self._ip(text)
        if category is PhiCategory.LOCATION:
            return self._place(text)
        return self._shape(category, text)

    def _date(self, text: str, label: str | None) -> str:
        shifted = shift_date(text, self.days)
        if shifted is not None:
            return shifted
        if re.fullmatch(r"[A-Za-z' ]+", text.strip()):  # "christmas": another holiday
            word = text.strip().lower()
            pool = [h for h in _HOLIDAYS if h != word]
            return _case_like(self._draw("holiday", word, lambda a: pool[self._number("holiday", word, a, len(pool))]),
                              text.strip())
        return self._shape(PhiCategory.DATE, text)

    def _name(self, text: str, *, initials: bool) -> str:
        """Word by word: a token of several words is first name(s) + surname; a hyphenated or
        apostrophe-joined token keeps its role for every part; one letter stays one letter."""
        if initials:
            return "".join(_case_like(self._name_word(c.lower(), "initial"), c) if c.isalpha() else c for c in text)
        tokens = text.split()
        out, pos = [], 0
        for k, token in enumerate(tokens):
            start = text.index(token, pos)
            out.append(text[pos:start])
            parts = _WORD.findall(token)
            if len(tokens) > 1 and k == len(tokens) - 1:
                role = "last"
            elif len(tokens) > 1 or (len(parts) == 1 and parts[0].lower() in _first_set()):
                role = "first"
            else:
                role = "last"
            piece, p = [], 0
            for m in _WORD.finditer(token):
                word = m.group()
                piece.append(token[p:m.start()])
                piece.append(_case_like(self._name_word(word.lower(), "initial" if len(word) == 1 else role), word))
                p = m.end()
            piece.append(token[p:])
            out.append("".join(piece))
            pos = start + len(token)
        out.append(text[pos:])
        return "".join(out)

    def _name_word(self, word: str, role: str) -> str:
        if role == "initial":
            return self._draw("initial", word, lambda a: chr(ord("a") + self._number("initial", word, a, 26)))
        pool = _names("first_names.txt") if role == "first" else _names("last_names.txt")
        return self._draw("name", word, lambda a: pool[self._number("name-" + role, word, a, len(pool))].lower())

    def _place(self, text: str) -> str:
        if not re.search(r"[A-Za-z]", text):  # a postcode or zip: digits of the same shape
            return self._shape(PhiCategory.LOCATION, text)
        if re.search(r"[0-9]", text) and not re.search(r"[A-Za-z]{3,}", text):  # SW1A 1AA
            return self._shape(PhiCategory.LOCATION, text)
        pool = _names("places.txt")
        out, pos = [], 0
        for m in re.finditer(r"[0-9]+|[A-Za-z]+", text):
            word = m.group()
            out.append(text[pos:m.start()])
            if word.isdigit():
                out.append(self._digits(word, "house-number"))
            elif word.lower() in _STREET:
                out.append(word)
            elif len(word) <= 4 and word.isupper():  # GH, GBMC: an abbreviation of as many letters
                out.append(self._draw("place-abbr", word.lower(), lambda a, w=word: "".join(
                    chr(ord("A") + self._number("place-abbr", w.lower(), a * 10 + i, 26)) for i in range(len(w)))))
            else:
                key = word.lower()
                out.append(_case_like(self._draw("place", key, lambda a, k=key: pool[
                    self._number("place", k, a, len(pool))].lower()), word))
            pos = m.end()
        out.append(text[pos:])
        return "".join(out)

    def _age(self, text: str) -> str:
        m = re.search(r"[0-9]+", text)
        if m is None:
            return self._shape(PhiCategory.AGE, text)
        value = int(m.group())
        if value >= 90:
            new = "90+"
        else:  # an age the model marked although it is not over 89: a nearby age of as many digits
            new = str(max(1, value + (1 + self._number("age", m.group(), 0, 3)) * (
                -1 if self._number("age-sign", m.group(), 0, 2) else 1)))
        return text[:m.start()] + new + text[m.end():]

    def _digits(self, digits: str, kind: str, attempt: int = 0) -> str:
        out = []
        for i, c in enumerate(digits):
            low = 1 if i == 0 and c != "0" and len(digits) > 1 else 0
            out.append(str(low + self._number(kind, digits, attempt * 100 + i, 10 - low)))
        return "".join(out)

    def _phone(self, text: str) -> str:
        """A fictional number of the same layout: ``AAA-555-01NN`` (555-0100 to 0199 are reserved for
        fiction), a country code kept, an extension and short numbers (pagers) random digits."""
        digits = re.sub(r"[^0-9]", "", text)
        country = "1" if len(digits) >= 11 and re.match(r"\s*\+?1[\s.-]", text) else ""
        body = digits[len(country):]

        def build(attempt: int) -> str:
            n = len(body)
            line = f"55501{self._number('phone-line', digits, attempt, 100):02d}"
            if n >= 10:
                area = str(2 + self._number("phone-area", digits, attempt, 8)) + \
                    f"{self._number('phone-area2', digits, attempt, 100):02d}"
                new = area + line + self._digits(body[10:], "phone-ext", attempt)
            elif n >= 7:
                new = line + self._digits(body[7:], "phone-ext", attempt)
            else:
                new = self._digits(body, "phone", attempt)
            it = iter(country + new)
            return "".join(next(it) if c.isdigit() else c for c in text)

        return self._draw("phone", digits or text, build)

    def _email(self, text: str) -> str:
        local = text.split("@", 1)[0]
        return self._draw("email", text.lower(), lambda a: self._letters(local.lower(), "email", a) + "@" + (
            "example.org", "example.com", "example.net")[self._number("email-domain", text.lower(), a, 3)])

    def _url(self, text: str) -> str:
        m = re.match(r"(?i)(https?://)?(www\.)?([^/?#]*)(.*)", text)
        assert m is not None
        scheme, www, rest = m.group(1) or "", m.group(2) or "", m.group(4)
        return self._draw("url", text.lower(), lambda a: scheme + www + "example.org" + (
            self._shape(PhiCategory.URL, rest, a) if rest else ""))

    def _ip(self, text: str) -> str:
        if ":" in text:
            return self._draw("ip", text.lower(), lambda a: f"2001:db8::{self._number('ip6', text, a, 65535):x}")
        nets = ("192.0.2", "198.51.100", "203.0.113")
        return self._draw("ip", text, lambda a: f"{nets[self._number('ip-net', text, a, 3)]}."
                                                  f"{1 + self._number('ip', text, a, 254)}")

    def _letters(self, like: str, kind: str, attempt: int) -> str:
        return "".join(chr(ord("a") + self._number(kind, like, attempt * 1000 + i, 26)) if c.isalpha() else
                       str(self._number(kind, like, attempt * 1000 + i, 10)) if c.isdigit() else c
                       for i, c in enumerate(like))

    def _shape(self, category: PhiCategory, text: str, attempt: int | None = None) -> str:
        """Random letters and digits in the shape of ``text`` (case and punctuation kept)."""
        norm = normalise(category, text)

        def build(a: int) -> str:
            out = []
            for i, c in enumerate(text):
                if c.isdigit():
                    out.append(str(self._number("shape-digit", norm, a * 1000 + i, 10)))
                elif c.isalpha():
                    letter = chr(ord("a") + self._number("shape-letter", norm, a * 1000 + i, 26))
                    out.append(letter.upper() if c.isupper() else letter)
                else:
                    out.append(c)
            return "".join(out)

        if attempt is not None:
            return build(attempt)
        return self._draw("shape-" + category.value, norm, build)


@lru_cache(maxsize=None)
def _first_set() -> frozenset[str]:
    return frozenset(w.lower() for w in _names("first_names.txt"))


def _case_like(word: str, like: str) -> str:
    """``word`` in the case of ``like``: UPPER, lower or Title (a one-letter ``like`` gives its case)."""
    if like.isupper():
        return word.upper()
    if like.islower():
        return word.lower()
    return word[:1].upper() + word[1:].lower()

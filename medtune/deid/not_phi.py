"""What the PHI model may take for PHI that is not: Safe Harbor's exceptions, and numbers that measure.

HIPAA's Safe Harbor method (45 CFR 164.514(b)(2)) removes geographic subdivisions *smaller than a state*
and ages *over 89*: a state, a country and an age of 89 or less are not identifiers, and the PhysioNet
deid gold does not mark them. The PHI model learns from its corpus which strings look like PHI, and
marks some of these anyway (a patient "from the Bahamas", "87 year old" read as a year, a pain score
"6/10" read as a date). :func:`drop_not_phi` takes out of the **model's** spans:

- ``region``: a location that is exactly a US state, territory or country (``lists/regions.txt``; names
  that are also cities, "New York" and "Washington", are kept), unless it names an institution ("U
  Maryland Hosp", "Maryland Rehab", "University of Georgia": a facility word next to it);
- ``age``: a number of 89 or less that an age cue follows ("87 year old", "87 yo", "87-year-old",
  "87 y/o", "87 years of age") or precedes ("age 87", "aged 87");
- ``measurement``: a date over a number pair ("3/4", "5/5") that the word next to it makes a strength,
  a grade, a blood pressure or a dose (:func:`medtune.deid.rules.measurement_context`: "3/4 str",
  "5/5 strength", "BP 120/80"), a pain score ("6/10 CP", "pain 7/10"), or a part of a longer number
  with two slashes and a decimal ("11/31/7.45", a blood gas; "11/21.93" stays a date).

Each context is a word *next to* the number: "chest pain since 6/10", "dressing changed 7/22" and
"7/22 x-ray" stay dates.

The rules' spans are not filtered here: their patterns carry these contexts already. A site whose policy
removes more than Safe Harbor does (i2b2 2014's guidelines mark states, countries and every age) turns
this off: ``not_phi: false`` in the pipeline, ``medtune deid --keep-not-phi``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

from medtune.deid.rules import FACILITY_WORDS, list_lines, measurement_context
from medtune.deid.types import PhiCategory, category_of
from medtune.document import Span

__all__ = ["drop_not_phi", "not_phi_reason", "regions"]

MAX_AGE = 89  # Safe Harbor: ages over 89 are identifiers, younger ones are not
_AGE_AFTER = re.compile(r"(?i)[\s-]*(?:y(?:ea)?rs?[\s-]*old\b|y\.?\s*o\b\.?|y/o\b|years?\s+of\s+age\b)")
_AGE_BEFORE = re.compile(r"(?i)\b(?:age|aged|age:)\s*$")
_NUMBER = re.compile(r"[0-9]{1,3}")
_NUMERIC = re.compile(r"[0-9./-]+")
_PAIR = re.compile(r"[0-9]{1,2}[/-][0-9]{1,2}")
_NUMERIC_CHARS = frozenset("0123456789./-")
_INSTITUTION_BEFORE = re.compile(r"(?i)\b(?:u|uof|univ\.?|university(?:\s+of)?|u\.?\s*of|college(?:\s+of)?)\s*$")
_INSTITUTION_AFTER = re.compile(rf"(?i)[\s-]*(?:{FACILITY_WORDS}|er\b|ed\b|university|univ\b|college|general|"
                                r"medical|med\b|shock\s+trauma|state\s+(?:hospital|university))")
_SCORE = re.compile(r"(?:10|[0-9])/10")
_PAIN_AFTER = re.compile(r"(?i)[\s,]*(?:cp\b|pain\b|ha\b|headache|discomfort|on\s+(?:the\s+)?(?:pain\s+)?scale\b|"
                         r"(?:chest|back|abd\w*|incisional|sharp|dull|burning|aching)\s+(?:pain|discomfort)\b)")
_PAIN_BEFORE = re.compile(r"(?i)\b(?:pain|cp|rated|rates|rating|score|scale)\s*(?:of|at|level|score|was|is|=|:)?\s*$")


@lru_cache(maxsize=None)
def regions() -> frozenset[str]:
    """Normalised names of the US states, territories and countries (``lists/regions.txt``)."""
    return frozenset(_normal(line) for line in list_lines("regions.txt"))


def _normal(name: str) -> str:
    name = " ".join(name.lower().split()).strip(" ,;:")
    return name[4:] if name.startswith("the ") else name


def _numeric_run(text: str, start: int, end: int) -> tuple[int, int]:
    """The run of digits, dots, slashes and dashes around ``text[start:end]``, without the dots, dashes
    and slashes at its ends ("Quartermain.8/31." -> "8/31")."""
    while start > 0 and text[start - 1] in _NUMERIC_CHARS:
        start -= 1
    while end < len(text) and text[end] in _NUMERIC_CHARS:
        end += 1
    while end > start and text[end - 1] in ".-/":
        end -= 1
    while start < end and text[start] in ".-/":
        start += 1
    return start, end


def not_phi_reason(text: str, span: Span) -> str | None:
    """``"region"``, ``"age"`` or ``"measurement"`` when ``span`` (a PHI span on ``text``) is not PHI by
    the rules of the module docstring; ``None`` when it stays PHI."""
    category = category_of(span.label)
    surface = text[span.start:span.end]
    if category is PhiCategory.LOCATION:
        if _normal(surface) not in regions():
            return None
        institution = (_INSTITUTION_BEFORE.search(text, max(0, span.start - 20), span.start)
                       or _INSTITUTION_AFTER.match(text, span.end, min(len(text), span.end + 30)))
        return None if institution else "region"
    if category not in (PhiCategory.DATE, PhiCategory.AGE):
        return None
    stripped = surface.strip()
    if _NUMBER.fullmatch(stripped) and int(stripped) <= MAX_AGE:
        after = min(len(text), span.end + 20)
        if _AGE_AFTER.match(text, span.end, after) or _AGE_BEFORE.search(text, max(0, span.start - 10), span.start):
            return "age"
    if category is PhiCategory.DATE and _NUMERIC.fullmatch(stripped):
        start, end = _numeric_run(text, span.start, span.end)
        run = text[start:end]
        if run.count("/") >= 2 and re.search(r"\.[0-9]", run):
            return "measurement"
        if _PAIR.fullmatch(run) and measurement_context(text, start, end):
            return "measurement"
        if _SCORE.fullmatch(run) and (_PAIN_AFTER.match(text, end, min(len(text), end + 30))
                                      or _PAIN_BEFORE.search(text, max(0, start - 20), start)):
            return "measurement"
    return None


def drop_not_phi(text: str, spans: Sequence[Span]) -> list[Span]:
    """``spans`` without those :func:`not_phi_reason` says are not PHI."""
    return [span for span in spans if not_phi_reason(text, span) is None]

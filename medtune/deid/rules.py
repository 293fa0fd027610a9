"""The PHI pattern library: named, compiled regexes, each with examples a test checks.

Every :class:`Pattern` has a name, the :class:`~medtune.deid.types.PhiCategory` it finds, one compiled
regex (whose group ``phi``, when present, is the PHI part: "Dr. ``Murphy``", "MRN ``12345``") and
examples: ``positives`` (a text and the exact PHI the pattern must find in it) and ``negatives``
(texts where it must find nothing). ``tests/test_deid_rules.py`` runs every example of every pattern.

The rules were designed on the train and dev patients of the PhysioNet deid nursing notes (mixed and
upper case text), and avoid what a note is full of: lab values, doses, vital signs, ratios and scores
("BP 120/80", "K 3.9", "2 UNITS", "5/5 strength"). Name, place and hospital cues keep a captured word
only when it is not a common word (``lists/not_names.txt``, and words ending in -ing, -ed, -ly, -ion).
Rules are for recall on well-formed PHI; the NER model (``medtune.deid.model``) covers the rest.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Iterator

from medtune.deid.types import PhiCategory

__all__ = ["Pattern", "RuleMatch", "PATTERNS", "DEFAULT_PATTERNS", "find_phi", "pattern_names", "common_words",
           "measurement_context", "FACILITY_WORDS"]

I = re.IGNORECASE


@dataclass(frozen=True)
class RuleMatch:
    """One PHI string a pattern found: ``text[start:end]``."""

    start: int
    end: int
    category: PhiCategory
    pattern: str


@dataclass(frozen=True)
class Pattern:
    """A named PHI pattern with the examples that define it (see the module docstring)."""

    name: str
    category: PhiCategory
    regex: re.Pattern[str]
    positives: tuple[tuple[str, str], ...]
    negatives: tuple[str, ...] = ()
    #: names and places: drop captured words that are common words. "lead": the PHI is the leading run
    #: of uncommon words (after a cue: "dr ``smith`` aware"); "tail": the trailing run (before a cue:
    #: "from ``calvert`` hospital"); no such word, no match
    words: str | None = None
    #: no match where the text just before the PHI (up to 40 characters) matches ``before``, or the
    #: text just after it matches ``after`` (context that says "ventilator setting", not "date")
    before: re.Pattern[str] | None = None
    after: re.Pattern[str] | None = None
    #: a cheap regex the text must contain for the pattern to be tried at all (speed only)
    requires: re.Pattern[str] | None = None

    def finditer(self, text: str) -> Iterator[tuple[int, int]]:
        """``(start, end)`` of each PHI string the pattern finds in ``text``."""
        if self.requires is not None and self.requires.search(text) is None:
            return
        for m in self.regex.finditer(text):
            start, end = m.span("phi") if "phi" in self.regex.groupindex else m.span()
            if start < 0 or start == end:
                continue
            if self.before is not None and self.before.search(text, max(0, start - 40), start):
                continue
            if self.after is not None and self.after.match(text, end, min(len(text), end + 40)):
                continue
            if self.words:
                start, end = _name_run(text, start, end, self.words)
                if end <= start:
                    continue
            yield start, end


# ------------------------------------------------------------------------------------ word lists
@lru_cache(maxsize=None)
def common_words() -> frozenset[str]:
    """Lower-case words that are never taken as a name or place after a cue (``lists/not_names.txt``)."""
    return frozenset(w for w in _list_words("not_names.txt"))


def list_lines(name: str) -> list[str]:
    """The non-empty lines of ``lists/NAME``, comments (``# ...``) removed and ends stripped."""
    text = resources.files("medtune.deid").joinpath("lists").joinpath(name).read_text(encoding="utf-8")
    return [kept for line in text.splitlines() if (kept := line.split("#", 1)[0].strip())]


def _list_words(name: str) -> list[str]:
    return [word for line in list_lines(name) for word in line.split()]


_WORD = re.compile(r"[A-Za-z](?:[A-Za-z]|['\-](?=[A-Za-z]))*")
_NOT_NAME_SUFFIX = re.compile(r"(?i).{3,}(?:ing|ed|ly|ion|ions|ment|ness)$")


def is_common_word(word: str) -> bool:
    w = word.lower().strip("'-")
    if w.endswith("'s"):
        w = w[:-2]
    return not w or w in common_words() or _NOT_NAME_SUFFIX.fullmatch(w) is not None


@lru_cache(maxsize=None)
def first_names() -> frozenset[str]:
    """Lower-case given names (``lists/first_names.txt``): "EDWIN PRZYBYLO" is one name, "BURKE SLOW" not."""
    return frozenset(w.lower() for w in _list_words("first_names.txt"))


def _is_initial(text: str, m: re.Match[str]) -> bool:
    return len(m.group()) == 1 and text[m.end():m.end() + 1] == "."


def _title(word: str) -> bool:
    return word[:1].isupper() and not word.isupper()


def _name_run(text: str, start: int, end: int, mode: str) -> tuple[int, int]:
    """The leading (or, before a cue, trailing) run of name words in ``text[start:end]``; empty when none.

    A run stops at a common word. After a cue, a second word joins the first only when the two read
    as one name: an initial between them ("Dr. J. Smith"), both capitalised in mixed-case text
    ("Nancy Jones"), or a known given name first ("EDWIN PRZYBYLO"); upper- or lower-case text
    otherwise keeps one word ("DR BURKE SLOW WEAN", "dr healey took"). A possessive ends a name.
    Mode "each": the pattern's structure says where the name is ("irene snell, rn"); every word must
    be uncommon.
    """
    words = list(_WORD.finditer(text, start, end))
    if mode == "each":
        return (start, end) if words and not any(is_common_word(m.group()) for m in words) else (start, start)
    tail = mode == "tail"
    if tail:
        words.reverse()
    run: list[re.Match[str]] = []
    for m in words:
        word = m.group()
        if is_common_word(word) and not (len(word) == 1 and _is_initial(text, m)):
            break
        if run and not tail:
            prev, first = run[-1], run[0]
            joins = (_is_initial(text, prev) or _is_initial(text, m) or (_title(prev.group()) and _title(word))
                     or first.group().lower() in first_names())
            if not joins:
                break
        run.append(m)
        if not tail and word.lower().endswith("'s"):
            break
    if not run or all(len(m.group()) == 1 for m in run):
        return start, start
    first, last = (run[-1], run[0]) if tail else (run[0], run[-1])
    stop = last.end() - 2 if last.group().lower().endswith("'s") else last.end()  # "Haas's" -> "Haas"
    return first.start(), stop


# ------------------------------------------------------------------------------------ building blocks
_MONTH_HINT = re.compile(r"(?i)jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec")
_MONTH = (r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|"
          r"sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)")
_MM = r"(?:0?[1-9]|1[0-2])"
_DD = r"(?:0?[1-9]|[12][0-9]|3[01])"
_ORD = r"(?:st|nd|rd|th)"
_YEAR4 = r"(?:19[0-9]{2}|20[0-9]{2})"
# not part of a longer number, decimal, ratio or range
_L = r"(?<![\w./:-])"
_R = r"(?![\w/:%]|\.[0-9]|-[0-9])"
# a slash date is not a blood pressure, a strength grade or a fraction of a dose
_MD_NOT_BEFORE = ("bp ", "bp: ", "b/p ", "i:e ", "strength ", "grade ", "gcs ")
_MD_NOT_AFTER = (r"\s*(?:strength|str\b|ns\b|normal saline|tab|tabs\b|dose|mg|ml|cc|units?\b|u\b|"
                 r"hrs?\b|hours?\b|mins?\b|times|x\b(?!-?ray)|power|motor|grips?|muscle|bilat|strengh)")
_NOT_MD_BEFORE = "".join(f"(?<!{re.escape(w)})" for w in _MD_NOT_BEFORE)
_NOT_MD_AFTER = f"(?!{_MD_NOT_AFTER})"
_DATE_MDY = rf"{_L}(?:{_MM}/{_DD}/|{_MM}-{_DD}-)(?:{_YEAR4}|[0-9]{{2}}){_R}"
_DATE_MD = rf"{_L}{_NOT_MD_BEFORE}{_MM}/{_DD}{_R}{_NOT_MD_AFTER}"
_DATE_ISO = rf"{_L}{_YEAR4}(?:/(?:0[1-9]|1[0-2])/|-(?:0[1-9]|1[0-2])-)(?:0[1-9]|[12][0-9]|3[01]){_R}"
# "mar", "may" and "dec" are also words of nursing notes ("dec 2 L", "may 2x"): with a year only
_MONTH_SAFE = (r"(?:jan(?:uary)?|feb(?:ruary)?|march|apr(?:il)?|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|"
               r"oct(?:ober)?|nov(?:ember)?|december)")
_NOT_UNIT = r"(?!\s*(?:cc|ml|mg|mcg|units?\b|u\b|hrs?\b|kcal|cal\b|gm?\b|cm|mm|l\b|%|x\b|-\s*[0-9]|to\s+[0-9]))"
_DATE_DMY_TEXT = (rf"\b{_DD}{_ORD}?(?:\s*of)?[\s-]+(?:{_MONTH}\.?,?[\s-]+(?:{_YEAR4}|'?[0-9]{{2}})(?![0-9]){_NOT_UNIT}|"
                  rf"{_MONTH_SAFE}\b\.?)")
_DATE_MDY_TEXT = (rf"\b(?:{_MONTH}\.?[\s-]+{_DD}{_ORD}?,?\s+(?:{_YEAR4}|'[0-9]{{2}})|{_MONTH_SAFE}\.?[\s-]+{_DD}{_ORD}?)"
                  rf"(?![0-9]){_NOT_UNIT}")
_TIME = (r"(?:(?:[01]?[0-9]|2[0-3]):[0-5][0-9](?:\s*[ap]\.?m\.?)?|(?:[01][0-9]|2[0-3])[0-5][0-9](?:\s*hrs?)?|"
         r"(?:1[0-2]|0?[1-9])\s*[ap]\.?m\.?)")
_CAP = r"[A-Z][A-Za-z'\-]+"  # a capitalised or upper-case word
_ANY = r"[A-Za-z][A-Za-z'\-]*"  # any word (nursing notes write names in lower case too)
_NAMES = rf"(?:[A-Za-z]\.\s*)?{_ANY}(?:\s+[A-Za-z]\.)?(?:\s+{_ANY})?"  # initial, first, initial, last
_FAMILY = (r"(?:son|daughter|dtr|wife|husband|sister|brother|mother|father|niece|nephew|"
           r"grandson|granddaughter|grandaughter|aunt|uncle|friend|cousin|fiance|fiancee|"
           r"(?:health\s*care\s*)?proxy|hcp|significant other|spouse|partner|"
           r"(?:son|daughter|sister|brother|mother|father)-in-law)")
_FACILITY = (r"(?:hospital|hosp|hospiatal|medical center|med ctr|med center|clinic|rehab|rehabilitation|"
             r"health center|nursing home|infirmary|memorial|campus|regional|adventist)")
#: the facility words of the hospital patterns (a regex alternation), for :mod:`medtune.deid.not_phi`
FACILITY_WORDS = _FACILITY

DATE_PATTERNS = (
    Pattern("date_mdy", PhiCategory.DATE, re.compile(_DATE_MDY), (
        ("admitted 07/22/2019 to the unit", "07/22/2019"), ("on 10/18/03 with", "10/18/03"),
        ("4-21-17 B: neuro", "4-21-17"), ("s/p arrest on 8/19/20 who", "8/19/20")),
        ("BP 120/80/60", "ratio 1.2/3/4", "phone 410-322-1419", "dose 12/31/2019.5")),
    Pattern("date_iso", PhiCategory.DATE, re.compile(_DATE_ISO), (
        ("seen 2019-07-22 in clinic", "2019-07-22"), ("on 2003/10/18.", "2003/10/18")),
        ("lot 2019-13-22", "id 12019-07-22")),
    Pattern("date_md", PhiCategory.DATE, re.compile(_DATE_MD, I), (
        ("7/22 FOUND BY HUSBAND", "7/22"), ("extubated 12/11 sent to floor", "12/11"),
        ("cath 3/15 revealed", "3/15"), ("(10/15) will transfuse", "10/15")),
        ("BP 120/80", "BP 9/6", "strength 5/5", "5/5 strength in all", "1/2 NS at 100", "x 2/3 tabs",
         "K 3.9", "ratio 1/2/3", "12/31.5", "2 UNITS", "I:E 1/2", "24/7", "on PSV 10/5 overnight", "CPAP 5/5",
         "rales 1/3 up bilaterally", "c/o 3/10 back pain", "had 8/10 CP", "flowby 6/3", "gave 1/2 amp D50",
         "PEEP/PS 5/8.", "10/5 40% fio2", "on CPAP .5% 5/8. TV low", "wean down to 10/5. tol", "crackles up 1/2 from"),
        before=re.compile(r"(?i)(?:\b(?:cpap|psv|ps|peep|bipap|bi-pap|pap|flowby|flow-by|vent|ventilator|ventilation|"
                          r"ventilated|settings?|support|crackles|rales|pain|c/o|cp|drop|dropped|gave|give|trial|"
                          r"trialed|ips|approx|about|amt|severe|experiencing|discomfort|rated|rates|score|scale|"
                          r"strength|quartermain|wean|weaned|weaning|ac|simv|imv|psv/peep|ps/peep|peep/ps|cpap/ps|"
                          r"d5|cx|cx's|mode|changed|change|decreased|increased|over|sem|murmur)"
                          r"|[&/#])[\s:,]*(?:of\s+|to\s+|at\s+|on\s+)?$"
                          # a ventilator, pain or exam word a few characters back: "CPAP .5% 5/8", "wean
                          # down to 10/5", "crackles up 1/2"
                          r"|\b(?:cpap|psv|peep|bipap|wean|weaned|weaning|crackles|rales|pain)\b[^/\n]{0,12}$"),
        after=re.compile(r"(?i)[\s,;]*(?:up\b|way\b|peep|fio2|[0-9.]+\s*%|%|amps?\b|cp\b|pain|spont|psv|ps\b|cpap|"
                         r"bipap|fio|sats?\b|vent|tv\b|rr\b|intensity|ha\b|headache|discomfort|back\b|chest|"
                         r"abd|abdominal|incisional|on\s+(?:the\s+)?(?:pain|scale)|of\s+(?:the\s+)?(?:time|d50|dose|tab)|"
                         r"rate|bl\b|bld|blood|ns\b|liters?|fick|sem|murmur)")),
    Pattern("date_day_month", PhiCategory.DATE, re.compile(_DATE_DMY_TEXT, I), (
        ("seen 22 Jul 2019 in", "22 Jul 2019"), ("on 3rd of March, 2004", "3rd of March, 2004"),
        ("21 Apr, 21 0700", "21 Apr, 21"), ("on 5 june", "5 june")),
        ("2 mar", "given 2 may be", "2 dec to 1l", "12 mg", "2 may 2000 ml"),
        requires=_MONTH_HINT),
    Pattern("date_month_day", PhiCategory.DATE, re.compile(_DATE_MDY_TEXT, I), (
        ("on July 22nd the", "July 22nd"), ("birthday is may 16, 2015.", "may 16, 2015"),
        ("Jul-22 follow up", "Jul-22"), ("it was July 29th.", "July 29th"), ("JUNE 3, 1999", "JUNE 3, 1999")),
        ("dec 2 liters", "mar 2 cm", "may 2x", "decreased 5"),
        requires=_MONTH_HINT),
    Pattern("date_month_year", PhiCategory.DATE, re.compile(
        rf"\b(?P<phi>{_MONTH}\.?(?:\s+of)?,?\s+(?:{_YEAR4}|'[0-9]{{2}}))(?![0-9]){_NOT_UNIT}", I), (
        ("IN THIS CASE MARCH OF 1993.", "MARCH OF 1993"), ("in march of 2022 pt", "march of 2022"),
        ("since Jan 2004", "Jan 2004"), ("nov, '96", "nov, '96")),
        ("mar 150", "dec 200", "may 2000 ml"),
        requires=_MONTH_HINT),
    Pattern("date_month_alone", PhiCategory.DATE, re.compile(
        r"\b(?:in|since|until|early|late|mid|during|last|next|of|from)\s+(?P<phi>january|february|march|"
        r"april|june|july|august|september|sept|october|november|december)\b(?![-/][0-9])", I), (
        ("in sept. and d/c'd", "sept"), ("since March the pain", "March")),
        ("may be", "march to the bathroom", "in may be"),
        requires=_MONTH_HINT),
    Pattern("year_apostrophe", PhiCategory.DATE, re.compile(r"(?<![\w'])'(?P<phi>[0-9]{2})(?![\w'])"), (
        ("s/p cabg '95(lima", "95"), ("MI in '81 and redo", "81"), ("CABGx4 '79, GERD", "79")),
        ("height 5'10\"", "it's 5 o'clock", "the '95' key'")),
    Pattern("year_context", PhiCategory.DATE, re.compile(
        rf"\b(?:in|of|year|yr|dx|dx'd|diagnosed|s/p|h/o|hx|mi|cabg|cva|ca|tia|ptca|pci|"
        rf"stent|stents|repair|redo|avr|mvr|ablation|pacer|ppm|aicd|bypass|resection|transplant|"
        rf"nephrectomy|mastectomy|born|birth|circa|c\.)(?:\s+x\s*[0-9])?[\s,]+(?P<phi>{_YEAR4})(?![\w/.:]|-[0-9])"
        r"(?!\s*(?:cc|ml|mg|units?|u\b|hrs?|kcal|cal|mcg|gm?\b|-|to\s+[0-9]))", I), (
        ("PMH: CAD, S/P MI 1992; LCX", "1992"), ("RENAL CELL CA 1977,S/P", "1977"), ("in march of 2022", "2022"),
        ("a chest ache in 2006 but", "2006"), ("CVA 2004, hernia", "2004")),
        ("since 1900 pt", "in 2000 cc", "from 1930 - 0700", "of 1100 units", "at 2130 arrived"),
        requires=re.compile(r"19[0-9]{2}|20[0-9]{2}")),
    # 1960-1999 cannot be a clock time (no minute 60-99); 1900-1959 and 2000-2059 after "since" may be one
    Pattern("year_since", PhiCategory.DATE, re.compile(
        r"\b(?:since|from|until|till|after|before|around|about|by|early|late|mid)[\s,]+(?P<phi>19[6-9][0-9])"
        r"(?![\w/.:]|-[0-9])(?!\s*(?:cc|ml|mg|units?\b|u\b|hrs?\b|kcal|mcg|-|to\s+[0-9]))", I), (
        ("chest pain since 1992 but", "1992"), ("sober from 1985 on", "1985")),
        ("since 1900 pt", "from 1930 - 0700", "since 1995 cc"),
        requires=re.compile(r"19[6-9][0-9]")),
    Pattern("year_event_short", PhiCategory.DATE, re.compile(
        r"\b(?:mi|cabg|cva|tia|ptca|pci|stent|repair|redo|avr|mvr|ablation|pacer|ppm|aicd|turp|chole|"
        r"appy|tah|bso|thr|tkr|orif|lap)(?:\s*x\s*[0-9])?[\s,]+(?P<phi>[0-9]{2})(?![\w./:%]|-[0-9]|\s*(?:%|mm|cm|"
        r"mg|cc|ml|units?\b|hrs?\b|bpm|beats|/))", I), (
        ("PMH MI 92, 3 VCABG", "92"), ("CABG 81, Redo CABG 84, MVR", "81")),
        ("MI 1992", "HR 92, BP", "CVA 2.5 cm"),
        requires=re.compile(r"[0-9]{2}")),
    Pattern("holiday", PhiCategory.DATE, re.compile(
        r"\b(?:christmas|xmas|thanksgiving|easter|new year'?s(?: day| eve)?|hanukkah|halloween|"
        r"independence day|labor day|memorial day)\b", I), (("home for christmas", "christmas"),),
        ("merry", "labor and delivery"),
        requires=re.compile(r"(?i)christmas|xmas|thanksgiving|easter|new year|hanukkah|halloween|independence|labor day|memorial day")),
)

OTHER_PATTERNS = (
    Pattern("time_after_date", PhiCategory.TIME, re.compile(
        rf"(?:{_DATE_MDY}|{_DATE_ISO}|{_L}{_MM}/{_DD}{_R}|\b{_MONTH}\.?\s+{_DD}{_ORD}?(?:,?\s+{_YEAR4})?)"
        rf",?\s+(?:at\s+|@\s*)?(?P<phi>{_TIME})(?![\w:])", I), (
        ("10/22/03, 1900 Neuro", "1900"), ("seen 7/22 at 14:30 in", "14:30"), ("2019-07-22 09:15am", "09:15am")),
        ("at 1900 neuro", "7/22 1 unit", "BP 120/80 1400"),
        requires=re.compile(r"[0-9]")),
    Pattern("phone", PhiCategory.PHONE, re.compile(
        r"(?<![\w/.])(?<![0-9]-)(?:\+?1[\s.-])?(?:\([2-9][0-9]{2}\)\s*|[2-9][0-9]{2}(?:[\s.-]|-\s)\s?)"
        r"[2-9][0-9]{2}(?:[\s.-]|-\s)\s?[0-9]{4}(?:\s*(?:x|ext\.?|extension)\s*[0-9]{1,5})?(?![\w/]|\.[0-9])", I), (
        ("Phone # 858-492-5403, W:", "858-492-5403"), ("update: 410 392 0780 x45.", "410 392 0780 x45"),
        ("KRISSY---301 944-5032 &", "301 944-5032"), ("call (410) 555-1234 today", "(410) 555-1234"),
        ("dtr Frances Baker- 212- 476- 8356.", "212- 476- 8356"), ("+1 410.555.0199", "+1 410.555.0199")),
        ("BP 120/80", "dates 10-12-2019", "id 1234567", "INR 2.0; PT 17.5", "1100 UNITS", "ssn 123-45-6789",
         "NOTE 1900-0700", "SVR 900-1100", "PEEP VT 460. 2100 BECAME", "555-1234"),
        requires=re.compile(r"[0-9]{4}")),
    Pattern("phone_keyword", PhiCategory.PHONE, re.compile(
        r"\b(?:phone|ph|tel|telephone|cell|cellphone|mobile|home|work|office|pager|pgr|beeper|fax|"
        r"fax number|contact|call|reached at)(?:\s*(?:#|no\.?|number|num))?[\s:#.]*(?P<phi>\(?[0-9][0-9()\s.-]{3,14}[0-9])"
        r"(?![\w/]|\.[0-9])", I), (
        ("Pager 83554.", "83554"), ("beeper number 55037 for", "55037"), ("Pager # 98765 Time", "98765"),
        ("fax: 410.555.0123", "410.555.0123")),
        ("home 2 days", "work of breathing", "office visit", "cell count 12", "call 2 times"),
        requires=re.compile(r"[0-9]{4}")),
    Pattern("email", PhiCategory.EMAIL, re.compile(
        r"(?<![\w.+-])[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){0,8}\.[A-Za-z]{2,24}\b"), (
        ("email jane.doe@example.org today", "jane.doe@example.org"),),
        ("at @ 1400", "a@b"),
        requires=re.compile(r"@")),
    Pattern("url", PhiCategory.URL, re.compile(
        r"\b(?:https?://|www\.)[^\s<>\"')\]]{2,2000}(?<![.,;:])|"
        r"\b[A-Za-z0-9-]{2,63}\.(?:com|org|net|edu|gov|info|io)(?:/[^\s<>\"')\]]{0,2000}(?<![.,;:]))?\b", I), (
        ("see https://portal.example.org/p?id=7.", "https://portal.example.org/p?id=7"),
        ("www.hospital-x.com", "www.hospital-x.com"), ("at mychart.org/login", "mychart.org/login")),
        ("p.o. meds", "e.g. fever", "1.5 mg"),
        requires=re.compile(r"(?i)www\.|://|\.(?:com|org|net|edu|gov|info|io)\b")),
    Pattern("ip_address", PhiCategory.IP, re.compile(
        r"(?<![\w./])(?:(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
        r"(?![\w]|\.[0-9])|(?<![\w:])(?:[0-9a-f]{1,4}:){7}[0-9a-f]{1,4}(?![\w:])", I), (
        ("from 192.168.10.25 at", "192.168.10.25"), ("host 2001:0db8:85a3:0000:0000:8a2e:0370:7334",
                                                      "2001:0db8:85a3:0000:0000:8a2e:0370:7334")),
        ("pH 7.35", "1.2.3", "version 1.2.3.4.5", "999.1.1.1", "abg 80/48/7.45.34.7"),
        requires=re.compile(r"[0-9]\.[0-9]{1,3}\.[0-9]|:[0-9a-fA-F]{1,4}:")),
    Pattern("ssn", PhiCategory.ID, re.compile(r"(?<![\w-])(?!000|666|9[0-9]{2})[0-9]{3}-(?!00)[0-9]{2}-(?!0000)[0-9]{4}"
                                              r"(?![\w]|-[0-9])"), (
        ("SSN 123-45-6789.", "123-45-6789"),),
        ("phone 410-322-1419", "12-34-5678", "000-12-3456"),
        requires=re.compile(r"[0-9]{3}-[0-9]{2}-[0-9]{4}")),
    Pattern("record_number", PhiCategory.ID, re.compile(
        r"\b(?:(?:mrn|mr\s*#|mr\s*no\.?|medical\s+record(?:\s+(?:number|no\.?|#))?|acct|account|acc\s*#|"
        r"lic(?:ense|ence)?|licence|dea|npi|ssn|social\s+security(?:\s+number)?|medicaid|medicare|hic|"
        r"patient\s+id|pt\s+id)(?:\s*(?:#|no\.?|num(?:ber)?))?|(?:record|unit|ref(?:erence)?|case|claim|"
        r"policy|member|id|serial|device|insurance|plan|group|chart)\s*(?:#|no\.|num(?:ber)?))[\s:#.=]*"
        r"(?P<phi>(?=[A-Za-z0-9-]*[0-9])[A-Za-z0-9][A-Za-z0-9-]{3,20})(?![\w-])", I), (
        ("MRN: 12345678 seen", "12345678"), ("MR# 0012-345", "0012-345"), ("acct 998877", "998877"),
        ("lic # MD12345", "MD12345"), ("(ref # 8336652).", "8336652"), ("hospital policy #rg17,at", "rg17"),
        ("ID# 44-1234", "44-1234")),
        ("id consult", "case 2 units", "licensed", "mr 2+", "member of the family", "ID: TMAX-99, WBC",
         "ref 1234"),
        requires=re.compile(r"[0-9]{2}")),
    Pattern("zip_code", PhiCategory.LOCATION, re.compile(
        r"\b(?:AL|AK|AZ|AR|CA|CO|CT|DE|DC|FL|GA|HI|ID|IL|IN|IA|KS|KY|LA|ME|MD|MA|MI|MN|MS|MO|MT|NE|NV|NH|NJ|NM|NY|"
        r"NC|ND|OH|OK|OR|PA|RI|SC|SD|TN|TX|UT|VT|VA|WA|WV|WI|WY|Maryland|Virginia|zip|zip\s*code)[,:]?\s+"
        r"(?P<phi>[0-9]{5}(?:-[0-9]{4})?)(?![\w-])", I), (
        ("Baltimore, MD 21201.", "21201"), ("zip 21204-1234", "21204-1234"), ("Towson, Maryland 21286", "21286")),
        ("MD 2 units", "pa line 35", "zip it", "MD 123456"),
        requires=re.compile(r"[0-9]{5}")),
    Pattern("postcode_keyword", PhiCategory.LOCATION, re.compile(
        r"\b(?:postcode|post\s*code|postal\s*code)[:\s]+(?P<phi>[A-Z]{1,2}[0-9][A-Z0-9]?\s*[0-9][A-Z]{2}|"
        r"[0-9]{4,6})(?![\w])", I), (
        ("postcode: SW1A 1AA", "SW1A 1AA"), ("postal code 10115,", "10115")),
        ("postcode unknown", "CO2 5MG"),
        requires=re.compile(r"(?i)post")),
    Pattern("street_address", PhiCategory.LOCATION, re.compile(
        r"(?<![\w/.])(?P<phi>[0-9]{1,5}(?:\s+[A-Z][a-z]+){1,3}\s+(?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|"
        r"Lane|Ln|Drive|Court|Ct|Way|Place|Pl|Terrace|Circle|Pike|Parkway)\b\.?|[0-9]{1,5}(?:\s+[A-Z]+){1,3}"
        r"\s+(?:STREET|AVENUE|ROAD|BOULEVARD|LANE|DRIVE|COURT|TERRACE|PARKWAY))"), (
        ("housing at 19 Clover St. in Lansdowne", "19 Clover St."), ("LIVES AT 12 OAK HILL ROAD WITH", "12 OAK HILL ROAD")),
        ("GAVE 2 MG PER DR SMITH", "2 Units Per Dr", "given 5 mg by Dr"),
        requires=re.compile(r"[0-9] +[A-Z]")),
    Pattern("age_over_89", PhiCategory.AGE, re.compile(
        r"(?<![\w.])(?P<phi>9[0-9]|1[0-1][0-9])(?:\s*|-)(?:years?|yrs?|y\.?\s?o\.?|y/o|yo|yom|yof|yowm|yowf)"
        r"(?![a-z])", I), (
        ("a 92 year old man", "92"), ("98 yo gentleman", "98"), ("91yo male", "91"), ("93-year-old", "93"),
        ("98 y/o", "98"), ("95 y.o. woman", "95")),
        ("58 YEAR OLD FEMALE", "85 yo", "HR 92", "92 units", "sats 95%", "9.5 yo"),
        requires=re.compile(r"(?<![0-9])(?:9[0-9]|1[01][0-9])(?![0-9])")),
    Pattern("age_keyword_over_89", PhiCategory.AGE, re.compile(
        r"\b(?:age|aged|age:)\s*(?P<phi>9[0-9]|1[0-1][0-9])(?!\w|\.[0-9])", I), (
        ("age 95, lives", "95"), ("aged 101.", "101")),
        ("age 45", "page 95", "dosage 95"),
        requires=re.compile(r"(?i)age")),
)

NAME_PATTERNS = (
    Pattern("name_title", PhiCategory.NAME, re.compile(
        rf"\b(?:dr|doctor|docter|mr|mrs|(?-i:Ms)|miss|mister|prof|professor)(?:\.\s*|\s+)(?P<phi>{_NAMES})", I), (
        ("followed at gh by dr healey. she", "healey"), ("per Dr. Murphy- pt", "Murphy"),
        ("mr. Masci was having", "Masci"), ("Ms. Lee said", "Lee"), ("MR. EDWIN PRZYBYLO is", "EDWIN PRZYBYLO"),
        ("Dr. J. Smith aware", "J. Smith"), ("Mrs. Haas stated", "Haas"), ("PER DR BURKE SLOW WEAN", "BURKE"),
         ),
        ("DR AWARE OF", "MR changes", "mr and tr", "Dr. to call", "MR 2+ noted",
         "SEE MD NOTES", "NP aware", "PA line", "on 5l np. GU-foley", "no affect on MS. Verbal",
         "STRONG NP COUGH", "monitor MS. OOB as tol"), words="lead"),
    Pattern("name_initial", PhiCategory.NAME, re.compile(
        r"(?<![\w./'&<>+-])(?P<phi>[B-HJKMNQTU-Z]\.\s?[A-Z][a-z][A-Za-z'\-]*|[B-HJKMNQTU-Z]\.\s[A-Z]{2}[A-Z'\-]*)"
        r"(?!\w|\.[A-Za-z])"), (
        ("E. WELSH AWARE", "E. WELSH"), ("Z. MILLER IN TO STRIP", "Z. MILLER"), ("Reported to D. Phyl.", "D. Phyl"),
        ("PER K. ABRAMS PA.", "K. ABRAMS"), ("-> J. Chang PA into", "J. Chang")),
        ("E. COLI IN URINE", "S. aureus", "C. DIFF NEG", "A. FIB", "P. CONTINUE", "A. Plan:", "90'S. SATS",
         "O. SEE CAREVUE", "R. FEMORAL", "DC'D. RIJ", "C/S,A.TYLENOL", "dressing D & I. Minimal", "L>R. Tidal",
         "W&D. Art line", "N&V. Ate snack"), words="lead"),
    Pattern("name_credential", PhiCategory.NAME, re.compile(
        rf"(?<![\w.])(?P<phi>[A-Z][a-z'\-]+(?:\s+[A-Z]\.?)?(?:\s+[A-Z][a-z'\-]+)?|[A-Z][A-Z'\-]+(?:\s+[A-Z]\.)?"
        rf"\s+[A-Z][A-Z'\-]+(?=,|\s+(?:RRT|RN|NP|CRT)\b))[,\s]+(?:RN|R\.N\.|RRT|CRT|NP|MSW|LICSW|CRNP|PA-C|MD|"
        rf"M\.D\.|LPN|CNA|BSN)\b(?!,?\s*[0-9]{{5}})"), (
        ("data. Nancy Jones, RN", "Nancy Jones"), ("David Murray RRT", "David Murray"), ("Bernard Lowe CRT", "Bernard Lowe"),
        ("EDWARD C. JONES, RRT", "EDWARD C. JONES"), ("Seen by J. Yi, MD.", "Yi")),
        ("plan with MD", "Seen By PT", "SEEN BY MD", "Discussed With MD", "Family Meeting With RN", "A/P- PT WITH",
         "URINE IS NOW BLOOD TINGED, PT NOTED", "WITH TRANSPORT AND RN", "LUNGS COARSE, RN TO",
         "lives in Baltimore, MD 21201"), words="each"),
    Pattern("name_credential_lower", PhiCategory.NAME, re.compile(
        r"(?<![\w.])(?P<phi>[a-z][a-z'\-]+(?:\s+[a-z]\.?)?\s+[a-z][a-z'\-]+),?\s+(?:rn|np|rrt|crt|bsn/rn|msw|"
        r"licsw|licws)\b"), (
        ("irene snell, rn", "irene snell"), ("barbara j. parrilli bsn/rn", "barbara j. parrilli"),
        ("florencia cooke np into eval", "florencia cooke")),
        ("discussed with np", "pt seen by rn", "report given to rn", "called covering np"), words="each"),
    Pattern("name_is", PhiCategory.NAME, re.compile(rf"\b(?:name\s+is|named|called\s+me)\s+(?P<phi>{_NAMES})", I), (
        ("her name is Ann Lee and", "Ann Lee"), ("my name is ROSE", "ROSE")),
        ("name is on the chart", "named in the"), words="lead",
        requires=re.compile(r"(?i)name|called me")),
    Pattern("name_family", PhiCategory.NAME, re.compile(
        rf"\b{_FAMILY}(?:\s*\(\w+\))?[\s,:;\-]+(?P<phi>{_NAMES})", I), (
        ("social: son Bill called twice", "Bill"), ("Daughter Maria called", "Maria"),
        ("SOCIAL:DAUGHTER-KRISSY---301", "KRISSY"), ("mother, Janet Gateman, called", "Janet Gateman"),
        ("Nephew, Neil Meitz of Towson", "Neil Meitz")),
        ("son called twice", "daughter in to visit", "wife and son visited", "son-in-law is here",
         "sister was updated", "friend visiting", "SO FAR", "GIVEN MOM X1", "husband,multiple phone calls"),
        words="lead",
        requires=re.compile(r"(?i)son|daughter|dtr|wife|husband|sister|brother|mother|father|niece|nephew|aunt|uncle|friend|cousin|fianc|proxy|hcp|significant|spouse|partner")),
    Pattern("name_signed", PhiCategory.NAME, re.compile(
        rf"(?:^|\n)[ \t]*(?:-+\s*)?(?P<phi>[A-Z][a-z'\-]+\s+(?:[A-Z]\.\s*)?[A-Z][a-z'\-]+)[ \t]*(?:,?[ \t]*"
        rf"(?:RN|RRT|NP|MSW|MD|LPN|SN|RN,\s*BSN)[ \t]*$|\s*\Z)", re.MULTILINE), (
        ("Plan: rest.\n   Ilene Macdonald RN  \n", "Ilene Macdonald"), ("Plan: rest.\n  Mary Hulse  \n", "Mary Hulse")),
        ("\nNeuro Exam\n", "\nplan continue\n", "\nPlan: Continue Lasix\n", "COPD\n  Cor Pulmonale\n  Pt. arrived"),
        words="each"),
)

PLACE_PATTERNS = (
    Pattern("hospital", PhiCategory.LOCATION, re.compile(
        rf"\b(?P<phi>(?:st\.?\s+)?{_ANY}(?:[\s-]+{_ANY})?)\s+{_FACILITY}\b", I), (
        ("TRANSFER FROM CALVERT HOSPITAL FOR", "CALVERT"), ("from Holy Cross Hospital.", "Holy Cross"),
        ("taken to kernan hosp. she", "kernan"), ("to St. Mary Hospital. She", "St. Mary"),
        ("from Kessler-Adventist Hosp for", "Kessler-Adventist")),
        ("transferred to the hospital", "discharge to rehab", "cardiac rehab", "outside hospital",
         "in the hospital for", "to osh hospital"), words="tail",
        requires=re.compile(r"(?i)hosp|medical|med c|clinic|rehab|health|nursing h|infirm|memorial|campus|regional|adventist")),
    Pattern("lives_in", PhiCategory.LOCATION, re.compile(
        rf"\b(?:lives|living|resides|residing|vacationing|vacation|moved)\s+"
        rf"(?:alone\s+|nearby\s+|with\s+\w+\s+)?(?:in|at|to)\s+(?:the\s+)?(?P<phi>{_ANY}(?:\s+{_ANY})?)", I), (
        ("pt married, lives in catonsville, husband", "catonsville"), ("LIVES AT KEELEY HOUSE.", "KEELEY"),
        ("vacationing in Daytona Beach when", "Daytona Beach")),
        ("lives in elderly housing", "lives alone in a home", "lives in the home", "returned to baseline",
         "resides in community shelter"), words="lead",
        requires=re.compile(r"(?i)liv|resid|vacation|moved")),
    Pattern("place_of", PhiCategory.LOCATION, re.compile(
        rf"\b(?i:{_FAMILY}|family|friend)\s+(?:{_CAP}\s+){{1,2}}(?:of|from)\s+(?P<phi>{_CAP}(?:\s+{_CAP})?)"), (
        ("Nephew Neil Meitz of Towson visited", "Towson"),
        ("daughter Grace of Reisterstown visited", "Reisterstown")),
        ("daughter Grace of the family", "son Bill of"), words="lead",
        requires=re.compile(r"(?i) of | from ")),
)

PATTERNS: tuple[Pattern, ...] = DATE_PATTERNS + OTHER_PATTERNS + NAME_PATTERNS + PLACE_PATTERNS
#: Clock times are not among HIPAA's Safe Harbor identifiers, and the PhysioNet deid gold does not mark them
#: (on its dev notes the time pattern only found false positives, "8/25 @ 1230"): the detector runs them
#: only when asked (``times=True``, ``times: true``, ``medtune deid --times``).
TIME_PATTERN_NAMES = frozenset({"time_after_date"})
DEFAULT_PATTERNS: tuple[Pattern, ...] = tuple(p for p in PATTERNS if p.name not in TIME_PATTERN_NAMES)


def pattern_names() -> list[str]:
    return [p.name for p in PATTERNS]


def find_phi(text: str, patterns: tuple[Pattern, ...] = PATTERNS) -> list[RuleMatch]:
    """Every PHI string the patterns find in ``text``, sorted by offset (matches may overlap)."""
    found = [RuleMatch(start, end, p.category, p.name) for p in patterns for start, end in p.finditer(text)]
    return sorted(found, key=lambda m: (m.start, -m.end, m.pattern))


_MEASURE_BEFORE = re.compile("(?i)(?:" + "|".join(re.escape(w) for w in _MD_NOT_BEFORE) + ")$")
_MEASURE_AFTER = re.compile(f"(?i){_MD_NOT_AFTER}")


def measurement_context(text: str, start: int, end: int) -> bool:
    """Whether the word just before or just after the number pair ``text[start:end]`` makes it a blood
    pressure, a strength, a grade or a dose rather than a date ("BP 120/80", "GCS 3/15", "5/5 strength",
    "3/4 str", "1/2 tab"): the words next to which the ``date_md`` pattern never sees a date."""
    return bool(_MEASURE_BEFORE.search(text, max(0, start - 10), start)
                or _MEASURE_AFTER.match(text, end, min(len(text), end + 40)))

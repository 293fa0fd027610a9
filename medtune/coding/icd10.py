"""ICD-10-CM and ICD-10-PCS: code descriptions and the roll-up of a code to its category and chapter.

Roll-up needs no data (the ranges are part of the classification):

* ICD-10-CM (diagnoses): category = the first 3 characters (``S22.42XA`` -> ``S22``); chapter = the
  chapter whose category range holds it (``S22`` -> ``19``, "Injury, poisoning ... (S00-T88)").
* ICD-10-PCS (procedures): category = the first 4 characters (section, body system, root operation,
  body part: ``BW03ZZZ`` -> ``BW03``), as the CodiEsp organisers roll procedures up (its gold has
  4-character codes such as ``bn20``); chapter = the section, the first character (``B`` Imaging).

Descriptions (used to initialise label queries and shown beside predicted codes), in this order for
``descriptions="auto"``:

1. the ``simple-icd-10-cm`` package (extra ``medtune[coding]``; MIT; the CDC ICD-10-CM April 2026
   release): every code, e.g. ``R52`` "Pain, unspecified". It parses its XML on first use (seconds).
2. ``<MEDTUNE_DATA_DIR>/vocab/icd10cm_hierarchy`` (CDC categories, chapters and sections, public
   domain): the description of the code's *category* only (marked ``approximate``).
3. none: ``description()`` returns None.

There is no maintained PCS package here: PCS codes get no description (their category and section roll-up
still work). CodiEsp was coded with the Spanish CIE-10-ES 2018 edition of ICD-10-CM; a code that the
2026 release dropped or renamed has no description from the package (counted by ``coverage``).
"""

from __future__ import annotations

import csv
import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Literal

from medtune.errors import ConfigError, MissingExtraError

SYSTEMS = ("ICD-10-CM", "ICD-10-PCS")
DescriptionSource = Literal["auto", "package", "vocab", "none"]
VOCAB_FOLDER = Path("vocab") / "icd10cm_hierarchy"
EXTRA = "coding"

#: ICD-10-CM chapters: (number, first category, last category, title); CDC ICD-10-CM 2026
CM_CHAPTERS: tuple[tuple[str, str, str, str], ...] = (
    ("1", "A00", "B99", "Certain infectious and parasitic diseases"),
    ("2", "C00", "D49", "Neoplasms"),
    ("3", "D50", "D89", "Diseases of the blood and blood-forming organs and certain disorders involving the "
                        "immune mechanism"),
    ("4", "E00", "E89", "Endocrine, nutritional and metabolic diseases"),
    ("5", "F01", "F99", "Mental, Behavioral and Neurodevelopmental disorders"),
    ("6", "G00", "G99", "Diseases of the nervous system"),
    ("7", "H00", "H59", "Diseases of the eye and adnexa"),
    ("8", "H60", "H95", "Diseases of the ear and mastoid process"),
    ("9", "I00", "I99", "Diseases of the circulatory system"),
    ("10", "J00", "J99", "Diseases of the respiratory system"),
    ("11", "K00", "K95", "Diseases of the digestive system"),
    ("12", "L00", "L99", "Diseases of the skin and subcutaneous tissue"),
    ("13", "M00", "M99", "Diseases of the musculoskeletal system and connective tissue"),
    ("14", "N00", "N99", "Diseases of the genitourinary system"),
    ("15", "O00", "O9A", "Pregnancy, childbirth and the puerperium"),
    ("16", "P00", "P96", "Certain conditions originating in the perinatal period"),
    ("17", "Q00", "QA0", "Congenital malformations, deformations and chromosomal abnormalities"),
    ("18", "R00", "R99", "Symptoms, signs and abnormal clinical and laboratory findings, not elsewhere classified"),
    ("19", "S00", "T88", "Injury, poisoning and certain other consequences of external causes"),
    ("20", "V00", "Y99", "External causes of morbidity"),
    ("21", "Z00", "Z99", "Factors influencing health status and contact with health services"),
    ("22", "U00", "U85", "Codes for special purposes"),
)

#: ICD-10-PCS sections (the first character of a code)
PCS_SECTIONS: dict[str, str] = {
    "0": "Medical and Surgical", "1": "Obstetrics", "2": "Placement", "3": "Administration",
    "4": "Measurement and Monitoring", "5": "Extracorporeal or Systemic Assistance and Performance",
    "6": "Extracorporeal or Systemic Therapies", "7": "Osteopathic", "8": "Other Procedures", "9": "Chiropractic",
    "B": "Imaging", "C": "Nuclear Medicine", "D": "Radiation Therapy",
    "F": "Physical Rehabilitation and Diagnostic Audiology", "G": "Mental Health", "H": "Substance Abuse Treatment",
    "X": "New Technology",
}


def check_system(system: str) -> str:
    if system not in SYSTEMS:
        raise ConfigError(f"unknown code system {system!r}", fix=f"use one of: {', '.join(SYSTEMS)}")
    return system


def compact(code: str) -> str:
    """Upper case, no dot or white space: ``s22.42xa`` -> ``S2242XA``."""
    return "".join(code.split()).replace(".", "").upper()


def category(code: str, system: str = "ICD-10-CM") -> str:
    """The 3-character ICD-10-CM category, or the 4-character ICD-10-PCS category (see the module doc)."""
    return compact(code)[: 3 if check_system(system) == "ICD-10-CM" else 4]


def chapter(code: str, system: str = "ICD-10-CM") -> str | None:
    """The ICD-10-CM chapter number (``"19"``) or ICD-10-PCS section character (``"B"``); None when the
    code lies in no chapter (not a code of the system)."""
    if check_system(system) == "ICD-10-PCS":
        head = compact(code)[:1]
        return head if head in PCS_SECTIONS else None
    cat = category(code, system)
    if len(cat) != 3:
        return None
    for number, first, last, _ in CM_CHAPTERS:
        if first <= cat <= last:  # categories are letter + 2 characters: string order is code order
            return number
    return None


def chapter_title(number: str, system: str = "ICD-10-CM") -> str | None:
    if check_system(system) == "ICD-10-PCS":
        return PCS_SECTIONS.get(number)
    return next((title for n, _, _, title in CM_CHAPTERS if n == number), None)


def roll_up(codes: Iterable[str], level: str, system: str = "ICD-10-CM") -> list[str]:
    """``codes`` at ``level`` (``code``, ``category`` or ``chapter``), in first-seen order, without repeats
    (codes outside every chapter are dropped at chapter level)."""
    out: dict[str, None] = {}
    for code in codes:
        if level == "code":
            key: str | None = code
        elif level == "category":
            key = category(code, system)
        elif level == "chapter":
            key = chapter(code, system)
        else:
            raise ValueError(f"unknown level {level!r}")
        if key is not None:
            out.setdefault(key, None)
    return list(out)


# ---------------------------------------------------------------------------------------- descriptions
@dataclass(frozen=True)
class Description:
    text: str
    source: str  # "simple-icd-10-cm <version>" or "icd10cm_hierarchy (category)"
    approximate: bool = False  # the category's description stands in for the code's


@dataclass(frozen=True)
class CodeSystem:
    """A code system with the description source that answered (``source`` None: no descriptions)."""

    name: str
    source: str | None
    version: str
    lookup: Callable[[str], Description | None]

    def description(self, code: str) -> Description | None:
        return self.lookup(code) if self.source is not None else None

    def coverage(self, codes: Iterable[str]) -> dict[str, int]:
        """How many of ``codes`` have an exact, an approximate (category) or no description."""
        out = {"exact": 0, "approximate": 0, "none": 0}
        for code in codes:
            found = self.description(code)
            out["none" if found is None else "approximate" if found.approximate else "exact"] += 1
        return out

    def info(self) -> dict[str, str | None]:
        """What a model's metadata and card record about the code system."""
        return {"name": self.name, "version": self.version, "descriptions": self.source}


@functools.lru_cache(maxsize=1)
def _package() -> tuple[object, str]:
    try:
        import simple_icd_10_cm as module  # parses the whole classification on import (seconds)
    except ImportError:
        raise MissingExtraError("ICD-10-CM code descriptions from simple-icd-10-cm", EXTRA) from None
    try:
        from importlib.metadata import version

        release = version("simple-icd-10-cm")
    except Exception:  # pragma: no cover - metadata missing in a vendored copy
        release = "unknown"
    return module, release


def package_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("simple_icd_10_cm") is not None


def _package_lookup(code: str) -> Description | None:
    module, release = _package()
    key = compact(code)
    if not module.is_valid_item(key):  # type: ignore[attr-defined]
        return None
    return Description(module.get_description(key), f"simple-icd-10-cm {release}")  # type: ignore[attr-defined]


def vocab_dir(data_dir: str | Path | None = None) -> Path | None:
    """``<data dir>/vocab/icd10cm_hierarchy`` when it holds the categories file, else None."""
    root = Path(data_dir) if data_dir is not None else (
        Path(os.environ["MEDTUNE_DATA_DIR"]) if os.environ.get("MEDTUNE_DATA_DIR") else None)
    if root is None:
        return None
    folder = root / VOCAB_FOLDER
    return folder if folder.is_dir() and any(folder.glob("icd10cm-categories-*.csv")) else None


@functools.lru_cache(maxsize=4)
def vocab_categories(folder: str) -> tuple[dict[str, str], str]:
    """(category -> description, release) from the CDC categories CSV of ``folder``."""
    path = sorted(Path(folder).glob("icd10cm-categories-*.csv"))[-1]
    release = path.stem.removeprefix("icd10cm-categories-")
    with open(path, encoding="utf-8", newline="") as handle:
        rows = {r["ICD10-CM-CODE"].strip().upper(): r["description"].strip() for r in csv.DictReader(handle)}
    return rows, release


def code_system(system: str = "ICD-10-CM", descriptions: DescriptionSource = "auto",
                data_dir: str | Path | None = None) -> CodeSystem:
    """The code system with the first description source of ``descriptions`` that is there.

    ``package`` without ``simple-icd-10-cm`` raises :class:`~medtune.errors.MissingExtraError` (E500);
    ``vocab`` without the vocabulary folder raises ConfigError; ``auto`` takes what it finds."""
    check_system(system)
    if descriptions not in ("auto", "package", "vocab", "none"):
        raise ConfigError(f"unknown description source {descriptions!r}", fix="use auto, package, vocab or none")
    if system == "ICD-10-PCS" or descriptions == "none":
        return CodeSystem(system, None, "any release (roll-up only)", lambda code: None)
    if descriptions == "package" or (descriptions == "auto" and package_available()):
        _, release = _package()
        return CodeSystem(system, f"simple-icd-10-cm {release}", "ICD-10-CM as released by the CDC (the package's "
                          f"release; simple-icd-10-cm {release})", _package_lookup)
    folder = vocab_dir(data_dir)
    if folder is None:
        if descriptions == "vocab":
            raise ConfigError(f"no ICD-10-CM vocabulary under $MEDTUNE_DATA_DIR/{VOCAB_FOLDER}",
                              fix=f"set MEDTUNE_DATA_DIR, or pip install 'medtune[{EXTRA}]' -c constraints.txt "
                                  "and use descriptions: package")
        return CodeSystem(system, None, "any release (roll-up only)", lambda code: None)
    rows, release = vocab_categories(str(folder))

    def lookup(code: str) -> Description | None:
        cat = category(code, system)
        text = rows.get(cat)
        if text is None:
            return None
        return Description(text, f"icd10cm_hierarchy {release} (category)", approximate=compact(code) != cat)

    return CodeSystem(system, f"icd10cm_hierarchy {release} (categories)", f"ICD-10-CM {release} (CDC)", lookup)

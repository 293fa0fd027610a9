"""The PHI categories of de-identification, and how corpus labels map onto them.

A detector (rules or the NER model) labels each PHI span with a *category* below; the replacement
step picks a surrogate by category. Corpora keep their own fine-grained types (PhysioNet deid:
``HCPName``, ``PTName``, ...) as span labels; :func:`category_of` maps any label, corpus type or
category, to the category. Evaluation reports recall per corpus type.
"""

from __future__ import annotations

from enum import Enum


class PhiCategory(str, Enum):
    NAME = "NAME"  # a person's name (patient, relative, clinician)
    INITIALS = "INITIALS"  # a person's initials
    DATE = "DATE"  # any date or part of one more specific than the year alone (HIPAA), and years
    TIME = "TIME"  # a clock time attached to a date
    AGE = "AGE"  # an age (HIPAA: over 89)
    PHONE = "PHONE"  # telephone and fax numbers
    EMAIL = "EMAIL"
    URL = "URL"
    IP = "IP"  # IP addresses
    ID = "ID"  # record, account, licence, device, SSN-like and other identifying numbers
    LOCATION = "LOCATION"  # addresses, cities, postcodes, hospitals and other facilities
    OTHER = "OTHER"  # any other identifying text


#: Corpus span labels (PhysioNet deid 1.1) -> category.
CORPUS_TYPES: dict[str, PhiCategory] = {
    "HCPName": PhiCategory.NAME,
    "PTName": PhiCategory.NAME,
    "RelativeProxyName": PhiCategory.NAME,
    "PTNameInitial": PhiCategory.INITIALS,
    "Date": PhiCategory.DATE,
    "DateYear": PhiCategory.DATE,
    "Age": PhiCategory.AGE,
    "Phone": PhiCategory.PHONE,
    "Location": PhiCategory.LOCATION,
    "Other": PhiCategory.OTHER,
}


def category_of(label: str) -> PhiCategory:
    """The category of a span label: a category name itself, a known corpus type, else ``OTHER``."""
    try:
        return PhiCategory(label)
    except ValueError:
        return CORPUS_TYPES.get(label, PhiCategory.OTHER)

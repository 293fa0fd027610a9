"""Clinical coding: code systems (ICD-10-CM / ICD-10-PCS descriptions and roll-up) and the evidence a
coding model gives for each code. The ``coding`` task lives in :mod:`medtune.tasks.coding`."""

from medtune.coding.icd10 import CodeSystem, category, chapter, code_system, roll_up

__all__ = ["CodeSystem", "category", "chapter", "code_system", "roll_up"]

"""Errors users can act on.

Every error says where the problem is (file, line, field or document id), what is wrong and how to
fix it. None of them ever includes note text: documents may hold PHI, so messages name positions and
ids, never content.
"""

from __future__ import annotations

from pathlib import Path


class MedtuneError(Exception):
    """Base class of every error medtune raises on purpose."""

    code = "E000"

    def __init__(self, message: str, *, fix: str | None = None) -> None:
        self.message = message
        self.fix = fix
        full = f"[{self.code}] {message}"
        if fix:
            full += f" Fix: {fix}"
        super().__init__(full)


class DataFormatError(MedtuneError):
    """A data file (or a document in memory) does not have the shape its format requires."""

    code = "E100"

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        line: int | None = None,
        field: str | None = None,
        fix: str | None = None,
    ) -> None:
        self.path = str(path) if path is not None else None
        self.line = line
        self.field = field
        where = []
        if self.path is not None:
            where.append(self.path if line is None else f"{self.path}:{line}")
        elif line is not None:
            where.append(f"line {line}")
        if field is not None:
            where.append(f"field '{field}'")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message, fix=fix)


class DocumentError(DataFormatError):
    """A document is inconsistent (span outside the text, relation to an unknown span, ...)."""

    code = "E110"


class DatasetNotFoundError(MedtuneError):
    """A named corpus is neither in the data directory nor downloadable."""

    code = "E200"


class ConfigError(MedtuneError):
    """A configuration file or override is invalid."""

    code = "E300"


class ModelError(MedtuneError):
    """A model directory is missing, incomplete or made for another task."""

    code = "E400"


class MissingExtraError(MedtuneError):
    """An optional feature needs an extra that is not installed."""

    code = "E500"

    def __init__(self, feature: str, extra: str) -> None:
        super().__init__(
            f"{feature} needs the optional dependencies of medtune[{extra}], which are not installed.",
            fix=f"pip install 'medtune[{extra}]' -c constraints.txt",
        )

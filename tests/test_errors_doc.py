"""docs/errors.md lists every error code that medtune's source raises (kept true by this test)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_code_in_the_source_is_documented():
    listed = set(re.findall(r"^\| (E\d{3}) \|", (ROOT / "docs" / "errors.md").read_text(encoding="utf-8"), re.M))
    used = set()
    for path in (ROOT / "medtune").rglob("*.py"):
        used |= set(re.findall(r"[\"'](E\d{3})[\"']", path.read_text(encoding="utf-8")))
    assert used, "no codes found: the pattern is wrong"
    assert sorted(used - listed) == [], "codes raised but not in docs/errors.md"
    assert sorted(listed - used) == [], "codes in docs/errors.md that nothing raises"

"""Shared set-up of the benchmark scripts: import medtune from this checkout, stay offline, and find
the public corpora in ../shared/data when MEDTUNE_DATA_DIR is not set. Import it first."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
if not os.environ.get("MEDTUNE_DATA_DIR") and (ROOT.parent / "shared" / "data").is_dir():
    os.environ["MEDTUNE_DATA_DIR"] = str(ROOT.parent / "shared" / "data")

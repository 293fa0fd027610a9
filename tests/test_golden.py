"""Predictions of tiny model directories written by an earlier version (tests/fixtures/golden, made by
its build.py before the reshaping of issue 11) must not change: every task, both NER heads, and two
pipelines that chain rules, models and the relation gate. Also proves old model directories load."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from medtune.inference import load
from medtune.pipeline import Pipeline

HERE = Path(__file__).parent / "fixtures" / "golden"
GOLDEN = json.loads((HERE / "golden.json").read_text(encoding="utf-8"))

from helpers import load_module  # noqa: E402

_build = load_module(HERE / "build.py", "golden_models_build")
MODELS, PIPELINES, golden_inputs = _build.MODELS, _build.PIPELINES, _build.golden_inputs


def assert_same(got, want, where="doc"):
    if isinstance(want, float) or isinstance(got, float):
        assert isinstance(got, (int, float)) and math.isclose(got, want, abs_tol=2e-6), f"{where}: {got} != {want}"
    elif isinstance(want, dict):
        assert isinstance(got, dict) and set(got) == set(want), f"{where}: keys {sorted(got)} != {sorted(want)}"
        for key in want:
            assert_same(got[key], want[key], f"{where}.{key}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), f"{where}: {got} != {want}"
        for k, (a, b) in enumerate(zip(got, want)):
            assert_same(a, b, f"{where}[{k}]")
    else:
        assert got == want, f"{where}: {got!r} != {want!r}"


@pytest.mark.parametrize("name", sorted(MODELS))
def test_model_predictions_unchanged(name):
    nlp = load(HERE / name, mode="fp32")
    got = [d.to_dict() for d in nlp.pipe(golden_inputs(name))]
    assert_same(got, GOLDEN[name], name)


@pytest.mark.parametrize("name", sorted(PIPELINES))
def test_pipeline_predictions_unchanged(name):
    pipe = Pipeline.from_yaml(HERE / name)
    got = [d.to_dict() for d in pipe.pipe(PIPELINES[name][1]())]
    assert_same(got, GOLDEN[name], name)

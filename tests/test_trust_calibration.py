"""Calibration and reliability on synthetic scores (no model)."""

from __future__ import annotations

import numpy as np
import pytest

from medtune.errors import ConfigError, ModelError
from medtune.trust.calibration import Calibrator, fit_calibrator
from medtune.trust.reliability import calibration_errors, equal_mass_bins, reliability_diagram


def over_confident(n: int, seed: int = 0, sharpness: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    """Scores whose log-odds are ``sharpness`` times the true ones: right less often than they claim."""
    rng = np.random.default_rng(seed)
    truth = rng.uniform(0.3, 0.97, n)
    logit = np.log(truth / (1 - truth)) * sharpness
    scores = 1 / (1 + np.exp(-logit))
    return scores, rng.uniform(size=n) < truth


@pytest.mark.parametrize("method", ["temperature", "platt", "isotonic"])
def test_calibration_lowers_ece_of_over_confident_scores(method):
    dev_scores, dev_right = over_confident(4000, seed=1)
    test_scores, test_right = over_confident(4000, seed=2)
    calibrator = fit_calibrator(dev_scores, dev_right, method)
    before = calibration_errors(test_scores, test_right)["ece"]
    after = calibration_errors(calibrator(test_scores), test_right)["ece"]
    assert before > 0.1
    assert after < 0.03 and after < before / 3
    if method == "temperature":
        assert calibrator.temperature == pytest.approx(3.0, rel=0.15)
        # never reorders scores: rankings and decisions are unchanged
        assert np.array_equal(np.argsort(test_scores, kind="stable"), np.argsort(calibrator(test_scores), kind="stable"))


@pytest.mark.parametrize("method", ["temperature", "platt", "isotonic"])
def test_calibrator_round_trips_through_the_model_meta(method):
    scores, right = over_confident(500)
    calibrator = fit_calibrator(scores, right, method)
    again = Calibrator.from_dict(calibrator.to_dict())
    assert np.allclose(again(scores), calibrator(scores), atol=1e-5)
    assert again.fitted_on == 500 and method in again.describe().lower().split()[0]


@pytest.mark.parametrize("bad", [None, {"method": "beta"}, {"method": "temperature", "temperature": -1},
                                 {"method": "temperature"}, {"method": "platt", "slope": -1, "bias": 0},
                                 {"method": "isotonic", "x": [0.2, 0.1], "y": [0, 1]},
                                 {"method": "isotonic", "x": [0.1], "y": []}])
def test_an_invalid_saved_calibration_is_a_model_error(bad):
    with pytest.raises(ModelError, match="calibration"):
        Calibrator.from_dict(bad)


def test_fitting_needs_right_and_wrong_predictions():
    with pytest.raises(ConfigError, match="right and wrong"):
        fit_calibrator([0.9, 0.8, 0.7], [True, True, True])
    with pytest.raises(ConfigError, match="unknown calibration method"):
        fit_calibrator([0.9, 0.2], [True, False], "beta")


def test_equal_mass_bins_mce_and_brier():
    scores = np.linspace(0.01, 0.99, 300)
    right = np.random.default_rng(0).uniform(size=300) < scores
    bins = equal_mass_bins(scores, right, bins=15)
    assert [b["count"] for b in bins] == [20] * 15
    result = calibration_errors(scores, right, bins=15)
    assert 0 <= result["ece"] <= result["mce"] <= 1
    assert result["brier"] == pytest.approx(float(np.mean((scores - right) ** 2)))
    # a constant over-confidence of 0.3 is an ECE of 0.3
    assert calibration_errors(np.full(100, 0.9), np.arange(100) < 60)["ece"] == pytest.approx(0.3)
    assert calibration_errors([], [])["ece"] is None


def test_reliability_diagram_is_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    scores, right = over_confident(400)
    calibrator = fit_calibrator(scores, right)
    path = reliability_diagram({"raw": calibration_errors(scores, right),
                                "calibrated": calibration_errors(calibrator(scores), right)},
                               tmp_path / "plots" / "reliability.png", title="synthetic")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

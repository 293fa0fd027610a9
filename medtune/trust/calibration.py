"""Post-hoc calibration of scores: temperature scaling (default) and isotonic regression.

A calibrator maps a score ``p`` (the probability of an event: a span is right, a label is present)
to a calibrated one. Temperature scaling divides the log-odds by one fitted ``T`` (``T > 1`` softens
an over-confident model; it never reorders scores, so decisions and rankings are unchanged); Platt
scaling fits a slope and a bias on the log-odds (for scores that are too high everywhere, which one
temperature cannot shift); isotonic regression (scikit-learn) fits a monotone step function. Both are fitted on the dev split by the
negative log-likelihood (temperature) or squared error (isotonic), and serialise to a small dict kept
in the model's ``config.json`` (``medtune.calibration``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import minimize, minimize_scalar
from sklearn.isotonic import IsotonicRegression

from medtune.errors import ConfigError, ModelError

METHODS = ("temperature", "platt", "isotonic")
EPS = 1e-6


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, EPS, 1.0 - EPS)
    return np.log(p) - np.log1p(-p)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


@dataclass(frozen=True)
class Calibrator:
    """A fitted score map. ``temperature`` for ``method="temperature"``; ``x``/``y`` (the isotonic
    step function's knots, linearly interpolated and clipped) for ``method="isotonic"``."""

    method: str
    temperature: float = 1.0
    slope: float = 1.0  # platt
    bias: float = 0.0  # platt
    x: tuple[float, ...] = field(default_factory=tuple)
    y: tuple[float, ...] = field(default_factory=tuple)
    fitted_on: int = 0  # dev items it was fitted on

    def __call__(self, scores: Any) -> np.ndarray:
        p = np.asarray(scores, dtype=np.float64)
        if self.method == "temperature":
            return _sigmoid(_logit(p) / self.temperature)
        if self.method == "platt":
            return _sigmoid(self.slope * _logit(p) + self.bias)
        return np.interp(np.clip(p, 0.0, 1.0), self.x, self.y)

    def one(self, score: float) -> float:
        return float(self(np.array([score]))[0])

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"method": self.method, "fitted_on": self.fitted_on}
        if self.method == "temperature":
            out["temperature"] = round(self.temperature, 6)
        elif self.method == "platt":
            out["slope"], out["bias"] = round(self.slope, 6), round(self.bias, 6)
        else:
            out["x"] = list(self.x)  # exact: a step's two knots may be closer than any rounding
            out["y"] = [round(v, 9) for v in self.y]
        return out

    @classmethod
    def from_dict(cls, data: Any) -> "Calibrator":
        bad = ModelError("config.json: the 'medtune.calibration' section is invalid",
                         fix="restore config.json from the trained model, or train again")
        if not isinstance(data, dict) or data.get("method") not in METHODS:
            raise bad
        try:
            if data["method"] == "temperature":
                t = float(data["temperature"])
                if not (math.isfinite(t) and t > 0):
                    raise bad
                return cls("temperature", temperature=t, fitted_on=int(data.get("fitted_on", 0)))
            if data["method"] == "platt":
                a, b = float(data["slope"]), float(data["bias"])
                if not (math.isfinite(a) and math.isfinite(b) and a > 0):
                    raise bad
                return cls("platt", slope=a, bias=b, fitted_on=int(data.get("fitted_on", 0)))
            x, y = tuple(float(v) for v in data["x"]), tuple(float(v) for v in data["y"])
        except (KeyError, TypeError, ValueError):
            raise bad from None
        if not x or len(x) != len(y) or any(b < a for a, b in zip(x, x[1:])):
            raise bad
        return cls("isotonic", x=x, y=y, fitted_on=int(data.get("fitted_on", 0)))

    def describe(self) -> str:
        if self.method == "temperature":
            return f"temperature scaling, T = {self.temperature:.3f} (fitted on {self.fitted_on} dev predictions)"
        if self.method == "platt":
            return (f"Platt scaling, slope {self.slope:.3f}, bias {self.bias:+.3f} (fitted on {self.fitted_on} dev "
                    "predictions)")
        return f"isotonic regression, {len(self.x)} knots (fitted on {self.fitted_on} dev predictions)"


def fit_temperature(scores: np.ndarray, positive: np.ndarray) -> float:
    """The ``T`` minimising the binary negative log-likelihood of ``sigmoid(logit(p) / T)``."""
    z = _logit(np.asarray(scores, dtype=np.float64))
    y = np.asarray(positive, dtype=np.float64)

    def nll(log_t: float) -> float:
        q = np.clip(_sigmoid(z / math.exp(log_t)), 1e-12, 1 - 1e-12)
        return float(-np.mean(y * np.log(q) + (1 - y) * np.log(1 - q)))

    best = minimize_scalar(nll, bounds=(math.log(0.05), math.log(50.0)), method="bounded",
                           options={"xatol": 1e-5})
    return float(math.exp(best.x))


def fit_platt(scores: np.ndarray, positive: np.ndarray) -> tuple[float, float]:
    """Slope (kept positive: scores are never reversed) and bias of ``sigmoid(a * logit(p) + b)`` by NLL."""
    z = _logit(np.asarray(scores, dtype=np.float64))
    y = np.asarray(positive, dtype=np.float64)

    def nll(params: np.ndarray) -> float:
        q = np.clip(_sigmoid(math.exp(params[0]) * z + params[1]), 1e-12, 1 - 1e-12)
        return float(-np.mean(y * np.log(q) + (1 - y) * np.log(1 - q)))

    best = minimize(nll, np.zeros(2), method="L-BFGS-B", bounds=[(math.log(0.02), math.log(50.0)), (-20.0, 20.0)])
    return float(math.exp(best.x[0])), float(best.x[1])


def fit_isotonic(scores: np.ndarray, positive: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    model = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip")
    model.fit(np.asarray(scores, dtype=np.float64), np.asarray(positive, dtype=np.float64))
    return tuple(float(v) for v in model.X_thresholds_), tuple(float(v) for v in model.y_thresholds_)


def fit_calibrator(scores: Any, positive: Any, method: str = "temperature") -> Calibrator:
    """Fit ``method`` on dev scores and whether each event happened (the prediction was right)."""
    if method not in METHODS:
        raise ConfigError(f"unknown calibration method '{method}'", fix=f"use one of: {', '.join(METHODS)}")
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    positive = np.asarray(positive, dtype=bool).reshape(-1)
    if len(scores) < 2 or positive.all() or not positive.any():
        raise ConfigError(f"calibration needs dev predictions that are right and wrong ({len(scores)} scored, "
                          f"{int(positive.sum())} right)",
                          fix="give a larger dev split, or drop the calibration section")
    if method == "temperature":
        return Calibrator("temperature", temperature=fit_temperature(scores, positive), fitted_on=len(scores))
    if method == "platt":
        slope, bias = fit_platt(scores, positive)
        return Calibrator("platt", slope=slope, bias=bias, fitted_on=len(scores))
    x, y = fit_isotonic(scores, positive)
    return Calibrator("isotonic", x=x, y=y, fitted_on=len(scores))

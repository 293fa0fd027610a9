"""Bootstrap intervals over documents, the paired test and subgroup reports (synthetic counts)."""

from __future__ import annotations

import numpy as np
import pytest

from medtune.document import Document
from medtune.errors import ConfigError
from medtune.trust.bootstrap import (bootstrap_counts, bootstrap_statistic, paired_bootstrap,
                                     paired_bootstrap_means, prf)
from medtune.trust.groups import group_report, group_values, length_buckets


def doc_counts(n: int, seed: int = 0, p_right: float = 0.8) -> np.ndarray:
    """Per-document (tp, fp, fn) of a system that finds each of about 10 gold items with p_right."""
    rng = np.random.default_rng(seed)
    gold = rng.integers(5, 15, n)
    tp = rng.binomial(gold, p_right)
    fp = rng.binomial(gold, 1 - p_right)
    return np.stack([tp, fp, gold - tp], axis=1)


def test_interval_contains_the_point_estimate_and_narrows_with_more_documents():
    small = bootstrap_counts(doc_counts(30), seed=1)
    large = bootstrap_counts(doc_counts(1000), seed=1)
    for result in (small, large):
        for figure in ("f1", "precision", "recall"):
            assert result[figure]["low"] <= result[figure]["value"] <= result[figure]["high"]
    width = {k: r["f1"]["high"] - r["f1"]["low"] for k, r in (("small", small), ("large", large))}
    assert width["large"] < width["small"] / 3
    assert small["f1"]["value"] == pytest.approx(float(prf(doc_counts(30).sum(axis=0))["f1"]))


def test_the_bootstrap_is_seeded():
    counts = doc_counts(50)
    assert bootstrap_counts(counts, seed=7) == bootstrap_counts(counts, seed=7)
    assert bootstrap_counts(counts, seed=7) != bootstrap_counts(counts, seed=8)
    stat = bootstrap_statistic(50, lambda idx: float(counts[idx, 0].sum()), n_resamples=200, seed=3)
    assert stat["low"] <= stat["value"] <= stat["high"]
    with pytest.raises(ConfigError, match="resamples"):
        bootstrap_counts(counts, n_resamples=5)


def test_paired_bootstrap_tells_a_real_difference_from_none():
    a, b = doc_counts(400, seed=1, p_right=0.85), doc_counts(400, seed=1, p_right=0.75)
    better = paired_bootstrap(a, b, seed=0)
    assert better["difference"] > 0.05 and better["p_value"] < 0.01
    assert better["low"] <= better["difference"] <= better["high"] and better["low"] > 0
    same = paired_bootstrap(a, a)
    assert same["difference"] == 0 and same["p_value"] == 1.0
    with pytest.raises(ConfigError, match="documents"):
        paired_bootstrap(a, a[:10])


def test_group_metrics_add_up_to_the_overall_counts():
    counts = doc_counts(120)
    values = ["bioscope"] * 70 + ["chia"] * 40 + ["negex"] * 10
    report = group_report(values, counts, field="source", n_resamples=100)
    total = np.sum([[g["tp"], g["fp"], g["fn"]] for g in report["groups"].values()], axis=0)
    assert total.tolist() == counts.sum(axis=0).tolist()
    assert [report["overall"][k] for k in ("tp", "fp", "fn")] == counts.sum(axis=0).tolist()
    assert sum(g["documents"] for g in report["groups"].values()) == 120
    assert report["groups"]["negex"]["small"] and not report["groups"]["chia"]["small"]
    assert len(report["warnings"]) == 1 and "negex" in report["warnings"][0]
    gap = report["largest_gap"]
    assert {gap["highest"], gap["lowest"]} == {"bioscope", "chia"} and not gap["small_groups_included"]
    for g in report["groups"].values():
        assert g["ci"]["f1"]["low"] <= g["f1"] <= g["ci"]["f1"]["high"]


def test_group_values_from_metadata_and_length():
    docs = [Document(id=str(i), text="x" * (10 * (i + 1)), metadata={"note": {"type": "discharge"}} if i % 2 else {})
            for i in range(8)]
    assert group_values(docs, "note.type") == ["(missing)", "discharge"] * 4
    buckets = group_values(docs, "length")
    assert buckets == length_buckets(docs) and len(set(buckets)) == 4
    assert buckets[0].startswith("chars 10-") and buckets[-1].endswith("-80")


def test_a_statistic_that_resampling_inflates_gets_a_bias_corrected_interval():
    """ECE-like: the share of distinct documents is 1.0 on the data and about 0.632 on every resample, so
    the plain percentile interval lies far below the figure; the corrected one brackets it."""
    def distinct(idx):
        return len(set(idx.tolist())) / 200

    plain = bootstrap_statistic(200, distinct, n_resamples=200, seed=0)
    assert plain["high"] < 0.7 < plain["value"] == 1.0
    fixed = bootstrap_statistic(200, distinct, n_resamples=200, seed=0, bias_corrected=True)
    assert fixed["bias"] == pytest.approx(-0.368, abs=0.02)
    assert fixed["low"] <= fixed["value"] <= fixed["high"]
    assert fixed["high"] - fixed["low"] == pytest.approx(plain["high"] - plain["low"])  # shifted, not widened
    ece_like = bootstrap_statistic(50, lambda idx: 0.01 + 0.0 * len(idx), n_resamples=20, bias_corrected=True)
    assert [ece_like[k] for k in ("low", "value", "high")] == pytest.approx([0.01] * 3)
    assert ece_like["bias"] == pytest.approx(0.0)


def test_paired_bootstrap_of_means_tells_a_real_difference_from_none():
    rng = np.random.default_rng(0)
    base = rng.random(300)
    better = np.clip(base + 0.1 + rng.normal(0, 0.05, 300), 0, 1)
    real = paired_bootstrap_means(better, base, seed=0)
    assert real["difference"] == pytest.approx(float(better.mean() - base.mean()))
    assert real["low"] <= real["difference"] <= real["high"] and real["low"] > 0 and real["p_value"] < 0.01
    noise = paired_bootstrap_means(rng.permutation(base), base, seed=0)  # same values, unrelated pairing
    assert noise["difference"] == pytest.approx(0.0, abs=1e-12) and noise["p_value"] == 1.0
    assert paired_bootstrap_means(base, base, seed=0) == paired_bootstrap_means(base, base, seed=0)
    with pytest.raises(ConfigError, match="same items"):
        paired_bootstrap_means(base, base[:10])

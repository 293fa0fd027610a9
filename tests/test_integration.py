"""Fine-tune the real default model (MiniLM, 22M parameters) for a few steps on a slice of NCBI-disease."""

from __future__ import annotations

import json

import pytest

import medtune
from medtune.config import RunConfig
from medtune.training import train


@pytest.mark.slow
@pytest.mark.data
def test_default_model_learns_ncbi_disease_slice(data_dir, tmp_path):
    cfg = RunConfig.from_yaml("configs/ncbi-disease.yaml")
    cfg = RunConfig.from_dict({
        **cfg.model_dump(),
        "data": {"name": "ncbi-disease", "max_train_docs": 40, "max_eval_docs": 10},
        "training": {**cfg.training.model_dump(), "max_steps": 40, "batch_size": 8, "learning_rate": 2e-4,
                     "progress_bar": False, "early_stopping_patience": None, "eval_every_epoch": False},
    })
    result = train(cfg, tmp_path / "ncbi")
    metrics = json.loads((result.output_dir / "metrics.json").read_text())
    assert metrics["test"]["counts"]["documents"] == 10
    # 40 steps on 40 abstracts: far from converged, but clearly learning the task
    assert metrics["test"]["f1"] > 0.2, metrics["test"]
    nlp = medtune.load(result.output_dir)
    doc = nlp("Mutations in BRCA1 cause hereditary breast and ovarian cancer.")
    assert all(doc.text[s.start:s.end] == s.text and s.label == "Disease" for s in doc.spans)

"""Balanced class weights for single-label classification, and PubMedQA's reasoning-free variant."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from medtune.config import RunConfig
from medtune.errors import ConfigError, DatasetNotFoundError
from medtune.models.store import load_model
from medtune.tasks.classification import ClassificationTask
from medtune.training import train

from helpers import cls_docs


def _config(model_dir: Path, tmp_path: Path, docs, **model) -> RunConfig:
    from medtune.io.jsonl import write_jsonl

    write_jsonl(docs, tmp_path / "train.jsonl")
    write_jsonl(docs[:6], tmp_path / "dev.jsonl")
    return RunConfig.from_dict({
        "task": "classification", "base_model": str(model_dir),
        "data": {"train": str(tmp_path / "train.jsonl"), "dev": str(tmp_path / "dev.jsonl")},
        "model": {"max_length": 32, "stride": 8, **model},
        "training": {"epochs": 1, "batch_size": 4, "progress_bar": False, "bf16": "false"},
    })


def _skewed(n_pos: int, n_neg: int):
    docs = cls_docs(2 * max(n_pos, n_neg))
    pos = [d for d in docs if d.labels == ["pos"]][:n_pos]
    neg = [d for d in docs if d.labels == ["neg"]][:n_neg]
    return pos + neg


def test_balanced_weights_follow_the_training_labels_and_are_saved(tiny_model_dir, tmp_path):
    cfg = _config(tiny_model_dir, tmp_path, _skewed(3, 9), class_weights="balanced")
    meta = ClassificationTask.meta_from_config(cfg, _skewed(3, 9))
    weights = dict(zip(meta["labels"], meta["class_weights"]))
    assert weights == {"neg": pytest.approx(12 / (2 * 9)), "pos": pytest.approx(12 / (2 * 3))}
    out = tmp_path / "model"
    train(cfg, out)
    model, _, task = load_model(out)
    assert task.meta["class_weights"] == meta["class_weights"]
    assert torch.equal(model.class_weights, torch.tensor(meta["class_weights"]))
    assert "class_weights" not in model.state_dict()  # the meta holds them; old directories load as before


def test_weighted_loss_is_the_weighted_cross_entropy(tiny_model_dir, tmp_path):
    docs = _skewed(3, 9)
    plain_cfg = _config(tiny_model_dir, tmp_path, docs)
    assert "class_weights" not in ClassificationTask.meta_from_config(plain_cfg, docs)
    cfg = _config(tiny_model_dir, tmp_path, docs, class_weights="balanced")
    meta = ClassificationTask.meta_from_config(cfg, docs)
    from medtune.models.encoder import build_encoder

    task = ClassificationTask(meta, None)
    model = task.build_model(build_encoder(str(tiny_model_dir)))
    model.eval()
    ids = torch.tensor([[2, 10, 11, 3], [2, 12, 13, 3], [2, 14, 15, 3]])
    labels = torch.tensor([0, 1, 1])
    out = model(ids, torch.ones_like(ids), torch.tensor([0, 1, 2]), labels=labels)
    weight = torch.tensor(meta["class_weights"])
    expected = torch.nn.functional.cross_entropy(out["logits"], labels, weight=weight)
    unweighted = torch.nn.functional.cross_entropy(out["logits"], labels)
    assert torch.allclose(out["loss"], expected) and not torch.allclose(out["loss"], unweighted)


def test_balanced_weights_refuse_multi_label_and_missing_labels(tiny_model_dir, tmp_path):
    docs = cls_docs(8, multi=True)
    cfg = _config(tiny_model_dir, tmp_path, docs, class_weights="balanced")
    with pytest.raises(ConfigError, match="single-label"):
        ClassificationTask.meta_from_config(cfg, docs)
    docs = _skewed(0, 6)
    cfg = _config(tiny_model_dir, tmp_path, docs, class_weights="balanced", labels=["neg", "pos"])
    with pytest.raises(ConfigError, match="no training document"):
        ClassificationTask.meta_from_config(cfg, docs)


@pytest.mark.data
def test_pubmedqa_long_answer_variant_keeps_the_split_and_has_no_test():
    from medtune.datasets import load

    if not (Path(os.environ.get("MEDTUNE_DATA_DIR", "/nonexistent")) / "pubmedqa" / "ori_pqal.json").exists():
        pytest.skip("PubMedQA is not under MEDTUNE_DATA_DIR")
    for split in ("train", "dev"):
        plain = {d.id: d for d in load("pubmedqa", split=split)}
        long = load("pubmedqa-long-answer", split=split)
        assert {d.id for d in long} <= set(plain) and len(long) >= 0.95 * len(plain)
        for doc in long:
            assert doc.text == plain[doc.id].metadata["long_answer"] and doc.labels == plain[doc.id].labels
    test_ids = {d.id for d in load("pubmedqa", split="test")}
    assert not test_ids & {d.id for s in ("train", "dev") for d in load("pubmedqa-long-answer", split=s)}
    with pytest.raises(DatasetNotFoundError):
        load("pubmedqa-long-answer", split="test")

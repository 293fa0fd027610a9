"""DP-SGD (privacy: section): the accountant, per-document clipping, refused options, a private run."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from helpers import assertion_docs, cls_docs, ner_docs, rel_docs

# the privacy extra (Opacus), which `make dev` installs: pip install -e '.[privacy]' -c constraints.txt
from opacus.accountants import PRVAccountant, RDPAccountant
from opacus.accountants.utils import get_noise_multiplier
from safetensors import safe_open
from torch import nn
from transformers import TrainerCallback
from typer.testing import CliRunner

import medtune
from medtune.cli import app
from medtune.config import DPConfig, RunConfig
from medtune.errors import ConfigError, MissingExtraError
from medtune.io.jsonl import write_jsonl
from medtune.training import train
from medtune.training.dp_trainer import (
    UnitCollator,
    UnitNormHooks,
    clipped_backward,
    first_pass_inputs,
    unit_loss_for,
    unit_losses,
)
from medtune.training.privacy import RDP_ALPHAS, PrivateTrainingRun, epsilon_spent, plan_privacy, unit_groups
from medtune.training.run import TrainingRun, run_class

TASKS = {
    "ner": (lambda: ner_docs(12, repeat=3), {"max_length": 16, "stride": 4, "labels": ["Disease", "Gene"]}),
    "classification": (lambda: cls_docs(12), {"max_length": 8, "stride": 2, "labels": ["neg", "pos"],
                                              "multi_label": False}),
    "relation": (lambda: rel_docs(12), {"max_length": 32, "stride": 8, "labels": ["ADE"],
                                        "relation_schema": [["Drug", "AE", "ADE"]]}),
    "assertion": (lambda: assertion_docs(12), {"max_length": 32, "stride": 8, "labels": ["negated", "present", "uncertain"]}),
}


def config(tiny_model_dir: Path, tmp_path: Path, task: str = "ner", *, docs=None, model: dict | None = None,
           training: dict | None = None, dp: dict | None = None, dev: bool = False, privacy: bool = True) -> RunConfig:
    make_docs, options = TASKS[task]
    data = {"train": str(tmp_path / f"{task}-train.jsonl"), "format": "jsonl"}
    write_jsonl(docs if docs is not None else make_docs(), data["train"])
    if dev:
        data["dev"] = str(tmp_path / f"{task}-dev.jsonl")
        write_jsonl(make_docs()[:3], data["dev"])
    raw = {"task": task, "base_model": str(tiny_model_dir), "data": data, "model": {**options, **(model or {})},
           "training": {"batch_size": 3, "epochs": 1, "learning_rate": 3e-3, "progress_bar": False, "bf16": "false",
                        "logging_steps": 1000, "early_stopping_patience": None, "num_threads": 1,
                        **(training or {})}}
    if privacy:
        raw["privacy"] = {"dp": {"epsilon": 8, "accountant": "rdp", **(dp or {})}}
    return RunConfig.from_dict(raw)


# ----------------------------------------------------------------------------- accounting
def test_noise_multiplier_and_epsilon_match_opacus_accountants():
    plan = plan_privacy(DPConfig(epsilon=3, accountant="rdp"), units=1000, batch_size=10, epochs=2)
    assert (plan.sample_rate, plan.steps, plan.delta) == (0.01, 200, 1e-4)  # q = B / N, steps = epochs / q
    assert plan.noise_multiplier == get_noise_multiplier(target_epsilon=3, target_delta=1e-4, sample_rate=0.01,
                                                         steps=200, accountant="rdp", alphas=RDP_ALPHAS)
    stepped = RDPAccountant()
    for _ in range(200):
        stepped.step(noise_multiplier=plan.noise_multiplier, sample_rate=0.01)
    eps = stepped.get_epsilon(delta=1e-4, alphas=RDP_ALPHAS)
    assert eps == pytest.approx(plan.epsilon_after(200), rel=1e-9)
    assert 3 - 0.02 <= eps <= 3  # the noise is the least within Opacus' search tolerance
    assert stepped.get_epsilon(delta=1e-4) >= eps  # Opacus' default orders give a looser bound
    assert plan.epsilon_after(100) < eps and plan.epsilon_after(0) == 0.0

    prv = PRVAccountant()
    for _ in range(100):
        prv.step(noise_multiplier=1.0, sample_rate=0.01)
    assert epsilon_spent(1.0, 0.01, 100, 1e-5, "prv") == pytest.approx(prv.get_epsilon(delta=1e-5), rel=1e-9)


def test_delta_and_batch_size_are_checked_against_the_number_of_units():
    assert plan_privacy(DPConfig(epsilon=8, accountant="rdp", delta=1e-4), 500, 5, 1).delta_rule == "given"
    with pytest.raises(ConfigError, match=r"privacy.dp.delta .* not below 1 / N"):
        plan_privacy(DPConfig(epsilon=8, accountant="rdp", delta=0.05), 50, 5, 1)
    with pytest.raises(ConfigError, match="training.batch_size 50 is not below the number of privacy units"):
        plan_privacy(DPConfig(epsilon=8, accountant="rdp"), 50, 50, 1)
    with pytest.raises(ConfigError, match="epsilon 0.001 cannot be reached in 100 steps"):
        plan_privacy(DPConfig(epsilon=0.001, accountant="rdp"), 1000, 10, 1)


# ----------------------------------------------------------------------------- per-unit clipping
def _prepared_model(cfg: RunConfig):
    run = PrivateTrainingRun(cfg)
    prepared = run.prepare()
    model = run.build_model(prepared)
    dataset = run.encode(prepared)
    for module in model.modules():  # deterministic forward passes: brute force and hooks see the same
        if isinstance(module, nn.Dropout):
            module.p = 0.0
    model.train()
    return prepared, model, dataset


@pytest.mark.parametrize("task,model,dp", [
    ("ner", {}, {"freeze_embeddings": False}),  # several windows per document; trained word embeddings
    ("classification", {"head": "cnn", "cnn_kernel_sizes": [3], "cnn_filters": 4}, {}),  # several chunks
    ("relation", {}, {}),  # several candidate pairs per sentence
    ("assertion", {}, {"unit_field": "patient"}),  # two documents per unit
    ("classification", {}, {"train_top_layers": 1}),  # the lower layer and the embeddings frozen
])
def test_each_unit_gradient_is_clipped_as_a_whole(tiny_model_dir, tmp_path, task, model, dp):
    docs = TASKS[task][0]()
    for i, doc in enumerate(docs):
        doc.metadata["patient"] = f"p{i // 2}"
    prepared, net, dataset = _prepared_model(config(tiny_model_dir, tmp_path, task, docs=docs, model=model, dp=dp))
    units = [u for u in dataset.units if u][:5]  # a sentence without candidates is an empty unit
    sizes = [len(u) for u in units]
    rows = UnitCollator(prepared.task.collate, None)(units)["dp_parts"][0]["input_ids"].shape[0]
    assert rows > len(units)  # the test needs units of several rows (windows, chunks, candidates, documents)
    params = [p for p in net.parameters() if p.requires_grad]
    hooks = UnitNormHooks(net)
    rule = unit_loss_for(net, task)

    hooks.disable_hooks()  # brute force: one backward pass per unit
    whole = []
    for unit in units:
        part = UnitCollator(prepared.task.collate, None)([unit])["dp_parts"][0]
        loss = unit_losses(net, part, rule, hooks).sum()
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        whole.append(torch.cat([(g if g is not None else torch.zeros_like(p)).flatten() for g, p in zip(grads, params)]))
    true_norms = torch.stack([g.norm() for g in whole])
    hooks.enable_hooks()

    clip = float(true_norms.median())  # some units are clipped, some are not
    expected = sum(min(1.0, clip / float(n)) * g for g, n in zip(whole, true_norms))
    first = first_pass_inputs(net, UnitCollator(prepared.task.collate, None)(units)["dp_parts"][0], rule, hooks,
                              params)
    if "train_top_layers" in dp:  # the lowest trained layer's query, key and value are siblings: no one
        assert first is None      # parameter's pass reaches them all, so the first pass computes everything
    else:
        assert first == params[:1]  # the first backward pass reaches every layer from the first parameter
    for physical, inputs in ((None, None), (max(sizes), first)):  # one part, or several parts of whole units
        for p in params:
            p.grad = None
        batch = UnitCollator(prepared.task.collate, physical)(units)
        assert batch["dp_units"] == len(units) and (physical is None) == (len(batch["dp_parts"]) == 1)
        norms = torch.cat([clipped_backward(unit_losses(net, part, rule, hooks), hooks, params, clip, inputs)
                           for part in batch["dp_parts"]])
        assert torch.allclose(norms, true_norms, rtol=1e-4, atol=1e-6)
        summed = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).flatten() for p in params])
        assert torch.allclose(summed, expected, rtol=1e-3, atol=1e-6)
    for g, n in zip(whole, true_norms):  # what each unit adds is at most the clipping norm
        assert float((min(1.0, clip / float(n)) * g).norm()) <= clip * (1 + 1e-5)
    hooks.remove_hooks()
    hooks.cleanup()


def test_a_document_with_several_windows_is_one_unit(tiny_model_dir, tmp_path):
    docs = ner_docs(12, repeat=3)
    _, _, dataset = _prepared_model(config(tiny_model_dir, tmp_path, docs=docs))
    assert len(dataset) == 12 and len(dataset.features) > 12  # windows are features, documents are units
    assert all(len(unit) >= 2 for unit in dataset.units)
    for i, doc in enumerate(docs):
        doc.metadata["patient"] = f"p{i % 4}"
    assert unit_groups(docs, "patient") == [[0, 4, 8], [1, 5, 9], [2, 6, 10], [3, 7, 11]]
    _, _, grouped = _prepared_model(config(tiny_model_dir, tmp_path, docs=docs, dp={"unit_field": "patient"}))
    assert len(grouped) == 4 and len(grouped.features) == len(dataset.features)


def test_the_collator_keeps_units_whole_and_counts_empty_ones():
    def collate(features):
        return {"x": torch.tensor([f["x"] for f in features])}

    collator = UnitCollator(collate, physical_batch_size=3)
    assert collator([]) == {"dp_parts": [], "dp_units": 0}  # an empty Poisson sample: a step of noise only
    assert collator([[]])["dp_parts"] == [] and collator([[]])["dp_units"] == 1
    units = [[{"x": 1}, {"x": 2}], [{"x": 3}, {"x": 4}, {"x": 5}, {"x": 6}], [], [{"x": 7}]]
    batch = collator(units)
    assert batch["dp_units"] == 4
    assert [p["x"].tolist() for p in batch["dp_parts"]] == [[1, 2], [3, 4, 5, 6], [7]]
    assert [p["dp_feature_unit"].tolist() for p in batch["dp_parts"]] == [[0, 0], [0, 0, 0, 0], [0]]


# ----------------------------------------------------------------------------- refused options
@pytest.mark.parametrize("task,model,training,match", [
    ("ner", {}, {"gradient_accumulation_steps": 2}, "training.gradient_accumulation_steps"),
    ("ner", {}, {"group_by_length": True}, "training.group_by_length"),
    ("ner", {"head": "crf"}, {}, "model.head crf"),
    ("ner", {"labels": None}, {}, "model.labels"),
    ("relation", {"negatives_from_model": "models/ner"}, {}, "model.negatives_from_model"),
    ("relation", {"distant_negatives": True}, {}, "model.distant_negatives"),
    ("relation", {"negative_ratio": 2.0}, {}, "model.negative_ratio"),
    ("relation", {"relation_schema": None}, {}, "model.relation_schema"),  # labels alone do not give the pairs
    ("classification", {"class_weights": "balanced"}, {}, "model.class_weights"),
    ("classification", {"multi_label": None}, {}, "model.multi_label"),
])
def test_options_that_break_the_guarantee_are_refused(tiny_model_dir, tmp_path, task, model, training, match):
    cfg = config(tiny_model_dir, tmp_path, task, model=model, training=training)
    with pytest.raises(ConfigError, match=match) as err:
        train(cfg, tmp_path / "out")
    assert "Fix:" in str(err.value)
    assert not (tmp_path / "out").exists()


def test_refusals_that_need_the_data(tiny_model_dir, tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="unit_field 'patient': training document 0"):
        train(config(tiny_model_dir, tmp_path, dp={"unit_field": "patient"}), tmp_path / "out")
    with pytest.raises(ConfigError, match="not below 1 / N"):
        train(config(tiny_model_dir, tmp_path, dp={"delta": 0.2}), tmp_path / "out")
    with pytest.raises(ConfigError, match="no per-unit loss"):
        unit_loss_for(nn.Linear(2, 2), "qa")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ConfigError, match="DDP"):
        train(config(tiny_model_dir, tmp_path), tmp_path / "out")


def test_the_extra_is_named_when_opacus_is_missing(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "opacus", None)  # import opacus raises ImportError
    with pytest.raises(MissingExtraError, match=r"pip install 'medtune\[privacy\]' -c constraints.txt"):
        train(config(tiny_model_dir, tmp_path), tmp_path / "out")


def test_privacy_picks_the_private_run_and_others_refuse_it(tiny_model_dir, tmp_path):
    cfg = config(tiny_model_dir, tmp_path)
    assert run_class(cfg) is PrivateTrainingRun and cfg.training.group_by_length is False
    assert run_class(config(tiny_model_dir, tmp_path, privacy=False)) is TrainingRun
    with pytest.raises(ConfigError, match="does not implement the privacy: section"):
        TrainingRun(cfg)
    with pytest.raises(ConfigError, match="does not account privacy"):
        PrivateTrainingRun(cfg).fit_steps(1)
    PrivateTrainingRun(config(tiny_model_dir, tmp_path, "relation", model={"labels": None}))  # the schema names them


# ----------------------------------------------------------------------------- private runs
def test_a_private_run_stays_within_budget_and_loads(tiny_model_dir, tmp_path):
    cfg = config(tiny_model_dir, tmp_path, dev=True, training={"epochs": 2})
    (tmp_path / "private.yaml").write_text(cfg.to_yaml(), encoding="utf-8")
    run = CliRunner().invoke(app, ["train", str(tmp_path / "private.yaml"), "--output", str(tmp_path / "model")],
                             catch_exceptions=False)
    assert run.exit_code == 0, run.output
    privacy = json.loads((tmp_path / "model" / "metrics.json").read_text())["privacy"]
    assert f"privacy: epsilon {privacy['epsilon_spent']:.4f} spent of 8.0" in run.output  # the run's log
    assert 0 < privacy["epsilon_spent"] <= privacy["epsilon_target"] == 8
    assert privacy["units"] == 12 and privacy["delta"] == pytest.approx(1 / 120)
    assert privacy["steps"] == privacy["planned_steps"] == 8 and not privacy["stopped_by_budget"]  # 2 * int(12/3)
    saved = RunConfig.from_yaml(tmp_path / "model" / "medtune_config.yaml")
    assert saved.privacy == cfg.privacy and saved.training.group_by_length is False
    card = (tmp_path / "model" / "README.md").read_text()
    assert "## Privacy" in card and f"ε = {privacy['epsilon_spent']:.2f}" in card
    train_metrics = json.loads((tmp_path / "model" / "metrics.json").read_text())["train"]
    assert train_metrics["windows"] > train_metrics["documents"] == 12
    with safe_open(str(tmp_path / "model" / "model.safetensors"), framework="pt") as weights:
        keys = list(weights.keys())
    assert keys and not [k for k in keys if "_module" in k or "grad_sample" in k]  # the plain model
    nlp = medtune.load(tmp_path / "model")
    text = "The patient has breast cancer and fever."
    first, again = nlp(text), nlp(text)
    assert first.text == text and [s.key() for s in first.spans] == [s.key() for s in again.spans]
    assert all(0 <= s.start < s.end <= len(text) for s in first.spans)


class ShortBudget(PrivateTrainingRun):
    """A plan for 3 steps while the Trainer is set for 6: the budget callback must stop it."""

    def make_plan(self, units, max_steps):
        return super().make_plan(units, 3)


def test_training_stops_before_the_budget_is_exceeded(tiny_model_dir, tmp_path):
    cfg = config(tiny_model_dir, tmp_path, training={"max_steps": 6})
    result = ShortBudget(cfg, tmp_path / "model").run()
    privacy = result.metrics["privacy"]
    assert privacy["steps"] == privacy["planned_steps"] == 3 and privacy["stopped_by_budget"]
    assert privacy["epsilon_spent"] <= 8


class StopAtFirstSave(TrainerCallback):
    def on_save(self, args, state, control, **kwargs):
        raise RuntimeError("interrupted after the first checkpoint")


def test_resuming_needs_the_same_privacy_plan(tiny_model_dir, tmp_path):
    out = tmp_path / "model"
    cfg = config(tiny_model_dir, tmp_path, training={"epochs": 2})
    with pytest.raises(RuntimeError, match="interrupted"):
        train(cfg, out, callbacks=[StopAtFirstSave()])
    checkpoint = next((out / "checkpoints").iterdir())
    assert json.loads((checkpoint / "privacy.json").read_text())["steps_taken"] == 4
    with pytest.raises(ConfigError, match="privacy plan differs from the checkpoint's in epsilon"):
        train(config(tiny_model_dir, tmp_path, training={"epochs": 2}, dp={"epsilon": 3}), out, resume=True)
    with pytest.raises(ConfigError, match="written by a differentially private run"):
        train(config(tiny_model_dir, tmp_path, training={"epochs": 2}, privacy=False), out, resume=True)
    result = train(cfg, out, resume=True)
    assert result.metrics["privacy"]["steps"] == 8 and result.metrics["privacy"]["epsilon_spent"] <= 8


def test_head_only_trains_the_head_and_leaves_the_encoder_as_pretrained(tiny_model_dir, tmp_path):
    from transformers import AutoModel

    cfg = config(tiny_model_dir, tmp_path, "classification", dp={"head_only": True}, training={"epochs": 2})
    result = train(cfg, tmp_path / "model")
    assert 0 < result.metrics["privacy"]["epsilon_spent"] <= 8
    pretrained = AutoModel.from_pretrained(tiny_model_dir).state_dict()
    with safe_open(str(tmp_path / "model" / "model.safetensors"), framework="pt") as weights:
        saved = {k: weights.get_tensor(k) for k in weights.keys()}
    encoder = {k.split("encoder.", 1)[1]: v for k, v in saved.items() if k.startswith("encoder.")}
    head = {k: v for k, v in saved.items() if not k.startswith("encoder.")}
    assert encoder and head
    shared = [name for name in encoder if name in pretrained]
    assert len(shared) > len(encoder) // 2
    for name in shared:
        assert torch.equal(encoder[name], pretrained[name]), name  # not one encoder weight moved
    _, start, _ = _prepared_model(cfg)
    trainable = [n for n, p in start.named_parameters() if p.requires_grad]
    assert trainable and all(not n.startswith("encoder.") for n in trainable)


def test_train_top_layers_moves_only_the_top_layers_and_the_head(tiny_model_dir, tmp_path):
    from transformers import AutoModel

    cfg = config(tiny_model_dir, tmp_path, "classification", dp={"train_top_layers": 1}, training={"epochs": 2})
    _, start, _ = _prepared_model(cfg)
    trainable = {n for n, p in start.named_parameters() if p.requires_grad}
    assert any(n.startswith("encoder.encoder.layer.1.") for n in trainable)
    assert all(n.startswith("encoder.encoder.layer.1.") or not n.startswith("encoder.") for n in trainable)
    result = train(cfg, tmp_path / "model")
    assert result.metrics["privacy"]["frozen"] == ["embeddings", "encoder.layer.0", "pooler"]
    pretrained = AutoModel.from_pretrained(tiny_model_dir).state_dict()
    with safe_open(str(tmp_path / "model" / "model.safetensors"), framework="pt") as weights:
        encoder = {k.split("encoder.", 1)[1]: weights.get_tensor(k) for k in weights.keys() if k.startswith("encoder.")}
    moved = {name for name in encoder if name in pretrained and not torch.equal(encoder[name], pretrained[name])}
    assert moved and all(name.startswith("encoder.layer.1.") for name in moved)

    with pytest.raises(ConfigError, match="train_top_layers is 3 but the encoder has 2 layers"):
        train(config(tiny_model_dir, tmp_path, "classification", dp={"train_top_layers": 3}), tmp_path / "m3")
    from medtune.training.privacy import freeze_public_parts
    for option in ({"head_only": True}, {"top_layers": 1}):  # a bare encoder: the head would be frozen too
        with pytest.raises(ConfigError, match="needs a model with an encoder and a task head"):
            freeze_public_parts(nn.Linear(2, 2), word_embeddings=True, **option)
    with pytest.raises(ConfigError, match="head_only or train_top_layers, not both"):
        config(tiny_model_dir, tmp_path, "classification", dp={"train_top_layers": 1, "head_only": True})

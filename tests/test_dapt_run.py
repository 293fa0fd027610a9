"""medtune pretrain's run: the block order across --resume, the fingerprint of a run, gradient
accumulation, an unfinished model, the card; benchmarks/dapt.py's like-for-like rules."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch

from medtune.pretraining.config import PretrainConfig, PretrainError
from medtune.pretraining.corpus import Corpus
from medtune.pretraining.masking import MaskingCollator
from medtune.pretraining.packing import BlockView
from medtune.pretraining.run import _last_checkpoint, checkpoint_dir, pretrain

TEXTS = ["The patient has hypertension and fever, no cough.",
         "Severe thrombocytopenia with a rare syndrome was seen in the patient.",
         "She denies cough but has a protein deficiency and nephropathy."]


def _config(tiny_model_dir, **training):
    settings = {"max_steps": 9, "batch_size": 4, "bf16": "false", "progress_bar": False, "eval_every": 3,
                "save_every": 3, "held_out_fraction": 0.2, "head_warmup_steps": 1, "learning_rate": 1e-3,
                **training}
    return PretrainConfig.from_dict({"base_model": str(tiny_model_dir), "corpus": {"corpora": ["texts"]},
                                     "packing": {"max_length": 24}, "training": settings})


def _corpus(n=8, extra=""):
    texts = [TEXTS[i % len(TEXTS)] + f" Case {i}.{extra}" for i in range(n)]
    return Corpus(texts=texts, excluded_ids=[], card={"documents": n, "corpora": {}})


@pytest.fixture()
def seen(monkeypatch):
    """The training batches, as lists of block indices, in the order the collator is given them."""
    batches: list[list[int]] = []
    get, call = BlockView.__getitem__, MaskingCollator.__call__

    def getitem(self, i):
        return {**get(self, i), "block": self.indices[i]}

    def collate(self, features):
        if all("block" in f for f in features):
            batches.append([f["block"] for f in features])
        return call(self, [{k: v for k, v in f.items() if k != "block"} for f in features])

    monkeypatch.setattr(BlockView, "__getitem__", getitem)
    monkeypatch.setattr(MaskingCollator, "__call__", collate)
    return batches


def test_a_run_resumed_twice_trains_on_the_blocks_of_an_uninterrupted_one(tiny_model_dir, tmp_path, seen):
    """Stops in the middle of the first and of the second epoch (set_epoch); the step-0 held-out loss
    (which draws masks) runs in the first part only."""
    whole = pretrain(_config(tiny_model_dir), tmp_path / "whole", corpus=_corpus())
    per_epoch = -(-whole["corpus"]["train_blocks"] // 4)
    assert whole["steps"] == 9 and per_epoch == 3  # three epochs of three steps
    uninterrupted = list(seen[:9])
    lengths = {i: len(whole_block) for i, whole_block in enumerate(_blocks(tiny_model_dir))}
    seen.clear()
    first = pretrain(_config(tiny_model_dir, max_tokens=1), tmp_path / "split", corpus=_corpus())
    assert first["steps"] == 1
    parts = [seen[:1]]
    seen.clear()
    # stop after step 5, the middle of the second epoch: the tokens of the uninterrupted run's first 5 steps
    tokens = sum(lengths[i] for batch in uninterrupted[:5] for i in batch)
    second = pretrain(_config(tiny_model_dir, max_tokens=tokens), tmp_path / "split", resume=True, corpus=_corpus())
    assert second["steps"] == 5 and second["resumed"]
    parts.append(seen[:4])
    seen.clear()
    third = pretrain(_config(tiny_model_dir), tmp_path / "split", resume=True, corpus=_corpus())
    assert third["steps"] == 9 and third["complete"]
    parts.append(seen[:4])
    assert [b for part in parts for b in part] == uninterrupted


def _blocks(tiny_model_dir):
    from transformers import AutoTokenizer

    from medtune.pretraining.packing import pack

    blocks = pack(AutoTokenizer.from_pretrained(tiny_model_dir), _corpus().texts, 24)
    return [blocks[i]["input_ids"] for i in range(len(blocks))]


def test_resume_and_complete_refuse_another_corpus_or_settings(tiny_model_dir, tmp_path):
    out = tmp_path / "run"
    first = pretrain(_config(tiny_model_dir, max_steps=4, max_tokens=1, held_out_fraction=0.0), out,
                     corpus=_corpus())
    assert first["steps"] == 1 and first["fingerprint"]["documents"] == 8
    progress = json.loads((checkpoint_dir(out) / "checkpoint-1" / "medtune-pretraining-progress.json").read_text())
    assert progress["fingerprint"] == first["fingerprint"]
    with pytest.raises(PretrainError, match=r"E310.*checkpoint-1.*corpus \(8 documents.*Fix:.*delete"):
        pretrain(_config(tiny_model_dir, max_steps=4, held_out_fraction=0.0), out, resume=True,
                 corpus=_corpus(extra=" Changed."))
    with pytest.raises(PretrainError, match=r"checkpoint-1: written by a run of another masking"):
        bad = _config(tiny_model_dir, max_steps=4, held_out_fraction=0.0)
        bad.masking.strategy = "span"
        pretrain(bad, out, resume=True, corpus=_corpus())
    # a time budget or max_tokens of this part may differ: they do not change what is trained
    done = pretrain(_config(tiny_model_dir, max_steps=4, held_out_fraction=0.0, time_budget_minutes=30), out,
                    resume=True, corpus=_corpus())
    assert done["complete"] and done["steps"] == 4
    again = pretrain(_config(tiny_model_dir, max_steps=4, held_out_fraction=0.0), out, resume=True, corpus=_corpus())
    assert again.get("already_complete")
    with pytest.raises(PretrainError, match=r"pretraining.json: written by a run of another corpus"):
        pretrain(_config(tiny_model_dir, max_steps=4, held_out_fraction=0.0), out, resume=True,
                 corpus=_corpus(n=9))


def test_the_card_records_every_part(tiny_model_dir, tmp_path):
    out = tmp_path / "parts"
    pretrain(_config(tiny_model_dir, max_steps=3, max_tokens=1, held_out_fraction=0.0), out, corpus=_corpus())
    progress = checkpoint_dir(out) / "checkpoint-1" / "medtune-pretraining-progress.json"
    saved = json.loads(progress.read_text(encoding="utf-8"))
    saved["peak_rss_mb"] = 1e7  # as if the first part had peaked higher than anything this one reaches
    progress.write_text(json.dumps(saved), encoding="utf-8")
    card = pretrain(_config(tiny_model_dir, max_steps=3, held_out_fraction=0.0), out, resume=True,
                    corpus=_corpus())
    assert card["peak_rss_mb"] == 1e7
    assert card["corpus_build_seconds"] >= saved["corpus_build_seconds"] and "corpus building" in card["hours_cover"]
    assert card["clinical_notes"] == [] and card["sharing"] is None


def test_a_card_of_clinical_notes_says_so(tiny_model_dir, tmp_path):
    corpus = _corpus()
    corpus.card["clinical_notes"] = ["physionet-deid"]
    card = pretrain(_config(tiny_model_dir, max_steps=1, held_out_fraction=0.0), tmp_path / "notes", corpus=corpus)
    saved = json.loads((tmp_path / "notes" / "pretraining.json").read_text(encoding="utf-8"))
    assert saved["clinical_notes"] == ["physionet-deid"] == card["clinical_notes"]
    assert "clinical notes" in saved["sharing"] and "licence" in saved["sharing"]


def test_an_unfinished_checkpoint_is_not_the_last_one(tmp_path):
    for step, finished in ((2, True), (4, False)):
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        if finished:
            (folder / "trainer_state.json").write_text("{}", encoding="utf-8")
    assert _last_checkpoint(tmp_path) == tmp_path / "checkpoint-2"


def test_gradient_accumulation_averages_the_micro_batches(tiny_model_dir, tmp_path):
    """Two accumulated micro-batches give the mean of their gradients (the mean loss is divided by 2)."""
    from transformers import AutoTokenizer, TrainingArguments

    from medtune.pretraining.config import MaskingConfig
    from medtune.pretraining.packing import pack
    from medtune.pretraining.run import MaskedLMTrainer, load_masked_lm

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    blocks = pack(tokenizer, TEXTS, 24)
    collator = MaskingCollator(tokenizer, MaskingConfig(probability=0.3))
    batches = [collator([blocks[0], blocks[1]]), collator([blocks[2], blocks[3]])]
    grads = []
    for accumulation, parts in ((1, [batches[0]]), (1, [batches[1]]), (2, batches)):
        torch.manual_seed(0)  # the same fresh head each time
        model, _ = load_masked_lm(str(tiny_model_dir), "tiny")
        for module in model.modules():  # no dropout: the same batch gives the same gradient
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0
        args = TrainingArguments(output_dir=str(tmp_path / "ga"), use_cpu=True, report_to="none",
                                 per_device_train_batch_size=2, gradient_accumulation_steps=accumulation)
        trainer = MaskedLMTrainer(model=model, args=args, data_collator=collator)
        assert not trainer.model_accepts_loss_kwargs  # the Trainer must divide our mean loss itself
        trainer.current_gradient_accumulation_steps = accumulation
        model.train()
        for batch in parts:
            n = int((batch["labels"] != -100).sum())
            trainer.training_step(model, dict(batch), num_items_in_batch=torch.tensor(n * len(parts)))
        grads.append(model.get_input_embeddings().weight.grad.clone())
    assert torch.allclose(grads[2], (grads[0] + grads[1]) / 2, atol=1e-6)


def test_an_unfinished_base_model_is_used_with_a_warning(tiny_model_dir, tmp_path, caplog):
    import shutil

    from medtune.bench import base_model_pretraining
    from medtune.models.encoder import resolve_base_model

    out = tmp_path / "unfinished"
    shutil.copytree(tiny_model_dir, out)
    (out / "pretraining.json").write_text(json.dumps({"steps": 120, "max_steps": 900, "complete": False,
                                                      "date": "2026-11-20"}), encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="medtune.models.encoder"):
        assert resolve_base_model(str(out)) == str(out)
    assert "unfinished pretraining run: 120 of 900 steps" in caplog.text
    assert base_model_pretraining(str(out)) == {"steps": 120, "max_steps": 900, "complete": False,
                                                "date": "2026-11-20"}
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="medtune.models.encoder"):
        resolve_base_model(str(tiny_model_dir))
    assert "unfinished" not in caplog.text and base_model_pretraining(str(tiny_model_dir)) is None


# ------------------------------------------------------------------ benchmarks/dapt.py
@pytest.fixture()
def dapt(monkeypatch):
    from helpers import load_benchmark

    return load_benchmark(monkeypatch, "dapt.py", "dapt_benchmark")


def _row(task, seed, f1, **extra):
    return {"task": task, "seed": seed, "quick": False, "metrics": {"f1": f1}, **extra}


def test_compare_lists_missing_tasks_and_leaves_two_stage_tasks_out_of_the_mean(dapt):
    default = [_row("ncbi-disease", 1, 0.80), _row("ncbi-disease-transfer", 1, 0.80), _row("chemprot", 1, 0.5)]
    adapted = [_row("ncbi-disease", 1, 0.82), _row("ncbi-disease-transfer", 1, 0.90), _row("bc2gm", 1, 0.7)]
    got = dapt.compare(default, adapted, ["ncbi-disease", "ncbi-disease-transfer", "chemprot", "bc2gm", "hoc"])
    assert got["missing"] == {"chemprot": "adapted", "bc2gm": "default", "hoc": "both"}
    assert got["mean_gain_ner_relation"] == 2.0  # the transfer task's +10 is not in it
    assert not got["tasks"]["ncbi-disease-transfer"]["in_mean_gain"]


def test_reuse_is_like_for_like_only(dapt, tmp_path):
    root = Path(__file__).parent.parent
    config = str(root / "configs" / "ncbi-disease.yaml")
    from medtune.config import RunConfig

    default_base = RunConfig.from_yaml(config).base_model
    same = _row("ncbi-disease", 1, 0.8, base_model=default_base, config=config, overrides={})
    check = dict(name="ncbi-disease", seed=1, quick=False, base_model=None, overrides={}, root=root)
    assert dapt.reusable(same, **check) == (True, "")
    assert not dapt.reusable({**same, "base_model": str(tmp_path)}, **check)[0]
    assert not dapt.reusable({**same, "overrides": {"training.max_steps": 5}}, **check)[0]
    assert not dapt.reusable({**same, "config": str(tmp_path / "other.yaml")}, **check)[0]
    assert not dapt.reusable({**same, "seed": 2}, **check)[0]
    legacy = {k: v for k, v in same.items() if k not in ("config", "overrides")}
    assert dapt.reusable(legacy, **check)[0] and not dapt.reusable(legacy, **{**check, "overrides": {"x": 1}})[0]
    earliest = {k: v for k, v in legacy.items() if k != "base_model"}  # rows that record no base model either
    assert dapt.reusable(earliest, **check)[0]
    assert not dapt.reusable(earliest, **{**check, "base_model": str(tmp_path)})[0]  # never for the adapted side
    assert not dapt.reusable(earliest, **{**check, "overrides": {"x": 1}})[0]
    adapted = {**same, "base_model": str(tmp_path), "base_model_pretraining": {"steps": 1}}
    assert not dapt.reusable(adapted, **{**check, "base_model": str(tmp_path)})[0]  # not that model's state now
    assert dapt.reusable({**adapted, "base_model_pretraining": None}, **{**check, "base_model": str(tmp_path)})[0]


def test_max_steps_smoke_runs_need_a_scratch_root(dapt, capsys):
    with pytest.raises(SystemExit) as refused:
        dapt.main(["--max-steps", "5", "--tasks", "ncbi-disease"])
    assert refused.value.code == 2 and "--root" in capsys.readouterr().err

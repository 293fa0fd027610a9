"""One contract every task inherits: train -> save -> load -> predict the same; overfit a handful.

A new task (or head) gets the whole suite by subclassing ``TaskContract`` and saying how to make its
documents and config (flair's BaseModelTest idea).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import medtune
from medtune.config import RunConfig
from medtune.document import Document
from medtune.io.jsonl import write_jsonl
from medtune.training import train

from helpers import assertion_docs, cls_docs, ner_docs, qa_docs, rel_docs


class TaskContract:
    task: str = ""
    model_options: dict = {}
    overfit_steps = 80

    def make_docs(self, split: str) -> list[Document]:
        raise NotImplementedError

    def config(self, tiny_model_dir: Path, tmp_path: Path, **training) -> RunConfig:
        paths = {}
        for split in ("train", "dev"):
            paths[split] = str(tmp_path / f"{split}.jsonl")
            write_jsonl(self.make_docs(split), paths[split])
        return RunConfig.from_dict({
            "task": self.task,
            "base_model": str(tiny_model_dir),
            "data": {"train": paths["train"], "dev": paths["dev"], "format": "jsonl"},
            "model": {"max_length": 32, "stride": 8, **self.model_options},
            "training": {"epochs": 2, "batch_size": 4, "learning_rate": 1e-3, "progress_bar": False,
                         "bf16": "false", "logging_steps": 1000, **training},
        })

    @pytest.fixture(scope="class")
    def trained(self, tiny_model_dir, tmp_path_factory):
        tmp = tmp_path_factory.mktemp(f"contract-{type(self).__name__}")
        cfg = self.config(tiny_model_dir, tmp, max_steps=self.overfit_steps, learning_rate=3e-3,
                          warmup_ratio=0.0, early_stopping_patience=None)
        result = train(cfg, tmp / "model")
        return result, cfg

    def test_model_directory_as_base_model_starts_from_its_encoder(self, trained):
        """base_model: a medtune model directory -> its fine-tuned encoder, head left behind."""
        import torch
        from safetensors.torch import load_file

        from medtune.models.encoder import build_encoder

        result, _ = trained
        encoder = build_encoder(str(result.output_dir))
        saved = load_file(str(result.output_dir / "model.safetensors"))
        state = encoder.state_dict()
        assert state and all(torch.equal(v, saved["encoder." + k]) for k, v in state.items() if "encoder." + k in saved)
        assert sum(1 for k in state if "encoder." + k in saved) >= len(state) - 2  # all but an unused pooler

    def test_model_directory_is_complete(self, trained):
        result, _ = trained
        out = result.output_dir
        for name in ("model.safetensors", "config.json", "tokenizer.json", "medtune_config.yaml",
                     "metrics.json", "README.md"):
            assert (out / name).exists(), name
        meta = json.loads((out / "config.json").read_text())["medtune"]
        assert meta["task"] == self.task and meta["version"] == medtune.__version__
        assert not (out / "checkpoints").exists()
        card = (out / "README.md").read_text()
        assert "does not replace clinical judgement" in card

    def test_overfits_training_documents(self, trained):
        result, _ = trained
        docs = self.make_docs("train")
        nlp = medtune.load(result.output_dir, mode="fp32")
        preds = list(nlp.pipe(docs))
        assert nlp.task.metrics(docs, preds)["f1"] == pytest.approx(1.0)

    def test_load_predicts_what_training_measured(self, trained):
        """Metrics computed in memory right after training equal those of the reloaded model."""
        result, _ = trained
        docs = self.make_docs("dev")
        nlp = medtune.load(result.output_dir, mode="fp32")
        preds = list(nlp.pipe(docs, batch_size=3))
        again = list(medtune.load(result.output_dir, mode="fp32").pipe(docs, batch_size=7))
        # batch composition changes padding, hence float rounding: decisions must agree, scores closely
        assert [[s.key() for s in p.spans] for p in preds] == [[s.key() for s in p.spans] for p in again]
        assert [p.labels for p in preds] == [p.labels for p in again]
        assert [[(r.head, r.tail, r.label) for r in p.relations] for p in preds] == \
            [[(r.head, r.tail, r.label) for r in p.relations] for p in again]
        assert [[s.attributes for s in p.spans] for p in preds] == [[s.attributes for s in p.spans] for p in again]
        for p, q in zip(preds, again):
            assert [s.score for s in p.spans] == pytest.approx([s.score for s in q.spans], abs=1e-4)
            assert p.label_scores == pytest.approx(q.label_scores, abs=1e-4)
            assert [r.score for r in p.relations] == pytest.approx([r.score for r in q.relations], abs=1e-4)
        measured = nlp.task.metrics(docs, preds)["f1"]
        assert measured == pytest.approx(result.metrics["dev"]["f1"], abs=1e-9)

    def test_predictions_keep_text_and_ids(self, trained):
        result, _ = trained
        docs = self.make_docs("dev")
        preds = list(medtune.load(result.output_dir, mode="fp32").pipe(docs))
        assert [p.id for p in preds] == [d.id for d in docs]
        for doc, pred in zip(docs, preds):
            assert pred.text == doc.text
            for span in pred.spans:
                assert pred.text[span.start:span.end] == span.text

    def test_wrong_task_is_refused(self, trained):
        from medtune.errors import ModelError
        from medtune.models.store import load_model

        result, _ = trained
        other = "classification" if self.task == "ner" else "ner"
        with pytest.raises(ModelError, match=f"is a '{self.task}' model"):
            load_model(result.output_dir, expected_task=other)


class TestNerLinear(TaskContract):
    task = "ner"

    def make_docs(self, split):
        return ner_docs(6, repeat=3) if split == "train" else ner_docs(3, repeat=3)


class TestNerCrfBioes(TaskContract):
    task = "ner"
    model_options = {"head": "crf", "tag_scheme": "BIOES"}

    def make_docs(self, split):
        return ner_docs(6, repeat=3) if split == "train" else ner_docs(3, repeat=3)


class TestClassificationSingleLabel(TaskContract):
    task = "classification"

    def make_docs(self, split):
        return cls_docs(10)


class TestClassificationMultiLabelPair(TaskContract):
    task = "classification"
    model_options = {"multi_label": True}

    def make_docs(self, split):
        return cls_docs(12, multi=True, pair=True)

    def test_thresholds_saved(self, trained):
        result, _ = trained
        meta = json.loads((result.output_dir / "config.json").read_text())["medtune"]
        assert set(meta["thresholds"]) == {"fever", "gene"}

    def test_epoch_choice_uses_tuned_thresholds(self, trained, monkeypatch):
        """The dev F1 that picks the epoch is the one at dev-tuned thresholds, as the model ships; at a
        fixed 0.5 these probabilities would predict nothing."""
        import numpy as np
        import torch

        result, _ = trained
        nlp = medtune.load(result.output_dir, mode="fp32")
        task, docs = nlp.task, self.make_docs("dev")
        probs = np.array([[0.3 if lab in d.labels else 0.1 for lab in task.labels] for d in docs], dtype=np.float32)
        monkeypatch.setattr(task, "probabilities", lambda *a, **k: probs)
        shipped = dict(task.thresholds)
        preds = task.dev_predictions(nlp.model, docs, batch_size=4, device=torch.device("cpu"), bf16=False)
        assert [sorted(p.labels) for p in preds] == [sorted(d.labels) for d in docs]
        assert task.thresholds == shipped  # the epoch's thresholds are not left on the (shared) task


class TestClassificationCnn(TaskContract):
    task = "classification"
    model_options = {"head": "cnn"}

    def make_docs(self, split):
        return cls_docs(10)


class TestRelation(TaskContract):
    task = "relation"

    def make_docs(self, split):
        return rel_docs(8) if split == "train" else rel_docs(4, prefix="rd")

    def test_relations_point_at_spans(self, trained):
        result, _ = trained
        docs = self.make_docs("dev")
        preds = list(medtune.load(result.output_dir, mode="fp32").pipe(docs))
        assert any(p.relations for p in preds)
        for doc, pred in zip(docs, preds):
            assert [s.key() for s in pred.spans] == [s.key() for s in doc.spans]  # spans are inputs, kept
            ids = pred.span_by_id()
            for rel in pred.relations:
                assert ids[rel.head].label == "Drug" and ids[rel.tail].label == "AE"


class TestAssertion(TaskContract):
    task = "assertion"

    def make_docs(self, split):
        return assertion_docs(10) if split == "train" else assertion_docs(5, prefix="ad")

    def test_flags_follow_the_value(self, trained):
        result, _ = trained
        preds = list(medtune.load(result.output_dir, mode="fp32").pipe(self.make_docs("dev")))
        for pred in preds:
            attrs = pred.spans[0].attributes
            assert attrs["negated"] == (attrs["assertion"] == "negated")
            assert attrs["uncertain"] == (attrs["assertion"] == "uncertain")
            assert "historical" not in attrs  # a value this model cannot decide is not invented


class TestQa(TaskContract):
    task = "qa"
    model_options = {"max_question_tokens": 8, "max_answer_tokens": 8}

    def make_docs(self, split):
        return qa_docs(16, none_every=4) if split == "train" else qa_docs(8, prefix="v", none_every=4)

    def test_answers_are_ranked_spans_of_the_context(self, trained):
        result, _ = trained
        docs = self.make_docs("dev")
        preds = list(medtune.load(result.output_dir, mode="fp32").pipe(docs))
        assert json.loads((result.output_dir / "config.json").read_text())["medtune"]["no_answer"] is True
        for doc, pred in zip(docs, preds):
            assert [s.attributes["rank"] for s in pred.spans] == list(range(1, len(pred.spans) + 1))
            assert pred.labels == ([] if doc.spans else ["no_answer"])

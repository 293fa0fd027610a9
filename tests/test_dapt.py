"""Domain-adaptive pretraining (medtune.pretraining): masking, packing, corpus exclusions, the run."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from medtune.cli import app
from medtune.config import RunConfig
from medtune.io.jsonl import write_jsonl
from medtune.pretraining.config import CorpusConfig, MaskingConfig, PretrainConfig, PretrainError
from medtune.pretraining.corpus import Corpus, build_corpus, normalise
from medtune.pretraining.masking import IGNORE, MaskingCollator, select
from medtune.pretraining.packing import SPECIAL, pack
from medtune.pretraining.run import checkpoint_dir, pretrain
from medtune.training import train

from helpers import cls_docs, ner_docs

# words outside the tiny vocabulary split into single-letter pieces: multi-piece words
TEXTS = ["The patient has hypertension and fever, no cough.",
         "Severe thrombocytopenia with a rare syndrome was seen in the patient.",
         "She denies cough but has a protein deficiency and nephropathy.",
         "Risk of breast cancer was high. The gene mutation causes cardiomyopathy."]


def _words(word_ids):
    out: dict[int, list[int]] = {}
    for i, w in enumerate(word_ids):
        if w != SPECIAL:
            out.setdefault(w, []).append(i)
    return out


def _blocks(tokenizer, max_length=24, cross_document=False):
    return pack(tokenizer, TEXTS * 3, max_length, cross_document=cross_document)


def test_whole_word_masking_takes_all_pieces_of_a_word_and_never_special_tokens(tiny_tokenizer):
    blocks = _blocks(tiny_tokenizer)
    cfg = MaskingConfig(strategy="whole_word", probability=0.3)
    rng = np.random.default_rng(0)
    special_ids = set(tiny_tokenizer.all_special_ids)
    multi_piece_masked = 0
    for i in range(len(blocks)):
        b = blocks[i]
        for _ in range(20):
            chosen = select(b["word_ids"], [t in special_ids for t in b["input_ids"]], cfg, rng)
            assert chosen.any()
            assert not any(chosen[j] for j, t in enumerate(b["input_ids"]) if t in special_ids)
            for positions in _words(b["word_ids"]).values():
                picked = {bool(chosen[j]) for j in positions}
                assert len(picked) == 1, "a word is masked in part"
                multi_piece_masked += len(positions) > 1 and picked == {True}
    assert multi_piece_masked > 0  # the test saw multi-piece words being masked whole


def test_span_masking_masks_runs_of_contiguous_whole_words(tiny_tokenizer):
    blocks = _blocks(tiny_tokenizer, max_length=64)
    cfg = MaskingConfig(strategy="span", probability=0.3, span_p=0.3)
    rng = np.random.default_rng(1)
    longest = 0
    for i in range(len(blocks)):
        b = blocks[i]
        words = _words(b["word_ids"])
        order = sorted(words)
        for _ in range(10):
            chosen = select(b["word_ids"], [False] * len(b["word_ids"]), cfg, rng)
            assert not chosen[0] and not chosen[-1]  # [CLS], [SEP]
            masked = [w for w in order if chosen[words[w][0]]]
            assert all(all(chosen[j] for j in words[w]) for w in masked)  # whole words
            run = best = 0
            for a, w in enumerate(order):  # the longest run of consecutive masked words
                run = run + 1 if w in masked else 0
                best = max(best, run)
            longest = max(longest, best)
    assert longest >= 3  # spans of several words, not isolated words


def test_collator_replaces_80_10_10_and_labels_only_the_selected_tokens(tiny_tokenizer):
    blocks = _blocks(tiny_tokenizer, max_length=64)
    collator = MaskingCollator(tiny_tokenizer, MaskingConfig(probability=0.3))
    features = [blocks[i % len(blocks)] for i in range(200)]
    batch = collator(features)
    labels, ids = batch["labels"].numpy(), batch["input_ids"].numpy()
    chosen = labels != IGNORE
    pad = batch["attention_mask"].numpy() == 0
    assert not chosen[pad].any() and not chosen[:, 0].any()
    original = np.full(ids.shape, -1)
    for row, f in enumerate(features):
        original[row, :len(f["input_ids"])] = f["input_ids"]
    assert (labels[chosen] == original[chosen]).all()
    assert (ids[~chosen & ~pad] == original[~chosen & ~pad]).all()  # nothing else changes
    masked = (ids[chosen] == tiny_tokenizer.mask_token_id).mean()
    kept = (ids[chosen] == original[chosen]).mean()
    assert 0.7 < masked < 0.9 and 0.03 < kept < 0.2
    assert not np.isin(ids[chosen & (ids != tiny_tokenizer.mask_token_id)],
                       [tiny_tokenizer.cls_token_id, tiny_tokenizer.sep_token_id, tiny_tokenizer.pad_token_id]).any()


def test_document_aligned_packing_never_puts_two_documents_in_a_block(tiny_tokenizer):
    texts = TEXTS + [" ".join(TEXTS)]  # the last one is longer than a block
    blocks = pack(tiny_tokenizer, texts, 16)
    assert len(blocks) > len(texts)
    for d, text in enumerate(texts):
        mine = [i for i in range(len(blocks)) if blocks.block_doc[i] == d]
        inner = [t for i in mine for t in blocks[i]["input_ids"][1:-1]]
        assert inner == tiny_tokenizer(text, add_special_tokens=False)["input_ids"]
        for i in mine:
            b = blocks[i]
            assert len(b["input_ids"]) <= 16
            assert b["input_ids"][0] == tiny_tokenizer.cls_token_id and b["input_ids"][-1] == tiny_tokenizer.sep_token_id
            assert tiny_tokenizer.sep_token_id not in b["input_ids"][1:-1]  # one document's text only
        words = [w for i in mine for w in blocks[i]["word_ids"][1:-1]]
        for a, b in zip(mine, mine[1:]):  # cut between words, unless one word is longer than a block
            w = blocks[a]["word_ids"][-2]
            assert w != blocks[b]["word_ids"][1] or words.count(w) > 14


def test_stream_packing_separates_documents_by_sep(tiny_tokenizer):
    blocks = _blocks(tiny_tokenizer, max_length=16, cross_document=True)
    stream = [t for i in range(len(blocks)) for t in blocks[i]["input_ids"][1:-1]]
    expected = []
    for text in TEXTS * 3:
        expected += tiny_tokenizer(text, add_special_tokens=False)["input_ids"] + [tiny_tokenizer.sep_token_id]
    assert stream == expected[:len(stream)] and len(stream) > len(expected) * 0.9
    assert all(len(blocks[i]["input_ids"]) == 16 for i in range(len(blocks) - 1))


# ------------------------------------------------------------------ the corpus and its exclusions
def _pubtator(path, docs):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{pmid}|t|{title}\n{pmid}|a|{abstract}\n\n" for pmid, title, abstract in docs),
                    encoding="utf-8")


A = ("Copper toxicosis in terriers.", "Hepatic copper accumulation is an inherited disorder in dogs and man alike.")
B = ("Wilson disease genetics.", "The ATP7B gene was excluded in the rarer childhood cirrhosis of Indian origin. "
     "Short one.")
CLEAN = ("Naloxone and clonidine.", "Naloxone reverses the antihypertensive effect of clonidine in rats.")
TRAIN = ("Ataxia telangiectasia.", "The ATM gene is mutated in families with ataxia telangiectasia and cancer.")


@pytest.fixture()
def fake_data(tmp_path):
    root = tmp_path / "data"
    ncbi = root / "ncbi_disease" / "original-data"
    _pubtator(ncbi / "train" / "NCBItrainset_corpus.txt", [("100", *TRAIN)])
    _pubtator(ncbi / "devel" / "NCBIdevelopset_corpus.txt", [("101", *CLEAN)])
    _pubtator(ncbi / "test" / "NCBItestset_corpus.txt", [("111", *A), ("112", *B)])
    cdr = root / "bc5cdr" / "original-data"
    _pubtator(cdr / "CDR_TrainingSet.PubTator.txt", [
        ("900", *A),  # an NCBI test abstract under another PMID: its text
        ("111", "Another title.", "Quite different words about copper in the liver of dogs, for the id test."),
        ("901", "Mixed.", "Unrelated opening words here. The ATP7B gene was excluded in the rarer childhood "
                          "cirrhosis of Indian origin. More words."),  # one long NCBI test sentence
        ("902", *CLEAN),
        ("903", *TRAIN),  # the NCBI training abstract again (another PMID): a duplicate
    ])
    _pubtator(cdr / "CDR_DevelopmentSet.PubTator.txt", [("904", *CLEAN)])
    _pubtator(cdr / "CDR_TestSet.PubTator.txt", [("905", "Test only.", "A BC5CDR test abstract about drugs.")])
    return root


def test_test_documents_are_absent_from_the_corpus_whatever_corpus_brings_them(fake_data):
    corpus = build_corpus(CorpusConfig(corpora=["ncbi-disease", "bc5cdr"]), data_dir=fake_data)
    kept = {normalise(t) for t in corpus.texts}
    assert kept == {normalise(" ".join(TRAIN)), normalise(" ".join(CLEAN))}
    for pmid in ("111", "112", "905"):
        assert f"pmid:{pmid}" in corpus.excluded_ids
    assert corpus.card["dropped"] == {"test_text": 1, "test_id": 1, "test_sentence": 1, "duplicate": 1}
    assert {"ncbi-disease", "bc5cdr"} <= set(corpus.card["test_splits_checked"])
    assert "hoc" in corpus.card["test_splits_not_found"]
    for t in corpus.texts:  # no test sentence of any length survives
        assert normalise(A[1]) not in normalise(t) and "atp7b" not in normalise(t)


def test_dry_run_prints_counts_and_no_text(fake_data, monkeypatch, tiny_model_dir):
    monkeypatch.setenv("MEDTUNE_DATA_DIR", str(fake_data))
    result = CliRunner().invoke(app, ["pretrain", "--data", "ncbi-disease,bc5cdr", "--base-model",
                                      str(tiny_model_dir), "--dry-run"])
    assert result.exit_code == 0, result.output
    counts = json.loads(result.output)
    assert counts["documents"] == 2 and counts["tokens"] > 0 and counts["blocks"] >= 2
    assert "Naloxone" not in result.output and "ATM gene" not in result.output


def test_the_test_split_and_a_yaml_test_split_are_refused(tmp_path):
    result = CliRunner().invoke(app, ["pretrain", "--data", "ncbi-disease", "--split", "test",
                                      "--output", str(tmp_path / "x")])
    assert result.exit_code == 2 and "E310" in result.output and "leaks" in result.output
    (tmp_path / "p.yaml").write_text("corpus: {corpora: [ncbi-disease], splits: [test]}\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["pretrain", str(tmp_path / "p.yaml"), "--output", str(tmp_path / "x")])
    assert result.exit_code == 2 and "corpus.splits" in result.output


def test_shipped_pretraining_configs_are_valid():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "configs"
    med = PretrainConfig.from_yaml(root / "pretrain-med.yaml")
    assert med.masking.strategy == "whole_word" and med.packing.max_length == 128
    assert "chemprot" not in med.corpus.corpora and med.corpus.splits == ["train"]
    assert PretrainConfig.from_yaml(root / "pretrain-tapt-ncbi.yaml").corpus.corpora == ["ncbi-disease"]
    with pytest.raises(Exception, match="masking.strategie"):
        PretrainConfig.from_yaml(root / "pretrain-med.yaml", {"masking.strategie": "span"})


# ------------------------------------------------------------------ the run
def _config(tiny_model_dir, **training):
    settings = {"max_steps": 4, "batch_size": 4, "bf16": "false", "progress_bar": False, "eval_every": 2,
                "save_every": 2, "held_out_fraction": 0.2, "head_warmup_steps": 1, "learning_rate": 1e-3,
                **training}
    return PretrainConfig.from_dict({"base_model": str(tiny_model_dir), "corpus": {"corpora": ["texts"]},
                                     "packing": {"max_length": 24}, "training": settings})


def _corpus(n=24):
    texts = [TEXTS[i % len(TEXTS)] + f" Case {i}." for i in range(n)]
    return Corpus(texts=texts, excluded_ids=["pmid:1"], card={"documents": n, "corpora": {}})


@pytest.fixture(scope="module")
def pretrained(tiny_model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("dapt") / "tiny-med"
    card = pretrain(_config(tiny_model_dir), out, corpus=_corpus())
    return out, card


def test_a_fresh_head_is_trained_and_the_card_records_the_run(pretrained):
    out, card = pretrained
    assert card["fresh_head"] is True and card["head_warmup_steps"] == 1  # the tiny base is a plain BertModel
    assert card["steps"] == 4 and card["complete"] and card["tokens_seen"] > 0
    assert [h["step"] for h in card["held_out_losses"]] == [0, 2, 4]  # before training, then every 2 steps
    assert all(h["loss"] > 0 for h in card["held_out_losses"]) and card["corpus"]["held_out_blocks"] > 0
    saved = json.loads((out / "pretraining.json").read_text(encoding="utf-8"))
    for key in ("hours", "peak_rss_mb", "cpu", "torch", "tokens_seen", "steps"):
        assert key in saved
    assert (out / "excluded_test_ids.txt").read_text(encoding="utf-8") == "pmid:1\n"
    assert (out / "model.safetensors").exists() and (out / "tokenizer.json").exists()

    from transformers import AutoModelForMaskedLM

    model, info = AutoModelForMaskedLM.from_pretrained(out, output_loading_info=True)
    assert not info["missing_keys"]  # the head is saved now
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight


def test_the_head_warmup_leaves_the_encoder_untouched(tiny_model_dir, tmp_path):
    from safetensors.torch import load_file

    out = tmp_path / "warm"
    pretrain(_config(tiny_model_dir, max_steps=2, head_warmup_steps=2, held_out_fraction=0.0), out, corpus=_corpus())
    before = load_file(str(tiny_model_dir / "model.safetensors"))
    after = {k.removeprefix("bert."): v for k, v in load_file(str(out / "model.safetensors")).items()}
    assert all(np.allclose(before[k].numpy(), after[k].numpy()) for k in before if not k.startswith("pooler."))
    assert any(k.startswith("cls.") for k in after)


@pytest.mark.parametrize("task", ["ner", "classification"])
def test_a_pretrained_directory_is_a_base_model(pretrained, tmp_path, task):
    out, _ = pretrained
    docs = ner_docs(4) if task == "ner" else cls_docs(6)
    write_jsonl(docs, tmp_path / "train.jsonl")
    cfg = RunConfig.from_dict({
        "task": task, "base_model": str(out), "data": {"train": str(tmp_path / "train.jsonl"), "format": "jsonl"},
        "model": {"max_length": 32, "stride": 8},
        "training": {"max_steps": 2, "batch_size": 2, "progress_bar": False, "bf16": "false"}})
    assert (train(cfg, tmp_path / task).output_dir / "model.safetensors").exists()


def test_resume_continues_from_the_checkpoint(tiny_model_dir, tmp_path):
    out = tmp_path / "resumable"
    first = pretrain(_config(tiny_model_dir, max_steps=6, max_tokens=1), out, corpus=_corpus())
    assert first["stopped_by"] == "max_tokens" and first["steps"] == 1 and not first["complete"]
    assert (out / "config.json").exists() and any(checkpoint_dir(out).glob("checkpoint-1"))
    with pytest.raises(PretrainError, match="--resume"):
        pretrain(_config(tiny_model_dir, max_steps=6), out, corpus=_corpus())
    second = pretrain(_config(tiny_model_dir, max_steps=6), out, resume=True, corpus=_corpus())
    assert second["resumed"] and second["steps"] == 6 and second["complete"]
    assert second["tokens_seen"] > first["tokens_seen"]
    assert [h["step"] for h in second["held_out_losses"]] == [0, 2, 4, 6]  # step 0 from the first part
    again = pretrain(_config(tiny_model_dir, max_steps=6), out, resume=True, corpus=_corpus())
    assert again.get("already_complete") and again["steps"] == 6


def test_a_built_base_model_name_resolves_or_names_its_make_target(pretrained, tmp_path, monkeypatch):
    import shutil

    from medtune.errors import ModelError
    from medtune.models.encoder import resolve_base_model

    monkeypatch.setenv("MEDTUNE_MODELS_DIR", str(tmp_path))
    with pytest.raises(ModelError, match=r"E410.*make base-model"):
        resolve_base_model("medtune-minilm-med")
    shutil.copytree(pretrained[0], tmp_path / "medtune-minilm-med")
    assert resolve_base_model("medtune-minilm-med") == str(tmp_path / "medtune-minilm-med")


def test_bench_names_adapted_runs_after_their_base_model():
    from medtune.bench import base_model_tag, run_name

    assert run_name("ncbi-disease", quick=False, seed=1) == "ncbi-disease-seed1"
    tag = base_model_tag("models/medtune-minilm-med/")
    assert run_name("ncbi-disease", quick=False, seed=1, tag=tag) == "ncbi-disease-seed1-medtune-minilm-med"

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
from medtune.pretraining.corpus import Corpus, build_corpus, normalise, text_hash
from medtune.pretraining.masking import IGNORE, MaskingCollator, select
from medtune.pretraining.packing import SPECIAL, held_out_split, pack
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


def _mean_run_length(blocks, cfg, seed, draws=10):
    """Mean length, in words, of the runs of consecutive masked words (whole words checked on the way)."""
    rng = np.random.default_rng(seed)
    runs = []
    for i in range(len(blocks)):
        b = blocks[i]
        words = _words(b["word_ids"])
        order = sorted(words)
        for _ in range(draws):
            chosen = select(b["word_ids"], [False] * len(b["word_ids"]), cfg, rng)
            assert not chosen[0] and not chosen[-1]  # [CLS], [SEP]
            masked = {w for w in order if chosen[words[w][0]]}
            assert all(all(chosen[j] for j in words[w]) for w in masked)  # whole words
            run, prev = 0, None
            for w in order + [None]:
                if w in masked and (run == 0 or words[w][0] == words[prev][-1] + 1):
                    run += 1
                else:
                    if run:
                        runs.append(run)
                    run = 1 if w in masked else 0
                prev = w
    return float(np.mean(runs))


def test_span_masking_masks_runs_of_contiguous_whole_words_longer_than_whole_word_masking(tiny_tokenizer):
    blocks = _blocks(tiny_tokenizer, max_length=64)
    span = _mean_run_length(blocks, MaskingConfig(strategy="span", probability=0.15, span_p=0.2), seed=1)
    whole = _mean_run_length(blocks, MaskingConfig(strategy="whole_word", probability=0.15), seed=1)
    # SpanBERT: spans of ~3.8 words at p = 0.2 (clipped at 10); words picked one by one rarely touch
    assert whole < 1.8 and span > 3.0 and span > 2 * whole


def test_a_span_never_crosses_a_sep_and_is_cut_there():
    """``[CLS] w0 [SEP] w1 [SEP]`` (stream packing): spans are mostly drawn 2 words long, and a span over
    the [SEP] would mask both words; a span cut at the [SEP] masks one, in every draw."""
    word_ids = [SPECIAL, 0, SPECIAL, 1, SPECIAL]
    special = [True, False, True, False, True]
    cfg = MaskingConfig(strategy="span", probability=0.5, span_p=0.05)
    rng = np.random.default_rng(3)
    for _ in range(200):
        chosen = select(word_ids, special, cfg, rng)
        assert chosen[1] + chosen[3] == 1 and not chosen[[0, 2, 4]].any()


def test_collator_replaces_80_10_10_and_labels_only_the_selected_tokens(tiny_tokenizer):
    blocks = _blocks(tiny_tokenizer, max_length=64)
    collator = MaskingCollator(tiny_tokenizer, MaskingConfig(probability=0.3))
    features = [blocks[i % len(blocks)] for i in range(200)]
    batch = collator(features)
    labels, ids = batch["labels"].numpy(), batch["input_ids"].numpy()
    # what each position was, and which are special, from the features (not from the labels)
    original = np.full(ids.shape, tiny_tokenizer.pad_token_id)
    special = np.ones(ids.shape, dtype=bool)
    for row, f in enumerate(features):
        n = len(f["input_ids"])
        original[row, :n] = f["input_ids"]
        special[row, :n] = np.isin(f["input_ids"], tiny_tokenizer.all_special_ids)
    assert special[:, 0].all()
    sep_positions = original == tiny_tokenizer.sep_token_id
    assert sep_positions.sum() == len(features)  # one [SEP] per block, its last token
    assert (labels[special] == IGNORE).all() and (labels[sep_positions] == IGNORE).all()  # [CLS], [SEP], [PAD]
    assert (ids[special] == original[special]).all()  # special tokens are never replaced
    changed = ids != original
    assert (labels[changed] == original[changed]).all()  # every replaced token is a label of its original
    labelled = labels != IGNORE
    assert (labels[labelled] == original[labelled]).all()
    assert (ids[~labelled] == original[~labelled]).all()  # unlabelled tokens are untouched
    share = labelled.sum() / (~special).sum()
    assert 0.27 < share < 0.33  # 30 % of the non-special tokens are predicted
    to_mask = ids[labelled] == tiny_tokenizer.mask_token_id
    kept = ids[labelled] == original[labelled]
    random = ~to_mask & ~kept
    assert 0.75 < to_mask.mean() < 0.85 and 0.06 < kept.mean() < 0.14 and 0.06 < random.mean() < 0.14
    assert not np.isin(ids[labelled & (ids != tiny_tokenizer.mask_token_id)], tiny_tokenizer.all_special_ids).any()


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


@pytest.mark.parametrize("cross_document", [False, True])
def test_held_out_documents_are_never_in_a_training_block(tiny_tokenizer, cross_document):
    texts = [f"{TEXTS[i % 4]} Case {i}." for i in range(30)]
    blocks = pack(tiny_tokenizer, texts, 24, cross_document=cross_document)
    train, held = held_out_split(blocks, 0.2, 512, seed=7, doc_keys=[text_hash(t) for t in texts])
    assert held and train and not set(train) & set(held)

    def docs_of(indices):  # every document with a token in these blocks, from the token stream itself
        out = set()
        for i in indices:
            out |= set(range(int(blocks.block_doc[i]), int(blocks.last_docs()[i]) + 1))
        return out

    assert not docs_of(train) & docs_of(held)
    if cross_document:  # blocks do span two documents here, and the stream's boundaries are where [SEP]s are
        assert any(blocks.last_docs()[i] > blocks.block_doc[i] for i in range(len(blocks)))
        # a [SEP] inside a block, but not as its last text token, is where the block's next document starts
        seps = sum(blocks[i]["input_ids"][1:-2].count(tiny_tokenizer.sep_token_id) for i in range(len(blocks)))
        assert seps == int(sum(blocks.last_docs() - blocks.block_doc))
    # the same documents are held out when the corpus comes in another order
    order = list(range(len(texts)))[::-1]
    again = pack(tiny_tokenizer, [texts[i] for i in order], 24, cross_document=False)
    _, held_again = held_out_split(again, 0.2, 512, seed=7, doc_keys=[text_hash(texts[i]) for i in order])
    first = pack(tiny_tokenizer, texts, 24, cross_document=False)
    _, held_first = held_out_split(first, 0.2, 512, seed=7, doc_keys=[text_hash(t) for t in texts])
    assert {order[int(again.block_doc[i])] for i in held_again} == {int(first.block_doc[i]) for i in held_first}


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


def test_a_test_split_of_a_corpus_not_named_is_still_excluded(fake_data):
    corpus = build_corpus(CorpusConfig(corpora=["bc5cdr"]), data_dir=fake_data)  # ncbi-disease is not named
    kept = {normalise(t) for t in corpus.texts}
    assert normalise(" ".join(A)) not in kept  # the NCBI test abstract in BC5CDR's train split
    assert corpus.card["corpora"]["bc5cdr"]["dropped_test_text"] == 1
    assert corpus.card["corpora"]["bc5cdr"]["dropped_test_id"] == 1  # PMID 111, an NCBI test PMID
    assert "ncbi-disease" in corpus.card["test_splits_checked"] and "ncbi-disease" not in corpus.card["corpora"]
    assert kept == {normalise(" ".join(CLEAN)), normalise(" ".join(TRAIN))}


ARTICLE = ["The spike protein of the coronavirus binds the receptor of the host cell in the airway.",
           "In this cohort the incubation period was five days on average, with a long tail of cases.",
           "Masks and distancing reduced the transmission in the households that were followed here."]


def _covid_qa(root, articles):
    """A COVID-QA file: ``articles`` is ``[(document_id, paragraphs, questions)]``."""
    data = []
    for doc_id, paragraphs, questions in articles:
        context = "\n\n".join(paragraphs)
        qas = [{"question": q, "id": f"{doc_id}-{k}", "is_impossible": False,
                "answers": [{"text": context[:3], "answer_start": 0}]}
               for k, q in enumerate(questions)]
        data.append({"title": doc_id, "paragraphs": [{"context": context, "document_id": int(doc_id), "qas": qas}]})
    (root / "covid_qa").mkdir(parents=True, exist_ok=True)
    (root / "covid_qa" / "200423_covidQA.json").write_text(json.dumps({"data": data}), encoding="utf-8")


def test_a_test_article_under_several_questions_is_not_boilerplate(tmp_path):
    from medtune.datasets.qa import article_split

    ids = [str(i) for i in range(1, 60)]
    test_id = next(i for i in ids if article_split(i) == "test")
    train_ids = [i for i in ids if article_split(i) == "train"][:2]
    changed = ["A different first paragraph about ventilators in the intensive care units of the city.", *ARTICLE[1:]]
    other = ["An unrelated training article about hand washing in schools, which no test article shares.",
             "It has a second paragraph about soap and water and the time children spend at the sinks."]
    _covid_qa(tmp_path, [(test_id, ARTICLE, ["What binds?", "How long is the incubation?", "What reduced it?"]),
                         (train_ids[0], changed, ["What was used?"]), (train_ids[1], other, ["Where?"])])
    corpus = build_corpus(CorpusConfig(corpora=["covid-qa"]), data_dir=tmp_path)
    kept = " ".join(normalise(t) for t in corpus.texts)
    assert normalise(ARTICLE[1]) not in kept  # the copy with one paragraph changed is dropped, by a sentence
    assert normalise(other[0]) in kept
    assert corpus.card["corpora"]["covid-qa"]["dropped_test_sentence"] == 1
    assert corpus.card["test_boilerplate_sentences_not_used"] == 0


def test_a_sentence_in_three_different_test_texts_is_boilerplate(tmp_path):
    template = "This condition is inherited in an autosomal recessive pattern in most families."
    ncbi = tmp_path / "ncbi_disease" / "original-data"
    _pubtator(ncbi / "test" / "NCBItestset_corpus.txt",
              [(str(200 + k), f"Disease {k}.", f"Disease {k} is rare in group {k}. {template}") for k in range(3)])
    _pubtator(ncbi / "train" / "NCBItrainset_corpus.txt", [("300", "Another disease.", f"It is common. {template}")])
    _pubtator(ncbi / "devel" / "NCBIdevelopset_corpus.txt", [("301", *CLEAN)])
    corpus = build_corpus(CorpusConfig(corpora=["ncbi-disease"]), data_dir=tmp_path)
    assert any(normalise(template) in normalise(t) for t in corpus.texts)  # the template says nothing: kept
    assert corpus.card["test_boilerplate_sentences_not_used"] == 1


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


def test_bench_tags_of_two_folders_of_one_name_differ_and_the_built_name_keeps_its_tag(tmp_path, monkeypatch):
    from medtune.bench import base_model_tag

    monkeypatch.setenv("MEDTUNE_MODELS_DIR", str(tmp_path / "models"))
    a, b = tmp_path / "a" / "dapt", tmp_path / "b" / "dapt"
    a.mkdir(parents=True)
    b.mkdir(parents=True)
    assert base_model_tag(str(a)) != base_model_tag(str(b))
    assert base_model_tag(str(a)).startswith("-dapt-") and base_model_tag(str(a)) == base_model_tag(str(a) + "/")
    assert base_model_tag("medtune-minilm-med") == "-medtune-minilm-med"
    assert base_model_tag(str(tmp_path / "models" / "medtune-minilm-med")) == "-medtune-minilm-med"

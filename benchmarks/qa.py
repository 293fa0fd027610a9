"""COVID-QA: a BM25 sentence-retrieval baseline and a trained medtune QA model on the same split.

    .venv/bin/python benchmarks/qa.py [--model models/covid-qa] [--split test] [--mode auto]
                                      [--passage-prior] [--ranker DIR [--ranker-depth 50]]
                                      [--batch-size 64] [--predictions DIR] [--out FILE]

Both systems answer every question of the split (``covid-qa``, split by article, see docs/qa.md)
and are scored with the official SQuAD normalisation (``medtune.tasks.qa.squad_metrics``: exact
match and token F1, max over gold answers, means over questions, 0-1):

- ``baseline``: the sentence of the question's article that BM25 (``bm25s``, Lucene variant, English
  stop words, lower case, no stemming; ``medtune.sentences.split_sentences`` for the sentences) ranks
  first for the question; the whole sentence is the answer. ``sentence_oracle`` is the best F1 any
  single sentence of the article reaches (the ceiling of every sentence-level answerer).
- ``model``: ``medtune.load(MODEL).pipe(...)``, the rank-1 span (only when ``--model`` is given or
  ``models/covid-qa`` exists), with the model's own passage setting (and, with ``--passage-prior`` when that
  is a sentence prior, ``model_reader_alone``: every window read, no prior). ``model_vs_baseline``: the F1
  difference with a 95 % paired bootstrap interval over questions and its p-value (1,000 resamples, seed 0).
- ``model_passage_prior`` (``--passage-prior``): the same model, retrieve-then-read: the BM25 sentence prior
  of ``medtune.tasks.qa_passages`` with ``top_k`` and ``weight`` chosen on the dev split
  (``QaTask.tune_passage_prior``), then scored on ``--split``; with its own comparison to the baseline.
- ``ranker_sentence`` (``--ranker DIR``, a sentence cross-encoder trained with ``configs/covid-qa-sentences.yaml``):
  the sentence it ranks first among the ``--ranker-depth`` best BM25 sentences, as the answer (a sentence-level
  answerer like the baseline); with ``--model`` also ``model_rerank_prior``: the reader with the reranked
  sentence prior (``passage_prior: rerank``), ``top_k`` and ``weight`` chosen on the dev split.

Target (the lead's run): model F1 >= baseline F1 + 0.10. With ``--predictions DIR`` both systems'
answers are written in the official predictions format (``{question id: answer}``). Needs the
``retrieval`` extra (``pip install 'medtune[retrieval]' -c constraints.txt``). Writes
``benchmarks/results/qa-covid.json`` atomically and prints the same JSON.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

from _env import RESULTS, ROOT  # noqa: E402  (sets up sys.path and the environment)

from medtune import datasets  # noqa: E402
from medtune.document import Document  # noqa: E402
from medtune.errors import MissingExtraError  # noqa: E402
from medtune.fileutils import atomic_write  # noqa: E402
from medtune.io.squad import write_squad_predictions  # noqa: E402
from medtune.runtime import cpu_name  # noqa: E402
from medtune.sentences import split_sentences  # noqa: E402
from medtune.tasks.qa_passages import CrossEncoderSentenceRanker  # noqa: E402
from medtune.tasks.qa import gold_answers, question_scores, squad_metrics, token_f1  # noqa: E402
from medtune.trust.bootstrap import paired_bootstrap_means  # noqa: E402

TARGET_MARGIN = 0.10
DEFAULT_MODEL = ROOT / "models" / "covid-qa"


def _bm25s() -> Any:
    try:
        import bm25s
    except ImportError:
        raise MissingExtraError("the BM25 baseline of benchmarks/qa.py", "retrieval") from None
    return bm25s


def _answered(doc: Document, start: int, end: int, score: float | None = None) -> Document:
    pred = doc.copy(annotations=False)
    pred.add_span(start, end, "answer", score=score, attributes={"rank": 1})
    return pred


def bm25_baseline(docs: list[Document]) -> tuple[list[Document], list[float], dict[str, Any]]:
    """The best BM25 sentence of each question's article; the best F1 any sentence reaches (oracle)."""
    bm25s = _bm25s()
    articles: dict[str, tuple[list[tuple[int, int]], Any]] = {}
    preds, oracle = [], []
    for doc in docs:
        if doc.text not in articles:
            sentences = [(a, b) for a, b in split_sentences(doc.text) if b > a]
            retriever = bm25s.BM25(method="lucene")
            retriever.index(bm25s.tokenize([doc.text[a:b] for a, b in sentences], stopwords="en",
                                           show_progress=False), show_progress=False)
            articles[doc.text] = (sentences, retriever)
        sentences, retriever = articles[doc.text]
        query = bm25s.tokenize([doc.text_pair or ""], stopwords="en", show_progress=False)
        rows, scores = retriever.retrieve(query, k=1, show_progress=False)
        a, b = sentences[int(rows[0][0])]
        preds.append(_answered(doc, a, b, float(scores[0][0])))
        golds = gold_answers(doc)
        oracle.append(max(max(token_f1(doc.text[s:e], g) for g in golds) for s, e in sentences))
    sizes = [len(s) for s, _ in articles.values()]
    return preds, oracle, {"articles": len(articles), "sentences_per_article_median": sorted(sizes)[len(sizes) // 2]}


def ranker_sentences(docs: list[Document], ranker_dir: Path, depth: int) -> list[Document]:
    """The sentence the cross-encoder ranks first (among the ``depth`` best BM25 sentences) of each question."""
    ranker = CrossEncoderSentenceRanker(str(ranker_dir), depth=depth)
    preds = []
    for doc in docs:
        ranking = ranker.rank(doc.text, doc.text_pair or "")
        best = int(ranking.ranks.argmin())
        preds.append(_answered(doc, int(ranking.starts[best]), int(ranking.ends[best]), float(ranking.scores[best])))
    return preds


def _rounded(metrics: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in metrics.items():
        out[key] = round(value, 4) if isinstance(value, float) else _rounded(value) if isinstance(value, dict) else value
    return out


def _versus(docs: list[Document], preds: list[Document], baseline_preds: list[Document], name: str) -> dict[str, Any]:
    """The F1 difference to the baseline with its uncertainty: paired bootstrap over questions."""
    ours = [question_scores(g, p)[1] for g, p in zip(docs, preds)]
    theirs = [question_scores(g, p)[1] for g, p in zip(docs, baseline_preds)]
    paired = paired_bootstrap_means(ours, theirs, seed=0)
    print(f"F1 {name} - baseline = {paired['difference']:+.4f} [{paired['low']:+.4f}, {paired['high']:+.4f}] "
          f"(95 % paired bootstrap over {len(docs)} questions), p = {paired['p_value']:.4f}")
    return {**_rounded(paired), "metric": "f1 (mean over questions)"}


def _tuned_prior_row(result: dict[str, Any], key: str, name: str, nlp: Any, docs: list[Document],
                     baseline_preds: list[Document], args: argparse.Namespace, **prior: Any) -> list[Document]:
    """The model with a sentence prior tuned on the dev split (``prior``: the keywords of
    ``QaTask.tune_passage_prior``), scored on ``docs``: its row ``key``, its comparison and its target."""
    dev = datasets.load("covid-qa", "dev", data_dir=args.data_dir)
    start = time.perf_counter()
    tuned = nlp.task.tune_passage_prior(nlp.model, dev, batch_size=args.batch_size, device=nlp.device,
                                        bf16=nlp.bf16, **prior)
    tune_seconds = time.perf_counter() - start
    start = time.perf_counter()
    predictions = nlp.pipe(docs, batch_size=args.batch_size)
    preds = list(predictions)
    seconds = time.perf_counter() - start
    result[key] = {
        "path": str(result["model"]["path"]), "mode": nlp.precision, **_rounded(squad_metrics(docs, preds)),
        "tuned_on_dev": {**_rounded(tuned), "seconds": round(tune_seconds, 1)},
        "windows": int(predictions.diagnostics["windows"]),
        "windows_read": int(predictions.diagnostics["windows"]
                            - predictions.diagnostics["windows_skipped_by_passage_prior"]),
        "seconds": round(seconds, 1), "questions_per_second": round(len(docs) / seconds, 2)}
    result[f"{key}_vs_baseline"] = _versus(docs, preds, baseline_preds, name)
    met = result[key]["f1"] >= result["baseline"]["f1"] + TARGET_MARGIN
    result["target"][f"met_with_{key.removeprefix('model_')}"] = met
    return preds


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=None, help="trained qa model (default: models/covid-qa if present)")
    parser.add_argument("--split", default="test", choices=("train", "dev", "test"))
    parser.add_argument("--mode", default="auto", help="inference mode of the model (auto, fp32, bf16)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--data-dir", default=None, help="default: $MEDTUNE_DATA_DIR or ../shared/data")
    parser.add_argument("--predictions", type=Path, default=None, help="folder for the SQuAD prediction files")
    parser.add_argument("--passage-prior", action="store_true",
                        help="also score the model with the BM25 sentence prior tuned on the dev split")
    parser.add_argument("--ranker", type=Path, default=None,
                        help="a sentence cross-encoder (configs/covid-qa-sentences.yaml): its best sentence as a row, "
                             "and with a model the reader with the reranked prior tuned on dev")
    parser.add_argument("--ranker-depth", type=int, default=50, help="BM25 sentences the cross-encoder rescores")
    parser.add_argument("--out", type=Path, default=RESULTS / "qa-covid.json")
    args = parser.parse_args(argv)

    docs = datasets.load("covid-qa", args.split, data_dir=args.data_dir)
    start = time.perf_counter()
    baseline_preds, oracle, baseline_info = bm25_baseline(docs)
    baseline = {"method": "bm25s best sentence of the article (Lucene BM25, English stop words, no stemming)",
                **_rounded(squad_metrics(docs, baseline_preds)), **baseline_info,
                "seconds": round(time.perf_counter() - start, 2)}
    result: dict[str, Any] = {
        "benchmark": "covid-qa extractive QA", "corpus": "covid-qa", "split": args.split, "questions": len(docs),
        "split_note": datasets.get_spec("covid-qa").split_note,
        "metrics": "official SQuAD normalisation; exact match and token F1, max over gold answers, mean over "
                   "questions, 0-1",
        "baseline": baseline,
        "sentence_oracle": {"f1": round(sum(oracle) / len(oracle), 4),
                            "note": "best F1 any single sentence of the article reaches"},
        "model": None,
        "target": {"rule": f"model f1 >= baseline f1 + {TARGET_MARGIN}", "met": None},
    }
    ranked_preds = rerank_preds = None
    if args.ranker is not None:
        start = time.perf_counter()
        ranked_preds = ranker_sentences(docs, args.ranker, args.ranker_depth)
        seconds = time.perf_counter() - start
        result["ranker_sentence"] = {
            "method": f"the sentence the cross-encoder ranks first among the {args.ranker_depth} best BM25 sentences",
            "path": str(args.ranker), **_rounded(squad_metrics(docs, ranked_preds)), "seconds": round(seconds, 1),
            "questions_per_second": round(len(docs) / seconds, 2)}
        result["ranker_sentence_vs_baseline"] = _versus(docs, ranked_preds, baseline_preds, "ranker sentence")
    model_dir = args.model or (DEFAULT_MODEL if (DEFAULT_MODEL / "config.json").exists() else None)
    model_preds = prior_preds = None
    if model_dir is not None:
        import medtune

        nlp = medtune.load(model_dir, mode=args.mode, batch_size=args.batch_size)
        start = time.perf_counter()
        predictions = nlp.pipe(docs, batch_size=args.batch_size)
        model_preds = list(predictions)
        seconds = time.perf_counter() - start
        meta = nlp.task.meta
        result["model"] = {"path": str(model_dir), "mode": nlp.precision, **_rounded(squad_metrics(docs, model_preds)),
                           "windows": int(predictions.diagnostics["windows"]), "seconds": round(seconds, 1),
                           "questions_per_second": round(len(docs) / seconds, 2),
                           "settings": {k: meta.get(k) for k in ("max_length", "stride", "max_answer_tokens",
                                                                 "n_best", "no_answer", "null_threshold",
                                                                 "passage_prior", "passage_top_k", "passage_weight",
                                                                 "passage_ranker_depth")}}
        result["target"]["met"] = result["model"]["f1"] >= baseline["f1"] + TARGET_MARGIN
        result["model_vs_baseline"] = _versus(docs, model_preds, baseline_preds, "model")
        if args.passage_prior and nlp.task.passage_prior != "off":  # the same model, every window read, no prior
            shipped, nlp.task.passage_prior = nlp.task.passage_prior, "off"
            start = time.perf_counter()
            alone_preds = list(nlp.pipe(docs, batch_size=args.batch_size))
            seconds = time.perf_counter() - start
            nlp.task.passage_prior = shipped
            result["model_reader_alone"] = {"path": str(model_dir), **_rounded(squad_metrics(docs, alone_preds)),
                                            "seconds": round(seconds, 1),
                                            "questions_per_second": round(len(docs) / seconds, 2)}
        shipped = nlp.task.meta
        ships_ranker = (args.ranker is not None and shipped.get("passage_prior") == "rerank"
                        and shipped.get("passage_ranker") == str(args.ranker.resolve())
                        and shipped.get("passage_ranker_depth") == args.ranker_depth)
        if args.passage_prior:
            prior_preds = _tuned_prior_row(result, "model_passage_prior", "model + prior", nlp, docs, baseline_preds,
                                           args, prior="bm25")
        if ships_ranker:  # tuned on dev when it was trained: the model row is this row
            result["model_rerank_prior"] = "the model row (the model ships with this ranker and depth)"
        elif args.ranker is not None:
            rerank_preds = _tuned_prior_row(result, "model_rerank_prior", "model + rerank", nlp, docs, baseline_preds,
                                            args, ranker=args.ranker, depth=args.ranker_depth)
            result["model_rerank_prior"].update(ranker=str(args.ranker), ranker_depth=args.ranker_depth)
    if args.predictions is not None:
        args.predictions.mkdir(parents=True, exist_ok=True)
        write_squad_predictions(baseline_preds, args.predictions / f"bm25-{args.split}.json")
        if model_preds is not None:
            write_squad_predictions(model_preds, args.predictions / f"model-{args.split}.json")
        if prior_preds is not None:
            write_squad_predictions(prior_preds, args.predictions / f"model-passage-prior-{args.split}.json")
        if ranked_preds is not None:
            write_squad_predictions(ranked_preds, args.predictions / f"ranker-sentence-{args.split}.json")
        if rerank_preds is not None:
            write_squad_predictions(rerank_preds, args.predictions / f"model-rerank-prior-{args.split}.json")
    result["command"] = "python benchmarks/qa.py " + " ".join(argv if argv is not None else sys.argv[1:])
    result["date"] = dt.date.today().isoformat()
    result["machine"] = {"python": platform.python_version(), "platform": platform.platform(),
                         "processor": platform.processor() or platform.machine(), "cpu": cpu_name()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(args.out) as handle:
        json.dump(result, handle, indent=2, ensure_ascii=False)
        handle.write("\n")
    print(json.dumps(result, indent=2, ensure_ascii=False))
    return result


if __name__ == "__main__":
    main()

"""Retrieval QA benchmark on MedQuAD: recall@1/5/10 and MRR of a gold answer passage, ablation rows,
the no-answer decision, latency per question on this CPU, and the index size for the whole corpus.

    .venv/bin/python benchmarks/retrieval.py [--kb-dir runs/kb-medquad] [--reranker models/medquad-reranker]
        [--qtype-model models/medquad-qtype] [--max-questions N] [--rerank-questions N] [--threads 2]

* Knowledge base: every answered MedQuAD pair of every split (16,368 distinct answers of a page), cut
  into passages of at most 150 words, the focus and the question type as title and section; the
  questions are never indexed. Built once into ``--kb-dir`` (reused when it is there; ``--rebuild``).
* Questions: the dev split (tuning) and the test split (the rows), split by page
  (``medtune/datasets/medquad.py``). A question's gold passages are every passage of a document whose
  answer text is the question's answer (``medtune/retrieval/evaluate.py``). ``--max-questions`` keeps
  the first N questions of each split in sha256 order of their ids (a deterministic sample).
* Rows (test): BM25; dense (MiniLM cosine, exact faiss index); hybrid with reciprocal rank fusion
  (k=60, untuned); hybrid with the fusion chosen on dev (grid over alpha, and RRF; best dev MRR);
  + max-sim reranker (no training; weight chosen on dev; ``--rerank-questions`` limits the questions it
  reranks, on dev and test, since it embeds every sentence of the top 20 passages); + a cross-encoder
  (``--reranker DIR``, a model from configs/medquad-reranker.yaml); + a question-type filter, with the
  gold type (an upper bound for routing), with a TF-IDF + logistic-regression type classifier trained on
  the train questions (seconds), and with ``--qtype-model`` (configs/medquad-qtype.yaml).
* No answer: per row, the threshold chosen on dev (``evaluate.calibrate``) applied to test, each test
  question asked as it is and with its gold passages removed.
* Comparisons: every row on the full test set against BM25 (the baseline a user would otherwise pick):
  recall@1 and reciprocal-rank differences, 95 % paired bootstrap intervals over questions and p-values.
* Latency: ``KnowledgeBase.ask`` on one question at a time (50 test questions, after 5 warm-up
  calls), median and 95th percentile, for the tuned hybrid and with the max-sim reranker.

Results: ``benchmarks/results/retrieval.json`` (written atomically) and a markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from pathlib import Path

from _env import ROOT  # noqa: E402  (sets up sys.path and the environment)

import numpy as np  # noqa: E402
import torch  # noqa: E402
from sklearn.feature_extraction.text import TfidfVectorizer  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402

from medtune.datasets.splits import sha256_order  # noqa: E402
from medtune.fileutils import atomic_write  # noqa: E402
from medtune.retrieval import KbSettings, KnowledgeBase  # noqa: E402
from medtune.retrieval.evaluate import (KS, Prepared, choose_threshold, decision_scores, decisions,  # noqa: E402
                                        first_ranks, medquad_questions, prepare, rankings, retrieval_metrics, tune)
from medtune.retrieval.kb import read_manifest  # noqa: E402
from medtune.retrieval.rerank import MaxSimReranker, ModelReranker  # noqa: E402
from medtune.retrieval.route import QtypeRouter, route  # noqa: E402
from medtune.runtime import cpu_name  # noqa: E402
from medtune.trust.bootstrap import paired_bootstrap_means  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


def subset(questions: list, n: int | None) -> list:
    if n is None or n >= len(questions):
        return questions
    keep = set(sha256_order([q.id for q in questions])[:n])
    return [q for q in questions if q.id in keep]


def sub_prep(prep: Prepared, n: int | None) -> Prepared:
    if n is None or n >= len(prep.questions):
        return prep
    keep = set(sha256_order([q.id for q in prep.questions])[:n])
    idx = [i for i, q in enumerate(prep.questions) if q.id in keep]
    return Prepared([prep.questions[i] for i in idx], prep.vectors[idx], [prep.candidates[i] for i in idx],
                    [prep.gold_rows[i] for i in idx])


def with_settings(settings: KbSettings, section: str, **values) -> KbSettings:
    return settings.model_copy(update={section: getattr(settings, section).model_copy(update=values)})


def no_answer(kb: KnowledgeBase, dev: Prepared, test: Prepared) -> dict:
    pos, correct, neg = decision_scores(kb, dev)
    threshold = choose_threshold(pos, correct, neg)
    return {"threshold": round(threshold, 4), "dev": decisions(pos, correct, neg, threshold),
            "test": decisions(*decision_scores(kb, test), threshold)}


def filtered(prep: Prepared, kb: KnowledgeBase, qtypes: list[str | None]) -> Prepared:
    """Each question's candidates routed to its type (``medtune.retrieval.route``)."""
    return Prepared(prep.questions, prep.vectors, [route(c, kb.passages, t) for c, t in zip(prep.candidates, qtypes)],
                    prep.gold_rows)


def latency(kb: KnowledgeBase, questions: list, n: int = 50) -> dict:
    texts = [q.text for q in questions[:n + 5]]
    for q in texts[:5]:
        kb.ask(q)
    times = []
    for q in texts[5:]:
        started = time.perf_counter()
        kb.ask(q)
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return {"questions": len(times), "median_ms": round(statistics.median(times), 1),
            "p95_ms": round(times[int(0.95 * (len(times) - 1))], 1)}


def paired_against(per_question: dict[str, tuple[list, list]], baseline: str) -> list[dict]:
    """Every row against ``baseline`` on the same test questions: recall@1 and reciprocal-rank differences
    with 95 % paired bootstrap intervals over questions and p-values (``medtune.trust.bootstrap``)."""
    base_ids, base_firsts = per_question[baseline]
    out = []
    for name, (ids, firsts) in per_question.items():
        if name == baseline or ids != base_ids:  # the reranked subset is not paired with the full test set
            continue
        pair = {"row": name}
        for metric, value in (("recall@1", lambda f: float(f == 1)), ("mrr", lambda f: 1.0 / f if f else 0.0)):
            pair[metric] = paired_bootstrap_means([value(f) for f in firsts], [value(f) for f in base_firsts], seed=0)
        out.append(pair)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kb-dir", type=Path, default=ROOT / "runs" / "kb-medquad")
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--reranker", type=Path, default=None, help="cross-encoder model directory")
    parser.add_argument("--qtype-model", type=Path, default=None, help="question-type classifier directory")
    parser.add_argument("--max-questions", type=int, default=None)
    parser.add_argument("--rerank-questions", type=int, default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", type=Path, default=RESULTS / "retrieval.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    started = time.monotonic()

    if args.rebuild or not (args.kb_dir / "manifest.json").is_file():
        t = time.monotonic()
        KnowledgeBase.build(["medquad"], args.kb_dir, overwrite=True)
        print(f"built {args.kb_dir} in {time.monotonic() - t:.0f} s", file=sys.stderr)
    t = time.monotonic()
    kb = KnowledgeBase.load(args.kb_dir, reranker="none")
    load_s = time.monotonic() - t
    manifest = read_manifest(args.kb_dir)
    base = kb.settings.model_copy(update={"rerank": kb.settings.rerank.model_copy(update={"kind": "none"})})
    kb.settings = base

    dev_q = subset(medquad_questions("dev"), args.max_questions)
    test_q = subset(medquad_questions("test"), args.max_questions)
    t = time.monotonic()
    dev, test = prepare(kb, dev_q), prepare(kb, test_q)
    print(f"candidates of {len(dev_q)} dev and {len(test_q)} test questions in {time.monotonic() - t:.0f} s",
          file=sys.stderr)

    rows: list[dict] = []
    per_question: dict[str, tuple[list, list]] = {}  # row -> (question ids, first gold rank), for the paired tests

    def row(name: str, settings: KbSettings, reranker=None, dev_p: Prepared = dev, test_p: Prepared = test,
            note: str = "") -> None:
        t0 = time.monotonic()
        kb.settings, kb.reranker = settings, reranker
        ranked = list(rankings(kb, test_p, settings, reranker=reranker))
        firsts = first_ranks(ranked, test_p.gold_rows)
        metrics = retrieval_metrics(ranked, test_p.gold_rows, firsts)
        answer = no_answer(kb, dev_p, test_p)
        rows.append({"row": name, **metrics, "no_answer": answer, "note": note,
                     "seconds": round(time.monotonic() - t0, 1)})
        per_question[name] = ([q.id for q in test_p.questions], firsts)
        print(f"{name}: {metrics} ({time.monotonic() - t0:.0f} s)", file=sys.stderr)

    row("BM25", with_settings(base, "search", mode="bm25"))
    encoder_name = manifest["settings"]["encoder"]["name"]
    row(f"dense ({'MiniLM' if encoder_name == 'default' else Path(encoder_name).name}, "
        f"{manifest['settings']['index']['kind']})", with_settings(base, "search", mode="dense"))
    row("hybrid, RRF k=60 (untuned)", with_settings(base, "search", mode="hybrid", fusion="rrf", rrf_k=60))
    kb.settings, kb.reranker = base, None
    tuning = tune(kb, dev)
    tuned = kb.settings
    chosen = tuning["chosen"]
    row(f"hybrid, tuned on dev ({chosen['fusion']}" + (f", alpha {chosen['alpha']})" if "alpha" in chosen else ")"), tuned)

    gold_types = [q.qtype for q in test.questions]
    row("hybrid + qtype filter (gold type: upper bound)", tuned,
        dev_p=filtered(dev, kb, [q.qtype for q in dev.questions]), test_p=filtered(test, kb, gold_types))
    # a question-type classifier in seconds (TF-IDF of word 1-2-grams + logistic regression, scikit-learn),
    # trained on the train questions: what routing gives with a real, if simple, classifier
    t0 = time.monotonic()
    train_q = medquad_questions("train")
    clf = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True),
                        LogisticRegression(max_iter=2000, C=10.0))
    clf.fit([q.text for q in train_q], [q.qtype for q in train_q])
    lr = {name: clf.predict([q.text for q in p.questions]).tolist() for name, p in (("dev", dev), ("test", test))}
    lr_accuracy = float(np.mean([t == q.qtype for t, q in zip(lr["test"], test.questions)]))
    row("hybrid + qtype routing (TF-IDF + logistic regression)", tuned, dev_p=filtered(dev, kb, lr["dev"]),
        test_p=filtered(test, kb, lr["test"]),
        note=f"trained on {len(train_q)} train questions in {time.monotonic() - t0:.0f} s; "
             f"test type accuracy {lr_accuracy:.3f}")
    if args.qtype_model is not None:
        router = QtypeRouter(args.qtype_model)
        raw = {name: router.predict([q.text for q in p.questions]) for name, p in (("dev", dev), ("test", test))}
        routed = {name: [t if s >= router.min_score else None for t, s in v] for name, v in raw.items()}
        accuracy = float(np.mean([t == q.qtype for (t, _), q in zip(raw["test"], test.questions)]))
        share = float(np.mean([t is not None for t in routed["test"]]))
        row("hybrid + qtype routing (classifier)", tuned, dev_p=filtered(dev, kb, routed["dev"]),
            test_p=filtered(test, kb, routed["test"]),
            note=f"{args.qtype_model.name}: test type accuracy {accuracy:.3f}, {share:.0%} routed")

    rdev, rtest = sub_prep(dev, args.rerank_questions), sub_prep(test, args.rerank_questions)
    rerank_note = "" if args.rerank_questions is None else f"{len(rtest.questions)} test questions"
    if args.rerank_questions is not None:
        kb.settings, kb.reranker = tuned, None
        m = retrieval_metrics(rankings(kb, rtest, tuned), rtest.gold_rows)
        rows.append({"row": "hybrid, tuned (the reranked questions only)", **m, "note": rerank_note})
    rerankers = [("+ max-sim reranker (no training)", MaxSimReranker(kb.encoder))]
    if args.reranker is not None:
        rerankers.append((f"+ cross-encoder ({args.reranker.name})", ModelReranker(args.reranker)))
    weights = {}
    for name, reranker in rerankers:
        kb.settings, kb.reranker = tuned, reranker
        search_weights = []
        for w in (0.25, 0.5, 0.75, 1.0):
            s = with_settings(tuned, "rerank", kind=reranker.kind, weight=w, depth=20)
            search_weights.append((retrieval_metrics(rankings(kb, rdev, s, reranker=reranker), rdev.gold_rows)["mrr"], -w, s))
        best = max(search_weights, key=lambda x: (x[0], x[1]))
        weights[name] = -best[1]
        row(f"{name}, weight {-best[1]}", best[2], reranker, dev_p=rdev, test_p=rtest, note=rerank_note)

    kb.settings, kb.reranker = tuned, None
    lat = {"hybrid (tuned)": latency(kb, test_q)}
    kb.settings, kb.reranker = with_settings(tuned, "rerank", kind="maxsim", weight=weights[rerankers[0][0]]), \
        MaxSimReranker(kb.encoder)
    lat["+ max-sim reranker"] = latency(kb, test_q)

    comparisons = paired_against(per_question, "BM25")
    sizes = manifest["sizes"]
    result = {
        "date": time.strftime("%Y-%m-%d"), "cpu": cpu_name(), "threads": args.threads,
        "kb": {"dir": str(args.kb_dir), "documents": manifest["counts"]["documents"],
               "passages": manifest["counts"]["passages"], "sizes_bytes": sizes,
               "size_mib": round(sum(sizes.values()) / 2 ** 20, 1), "build": manifest["build"],
               "load_seconds": round(load_s, 1), "settings": manifest["settings"]["chunk"],
               "encoder": manifest["settings"]["encoder"]},
        "questions": {"dev": len(dev_q), "test": len(test_q)},
        "tuning": tuning, "rows": rows, "latency": lat, "rerank_weights": weights,
        "comparisons": {"baseline": "BM25", "unit": "questions", "resamples": 1000, "seed": 0, "pairs": comparisons},
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "seconds": round(time.monotonic() - started, 1),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(args.output) as handle:
        json.dump(result, handle, indent=2)
        handle.write("\n")

    print(f"MedQuAD retrieval, {len(test_q)} test questions ({len(dev_q)} dev for tuning), "
          f"{manifest['counts']['passages']} passages, index {result['kb']['size_mib']} MiB, {cpu_name()}, "
          f"{args.threads} threads\n")
    print("| row | " + " | ".join(f"recall@{k}" for k in KS) + " | MRR | no-answer accuracy (test) | note |")
    print("|---|" + "---|" * (len(KS) + 3))
    for r in rows:
        acc = r.get("no_answer", {}).get("test", {}).get("accuracy")
        print(f"| {r['row']} | " + " | ".join(f"{r[f'recall@{k}']:.3f}" for k in KS) + f" | {r['mrr']:.3f} | "
              + (f"{acc:.3f}" if acc is not None else "-") + f" | {r.get('note', '')} |")
    print("\n| row - BM25 (same test questions) | recall@1 difference [95 % CI] | p | MRR difference [95 % CI] | p |\n|---|---|---|---|---|")
    for c in comparisons:
        r1, rr = c["recall@1"], c["mrr"]
        p1, p2 = (f"{x['p_value']:.4f}" if x["p_value"] else "< 0.001" for x in (r1, rr))  # 1,000 resamples
        print(f"| {c['row']} | {r1['difference']:+.3f} [{r1['low']:+.3f}, {r1['high']:+.3f}] | {p1} | "
              f"{rr['difference']:+.3f} [{rr['low']:+.3f}, {rr['high']:+.3f}] | {p2} |")
    print("\n| latency per question | median ms | p95 ms |\n|---|---|---|")
    for name, v in lat.items():
        print(f"| {name} | {v['median_ms']} | {v['p95_ms']} |")


if __name__ == "__main__":
    main()

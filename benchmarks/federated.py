"""Federated fine-tuning against pooled and single-site training, on the same test sets (disease NER).

Three experiments, each with the shipped NCBI-disease recipe (``configs/ncbi-disease.yaml``: MiniLM, linear
head, 128-token windows; ``model.labels: [Disease]``) and the same training budget everywhere
(``--rounds`` x ``--local-epochs`` epochs over each site's data; no dev split and no early stopping, so that
no run selects epochs on data the others do not see):

* ``ncbi-iid``: NCBI-disease's train split in 3 IID sites (``ncbi-disease:iid:3``);
* ``ncbi-skewed``: the same in 3 sites skewed by mention type (``ncbi-disease:dirichlet:3:alpha=0.5:key=span.type``:
  NCBI's SpecificDisease / DiseaseClass / Modifier / CompositeMention, all labelled Disease);
* ``corpora``: 3 corpora as 3 sites: NCBI-disease, BC5CDR-disease and ADE's adverse-effect mentions as
  Disease (``ade:labels=AE>Disease:empty=0``: the sentences that report an effect).

For each: the federated model (FedAvg, simulation mode), the pooled model (one run on the union of the sites'
documents) and one model per site, each scored (strict span F1, ``medtune evaluate``) on the test split of
every corpus of the experiment. Targets (issue 15): federated within 1 F1 point of pooled on the IID split,
and above every single site on the corpus split. Run it in ``.venv-federated`` (``make federated``);
results go to
``benchmarks/results/federated-{strategy}-r{rounds}-e{local epochs}[-pooled{epochs}][-by-examples].json``
(``--quick``: ``federated-quick.json``), rewritten atomically after every experiment.

The default budget gives every run the same epochs over its own data, so a site trains as many steps in the
federation as alone, and the pooled run (3 sites' data) 3 times as many. ``--pooled-epochs`` sets the pooled
run's epochs apart, e.g. ``--rounds 12 --local-epochs 1 --pooled-epochs 4``: every site of an IID
3-site split then takes the pooled run's number of optimiser steps.

    .venv-federated/bin/python benchmarks/federated.py                  # all three (hours on 2 cores)
    .venv-federated/bin/python benchmarks/federated.py --quick          # smoke: 8 docs a site, 1 round
    .venv-federated/bin/python benchmarks/federated.py --experiments corpora --rounds 4 --strategy fedprox
    .venv-federated/bin/python benchmarks/federated.py --experiments ncbi-iid --rounds 12 --local-epochs 1 \
        --pooled-epochs 4 --runs federated,pooled
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _env import RESULTS, ROOT

from medtune.config import RunConfig
from medtune.data import load_named
from medtune.evaluation.model import evaluate
from medtune.federated import federate, load_sites
from medtune.federated.server import WEIGHTINGS
from medtune.federated.sites import label_map, parse_spec, relabelled
from medtune.fileutils import atomic_write
from medtune.io.jsonl import write_jsonl
from medtune.runtime import cpu_name
from medtune.training import train

EXPERIMENTS = {  # name: (sites SPEC, test sets: corpus -> SPEC item whose options map its test split)
    "ncbi-iid": ("ncbi-disease:iid:3", {"ncbi-disease": "ncbi-disease"}),
    "ncbi-skewed": ("ncbi-disease:dirichlet:3:alpha=0.5:key=span.type", {"ncbi-disease": "ncbi-disease"}),
    "corpora": ("ncbi-disease,bc5cdr-disease,ade:labels=AE>Disease:empty=0",
                {"ncbi-disease": "ncbi-disease", "bc5cdr-disease": "bc5cdr-disease",
                 "ade": "ade:labels=AE>Disease:empty=0"}),
}


def base_config(args: argparse.Namespace, train_file: Path | None = None, epochs: float | None = None) -> RunConfig:
    """The shipped recipe at the benchmark's budget (``epochs``, default ``rounds x local_epochs``); trained
    on ``train_file`` (pooled, one site), or with its own ``data:`` (NCBI-disease: the federated server
    measures on its test split, no site data)."""
    overrides: dict[str, Any] = {
        "model.labels": ["Disease"], "training.progress_bar": False, "training.logging_steps": 1000,
        "training.epochs": epochs or args.rounds * args.local_epochs, "training.eval_every_epoch": False,
        "training.early_stopping_patience": None,
    }
    if args.max_length:
        overrides["model.max_length"], overrides["model.stride"] = args.max_length, args.max_length // 4
    if train_file is not None:
        overrides.update({"data.name": None, "data.train": str(train_file), "data.format": "jsonl"})
    elif args.max_test_docs:
        overrides["data.max_eval_docs"] = args.max_test_docs
    return RunConfig.from_yaml(ROOT / "configs" / "ncbi-disease.yaml", overrides=overrides)


def with_quick(spec: str, args: argparse.Namespace) -> str:
    if not args.max_docs:
        return spec
    return ",".join(item if "max_docs=" in item else f"{item.split(':')[0]}:max_docs={args.max_docs}"
                    + (":" + item.split(":", 1)[1] if ":" in item else "") for item in spec.split(","))


def test_files(tests: dict[str, str], folder: Path, max_docs: int | None) -> dict[str, Path]:
    """Each corpus's test split as JSONL, in the same view as the site's training data (its label map, and
    only annotated documents where the site keeps only those)."""
    out = {}
    for corpus, item in tests.items():
        spec = parse_spec(item)[0]
        docs = load_named(spec.source, "test")
        mapping = label_map(spec)
        if mapping:
            docs = [relabelled(d, mapping) for d in docs]
        if float(spec.options.get("empty", 1.0)) == 0.0:
            docs = [d for d in docs if d.spans]
        path = folder / f"test-{corpus}.jsonl"
        write_jsonl(docs[:max_docs] if max_docs else docs, path)
        out[corpus] = path
    return out


def score(model_dir: Path, tests: dict[str, Path]) -> dict[str, float]:
    return {corpus: round(float(evaluate(model_dir, str(path), format="jsonl")["f1"]), 4) for corpus, path in tests.items()}


def run_experiment(name: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    spec, tests = EXPERIMENTS[name]
    spec = with_quick(spec, args)
    folder = work / name
    folder.mkdir(parents=True)
    test_paths = test_files(tests, folder, args.max_test_docs)
    sites = load_sites(spec, seed=base_config(args).training.seed)  # the same sites as federate() draws
    row: dict[str, Any] = {"date": dt.date.today().isoformat(), "cpu": cpu_name(), "sites_spec": spec,
                           "sites": [s.summary() for s in sites], "runs": {}}
    runs = set(args.runs.split(","))
    if "federated" in runs:
        start = time.perf_counter()
        fed = federate(base_config(args), spec, folder / "federated", rounds=args.rounds,
                       local_epochs=args.local_epochs, strategy=args.strategy, mu=args.mu, overwrite=True,
                       weighting=args.weighting)
        row["runs"]["federated"] = {"f1": score(fed.output_dir, test_paths), "weighting": args.weighting,
                                    "sites": fed.metrics["federated"]["sites"],  # names and counts, no text
                                    "runtime_s": round(time.perf_counter() - start, 1)}
    if "pooled" in runs:
        pooled_file = folder / "pooled.jsonl"
        write_jsonl([d for s in sites for d in s.docs], pooled_file)
        start = time.perf_counter()
        train(base_config(args, pooled_file, args.pooled_epochs), folder / "pooled", overwrite=True)
        row["runs"]["pooled"] = {"f1": score(folder / "pooled", test_paths),
                                 "epochs": args.pooled_epochs or args.rounds * args.local_epochs,
                                 "runtime_s": round(time.perf_counter() - start, 1)}
    for k, site in enumerate(sites if "single" in runs else []):
        site_file = folder / f"site-{k + 1}.jsonl"
        write_jsonl(site.docs, site_file)
        start = time.perf_counter()
        train(base_config(args, site_file), folder / f"site-{k + 1}", overwrite=True)
        row["runs"][f"single:{site.name}"] = {"f1": score(folder / f"site-{k + 1}", test_paths),
                                              "runtime_s": round(time.perf_counter() - start, 1)}
    mean = {run: sum(r["f1"].values()) / len(r["f1"]) for run, r in row["runs"].items()}
    singles = [v for run, v in mean.items() if run.startswith("single:")]
    row["mean_f1"] = {run: round(v, 4) for run, v in mean.items()}
    if "federated" in mean and "pooled" in mean:
        row["federated_minus_pooled"] = round(mean["federated"] - mean["pooled"], 4)
    if "federated" in mean and singles:
        row["federated_minus_best_single"] = round(mean["federated"] - max(singles), 4)
    return row


def results_path(args: argparse.Namespace) -> Path:
    """One file per setting (strategy, rounds, local epochs, pooled budget), so that a second setting does
    not overwrite the first; experiments of the same setting run separately are merged into it."""
    if args.quick:
        return RESULTS / "federated-quick.json"
    name = f"federated-{args.strategy}-r{args.rounds}-e{args.local_epochs:g}"
    if args.pooled_epochs:
        name += f"-pooled{args.pooled_epochs:g}"
    if args.weighting != "documents":
        name += f"-by-{args.weighting}"
    return RESULTS / f"{name}.json"


def _stop_on_sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # unwinds like Ctrl-C, so the private work folder (site documents) is removed


def main() -> None:
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiments", default=None, help=f"comma-separated, of {', '.join(EXPERIMENTS)}")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--local-epochs", type=float, default=1.0)
    parser.add_argument("--strategy", default="fedavg", choices=["fedavg", "fedprox"])
    parser.add_argument("--mu", type=float, default=0.01)
    parser.add_argument("--weighting", default="documents", choices=list(WEIGHTINGS),
                        help="FedAvg weight of a site (medtune federate --weighting)")
    parser.add_argument("--max-docs", type=int, default=None, help="the first N training documents of each source")
    parser.add_argument("--max-test-docs", type=int, default=None)
    parser.add_argument("--max-length", type=int, default=None)
    parser.add_argument("--pooled-epochs", type=float, default=None,
                        help="the pooled run's epochs (default rounds x local epochs, as every other run): e.g. "
                             "rounds x local epochs / sites for the pooled run's optimiser steps to match a site's")
    parser.add_argument("--runs", default="federated,pooled,single", help="which of federated, pooled, single")
    parser.add_argument("--quick", action="store_true", help="smoke run: ncbi-iid, 24 documents, 1 round")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.local_epochs = 1, 1.0
        args.max_docs, args.max_test_docs, args.max_length = args.max_docs or 24, args.max_test_docs or 20, 64
        args.experiments = args.experiments or "ncbi-iid"
    names = (args.experiments or ",".join(EXPERIMENTS)).split(",")
    out_path = results_path(args)
    result: dict[str, Any] = {"date": dt.date.today().isoformat(), "config": "configs/ncbi-disease.yaml",
                              "settings": {k: v for k, v in vars(args).items()}, "experiments": {}}
    if out_path.exists():  # the same setting's other experiments, run before
        result["experiments"] = json.loads(out_path.read_text()).get("experiments", {})
    with tempfile.TemporaryDirectory(prefix="medtune-fedbench-") as tmp:
        for name in names:
            result["experiments"][name] = run_experiment(name, args, Path(tmp))
            with atomic_write(out_path) as handle:
                json.dump(result, handle, indent=2)
            print(json.dumps({name: result["experiments"][name]["mean_f1"]}), flush=True)
    print(f"results: {out_path}")


if __name__ == "__main__":
    main()

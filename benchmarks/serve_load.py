"""Load test of ``medtune serve`` against the endpoint a user would otherwise write.

    .venv/bin/python benchmarks/serve_load.py --model models/ncbi-disease [--duration 20] [--clients 16,4]

Starts each service in its own process on a free loopback port, one at a time, and drives it with C
concurrent clients (threads with keep-alive connections) for T seconds: every client sends its next
note as soon as the previous one is answered and stops at the deadline, so a run is bounded and stops
by itself. Services:

* ``medtune``: ``medtune serve MODEL`` (micro-batching, one model thread; ``--mode auto``, i.e. bf16
  where the CPU has it natively, and ``fp32`` for the same numerics as the naive endpoint);
* ``naive``: a FastAPI route (``def``, so FastAPI runs it in its thread pool) calling
  ``transformers.pipeline("token-classification", aggregation_strategy="simple")`` on the same weights
  (the medtune model's encoder and linear head loaded into ``BertForTokenClassification``) per request.

Notes are NCBI-disease test abstracts (from ``MEDTUNE_DATA_DIR``) joined and cut into notes of
``--chars`` characters, or generated clinical sentences when the corpus is absent. A last scenario
mixes short notes with long ones (``--long-chars``) on medtune and reports the short notes' latency
apart: a long note must not hold up the others beyond its own compute.

Prints per scenario: documents/s, p50/p95/p99 latency, errors, the fair-queueing bound (clients /
throughput), the server's resident memory before and after and documents per CPU-second of the
service process (on a machine other jobs share, a process with 16 busy threads gets a larger share of
the CPU than one with 2, so wall-clock rates flatter the naive endpoint; CPU time does not); then the
targets of issue 13.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from _env import ROOT  # noqa: F401  (sets up sys.path and the environment)
from pydantic import BaseModel  # noqa: E402

SENTENCES = [
    "The patient is a 67-year-old man with a history of type 2 diabetes mellitus and hypertension.",
    "He presented with chest pain radiating to the left arm and shortness of breath.",
    "There is no evidence of pneumonia on the chest radiograph.",
    "Her mother had breast cancer and her father died of colorectal cancer.",
    "The biopsy confirmed adenocarcinoma of the colon without lymph node involvement.",
    "She denies fever, cough or weight loss.",
    "Chronic kidney disease stage 3 and anaemia were noted on admission.",
    "A diagnosis of Huntington disease was made after genetic testing.",
    "Possible early Parkinson disease; follow-up with neurology is planned.",
    "The child has cystic fibrosis and recurrent respiratory infections.",
]


# ------------------------------------------------------------------------------------------------ notes
def make_notes(chars: int, count: int, seed: int = 0) -> list[str]:
    """``count`` notes of about ``chars`` characters (cut at a space), from NCBI-disease test abstracts."""
    try:
        from medtune import datasets

        pool = [d.text for d in datasets.load("ncbi-disease", split="test")]
    except Exception:  # noqa: BLE001 - no corpus here: generated sentences
        rng = random.Random(seed)
        pool = [" ".join(rng.choice(SENTENCES) for _ in range(12)) for _ in range(50)]
    rng = random.Random(seed)
    notes = []
    while len(notes) < count:
        text = ""
        while len(text) < chars:
            text += rng.choice(pool) + "\n"
        cut = text.rfind(" ", 0, chars)
        notes.append(text[: cut if cut > chars * 0.9 else chars].strip())
    return notes


# ----------------------------------------------------------------------------------------- naive server
class Note(BaseModel):
    text: str


def naive_app(model_dir: str, threads: int | None = None):
    """The endpoint a user would write: transformers' token-classification pipeline per request."""
    import torch
    from fastapi import FastAPI
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoTokenizer, BertForTokenClassification, pipeline

    from medtune.models.store import read_meta
    from medtune.tasks.ner import tag_names

    meta = read_meta(model_dir)
    tags = tag_names(meta["labels"], meta.get("tag_scheme", "IOB2"))
    config = AutoConfig.from_pretrained(model_dir, num_labels=len(tags), id2label=dict(enumerate(tags)),
                                        label2id={t: i for i, t in enumerate(tags)})
    model = BertForTokenClassification(config)
    state = {("bert." + k[len("encoder."):] if k.startswith("encoder.") else k): v
             for k, v in load_file(f"{model_dir}/model.safetensors").items()}
    state = {k: v for k, v in state.items() if not k.startswith("bert.pooler.")}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise SystemExit(f"the weights do not fit BertForTokenClassification: missing {missing}, "
                         f"unexpected {unexpected}")
    model.eval()
    if threads:
        torch.set_num_threads(threads)
    # the model's own windows (max_length tokens, overlapping by stride): a note longer than 512 tokens
    # would otherwise fail on the position embeddings
    tokenizer = AutoTokenizer.from_pretrained(model_dir, model_max_length=int(meta.get("max_length", 512)))
    nlp = pipeline("token-classification", model=model, tokenizer=tokenizer, aggregation_strategy="simple",
                   stride=int(meta.get("stride", 32)), device=torch.device("cpu"))
    app = FastAPI()

    @app.post("/v1/analyze")
    def analyze(note: Note) -> dict:
        entities = nlp(note.text)
        return {"documents": [{"text": note.text, "spans": [
            {"start": int(e["start"]), "end": int(e["end"]), "label": e["entity_group"], "score": float(e["score"])}
            for e in entities]}]}

    @app.get("/ready")
    def ready() -> dict:
        return {"status": "ready"}

    return app


def run_naive_server(model_dir: str, threads: int | None) -> None:
    import uvicorn

    app = naive_app(model_dir, threads)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    print(f"listening on http://127.0.0.1:{sock.getsockname()[1]}/", file=sys.stderr, flush=True)
    uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False)).run(sockets=[sock])


# ------------------------------------------------------------------------------------------------ driver
class Server:
    """A service process on a free loopback port; its port read from its log."""

    def __init__(self, command: list[str], log_path: Path, ready_limit: float = 300.0) -> None:
        self.log_path = log_path
        self.log = open(log_path, "wb")
        self.proc = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env=dict(os.environ, MEDTUNE_API_TOKEN=""))
        deadline = time.monotonic() + ready_limit
        self.port = None
        while time.monotonic() < deadline and self.proc.poll() is None:
            found = re.search(r"listening on http://127\.0\.0\.1:(\d+)/", log_path.read_text(errors="replace"))
            if found:
                self.port = int(found.group(1))
                if self._ready():
                    return
            time.sleep(0.3)
        self.stop()
        raise SystemExit(f"the service did not start:\n{log_path.read_text(errors='replace')[-3000:]}")

    def _ready(self) -> bool:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            conn.request("GET", "/ready")
            ok = conn.getresponse().status == 200
            conn.close()
            return ok
        except OSError:
            return False

    def rss_mib(self) -> float:
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        return float("nan")

    def cpu_seconds(self) -> float:
        """User + system CPU time of the service process so far (all its threads)."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            return float("nan")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()


def drive(port: int, notes: list[str], clients: int, duration: float, model: str | None,
          request_timeout: float = 120.0, raw: bool = False) -> dict:
    """C clients, each sending its next note as soon as the last one is answered, until the deadline."""
    results: list[tuple[float, int, int]] = []  # (latency s, status, characters)
    lock = threading.Lock()
    start = time.monotonic()
    deadline = start + duration

    def client(k: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=request_timeout)
        i = k
        while time.monotonic() < deadline:
            text = notes[i % len(notes)]
            i += clients
            body = json.dumps({"text": text, **({"model": model} if model else {})})
            t0 = time.perf_counter()
            try:
                conn.request("POST", "/v1/analyze", body=body, headers={"Content-Type": "application/json"})
                response = conn.getresponse()
                response.read()
                status = response.status
            except (OSError, http.client.HTTPException):
                status = 0
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=request_timeout)
            with lock:
                results.append((time.perf_counter() - t0, status, len(text)))
        conn.close()

    threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(duration + request_timeout + 10)
    elapsed = time.monotonic() - start
    return {"results": results, "elapsed": elapsed} if raw else summarise(results, elapsed, clients)


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def summarise(results: list[tuple[float, int, int]], elapsed: float, clients: int) -> dict:
    ok = [lat for lat, status, _ in results if status == 200]
    throughput = len(ok) / elapsed if elapsed > 0 else 0.0
    return {"clients": clients, "requests": len(results), "ok": len(ok), "errors": len(results) - len(ok),
            "seconds": round(elapsed, 1), "docs_per_s": round(throughput, 2),
            "p50_s": round(_pct(ok, 0.50), 3), "p95_s": round(_pct(ok, 0.95), 3), "p99_s": round(_pct(ok, 0.99), 3),
            "fair_bound_s": round(clients / throughput, 3) if throughput else float("nan")}


def warm(port: int, notes: list[str], model: str | None, clients: int) -> None:
    drive(port, notes[:clients], clients, 0.01, model)


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="a medtune NER model directory")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per scenario and round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (the services take turns in each)")
    parser.add_argument("--clients", default="16,4", help="concurrent clients, comma-separated")
    parser.add_argument("--chars", type=int, default=2000, help="characters per note")
    parser.add_argument("--long-chars", type=int, default=20000, help="characters of the long notes (mixed run)")
    parser.add_argument("--modes", default="auto,fp32", help="medtune inference modes to run")
    parser.add_argument("--skip-naive", action="store_true")
    parser.add_argument("--skip-mixed", action="store_true")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads of both services (default: every core)")
    parser.add_argument("--model-workers", type=int, default=1, help="medtune serve --model-workers")
    parser.add_argument("--soak", type=float, default=0.0,
                        help="then drive medtune this many seconds more with the most clients, sampling its "
                             "resident memory every 10 s")
    parser.add_argument("--output", help="also write the results as JSON here")
    parser.add_argument("--naive-server", metavar="MODEL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.naive_server:
        run_naive_server(args.naive_server, args.threads)
        return
    if not args.model:
        parser.error("--model is required")
    from medtune.runtime import cpu_name

    logs = ROOT / "benchmarks" / "results"
    logs.mkdir(parents=True, exist_ok=True)
    clients = [int(c) for c in args.clients.split(",")]
    notes = make_notes(args.chars, 64)
    print(f"# serve_load: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, CPU {cpu_name()}, "
          f"{os.cpu_count()} cores, load average {loadavg()} (1/5/15 min), notes of {args.chars} characters, "
          f"{args.rounds} rounds of {args.duration:g} s per scenario", flush=True)
    threads = [] if args.threads is None else ["--threads", str(args.threads)]
    serve_cmd = [sys.executable, "-m", "medtune.serve", "--port", "0", *threads,
                 "--model-workers", str(args.model_workers)]
    commands = {} if args.skip_naive else {"naive": [sys.executable, __file__, "--naive-server", args.model, *threads]}
    for mode in args.modes.split(","):
        commands[f"medtune-{mode}"] = serve_cmd + ["--mode", mode, args.model]
    # every service is started first and idles while another is driven; the services take turns, round
    # after round, so that the load of other jobs on the machine falls on all of them alike
    servers = {}
    try:
        for name, command in commands.items():
            servers[name] = Server(command, logs / f"serve_load-{name}.log.tmp")
            for c in clients:
                warm(servers[name].port, notes, None, c)
        runs: dict[tuple[str, int], list[dict]] = {}
        rss0 = {name: server.rss_mib() for name, server in servers.items()}
        for r in range(args.rounds):
            for c in clients:
                for name, server in servers.items():
                    cpu0 = server.cpu_seconds()
                    stats = drive(server.port, notes, c, args.duration, None, raw=True)
                    stats["cpu"] = server.cpu_seconds() - cpu0
                    runs.setdefault((name, c), []).append(stats)
                    print(json.dumps({"round": r, "service": name, **summarise(stats["results"], stats["elapsed"], c),
                                      "cpu_s": round(stats["cpu"], 1), "load": loadavg()}), flush=True)
        rows = []
        for (name, c), parts in runs.items():
            pooled = [x for p in parts for x in p["results"]]
            cpu = sum(p["cpu"] for p in parts)
            row = {"service": name, **summarise(pooled, sum(p["elapsed"] for p in parts), c),
                   "rss_mib": [round(rss0[name]), round(servers[name].rss_mib())]}
            row["docs_per_cpu_s"] = round(row["ok"] / cpu, 2) if cpu > 0 else float("nan")
            rows.append(row)
        if not args.skip_mixed:
            name = f"medtune-{args.modes.split(',')[0]}"
            long_notes = make_notes(args.long_chars, 8, seed=1)
            short_notes = make_notes(300, 64, seed=2)
            before = servers[name].rss_mib()
            mixed = drive_mixed(servers[name].port, short_notes, long_notes, max(clients), args.duration * args.rounds)
            rows.append({"service": f"{name}-mixed", **mixed, "rss_mib": [round(before), round(servers[name].rss_mib())]})
        if args.soak > 0:
            name = f"medtune-{args.modes.split(',')[0]}"
            rows.append({"service": f"{name}-soak", **soak(servers[name], notes, max(clients), args.soak)})
    finally:
        for server in servers.values():
            server.stop()
    print(f"# load average at the end {loadavg()}")
    report(rows, clients)
    if args.output:
        Path(args.output).write_text(json.dumps(rows, indent=2) + "\n")


def drive_mixed(port: int, short: list[str], long: list[str], clients: int, duration: float) -> dict:
    """One client in eight sends long notes, the others short ones; short and long reported apart."""
    n_long = max(1, clients // 8)
    out: dict = {}
    threads = []

    def run(name: str, notes: list[str], c: int) -> None:
        out[name] = drive(port, notes, c, duration, None)

    for name, notes_, c in (("short", short, clients - n_long), ("long", long, n_long)):
        threads.append(threading.Thread(target=run, args=(name, notes_, c)))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"clients": clients, "short": out["short"], "long": out["long"],
            "errors": out["short"]["errors"] + out["long"]["errors"]}


def soak(server: Server, notes: list[str], clients: int, seconds: float) -> dict:
    """Drive the service for ``seconds`` while sampling its resident memory every 10 s."""
    samples: list[float] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(10.0):
            samples.append(round(server.rss_mib()))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stats = drive(server.port, notes, clients, seconds, None)
    stop.set()
    sampler.join()
    print(json.dumps({"soak_rss_mib_every_10s": samples}), flush=True)
    return {**stats, "rss_mib": [samples[0] if samples else None, samples[-1] if samples else None],
            "rss_samples": samples}


def report(rows: list[dict], clients: list[int]) -> None:
    print("\n| service | clients | docs/s | p50 s | p95 s | p99 s | clients/throughput s | errors | RSS MiB before/after "
          "| docs per CPU-s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "rss_samples" in r:
            half = r["rss_samples"][len(r["rss_samples"]) // 2:] or [None]
            print(f"| {r['service']} ({r['seconds']} s) | {r['clients']} | {r['docs_per_s']} | {r['p50_s']} | "
                  f"{r['p95_s']} | {r['p99_s']} | {r['fair_bound_s']} | {r['errors']} | "
                  f"{r['rss_mib'][0]}/{r['rss_mib'][1]} (second half: {min(half)}-{max(half)}) |")
            continue
        if "short" in r:
            for part in ("short", "long"):
                s = r[part]
                print(f"| {r['service']} ({part} notes) | {s['clients']} | {s['docs_per_s']} | {s['p50_s']} | "
                      f"{s['p95_s']} | {s['p99_s']} | {s['fair_bound_s']} | {s['errors']} | "
                      f"{r['rss_mib'][0]}/{r['rss_mib'][1]} |")
            continue
        print(f"| {r['service']} | {r['clients']} | {r['docs_per_s']} | {r['p50_s']} | {r['p95_s']} | {r['p99_s']} | "
              f"{r['fair_bound_s']} | {r['errors']} | {r['rss_mib'][0]}/{r['rss_mib'][1]} | {r['docs_per_cpu_s']} |")
    by = {(r["service"], r["clients"]): r for r in rows if "short" not in r}
    naive16, best16 = by.get(("naive", 16)), by.get(("medtune-auto", 16))
    if naive16 and best16:
        print(f"\n16 clients: zero errors: {best16['errors'] == 0}; throughput {best16['docs_per_s']} vs naive "
              f"{naive16['docs_per_s']} = {best16['docs_per_s'] / max(naive16['docs_per_s'], 1e-9):.2f}x (target >= 3x); "
              f"p95 {best16['p95_s']} s vs 1.5 x {best16['fair_bound_s']} s = {1.5 * best16['fair_bound_s']:.2f} s")
    if naive16 and best16:
        print(f"16 clients, per CPU-second of the service process (steadier when other jobs share the machine): "
              f"{best16['docs_per_cpu_s']} vs naive {naive16['docs_per_cpu_s']} = "
              f"{best16['docs_per_cpu_s'] / max(naive16['docs_per_cpu_s'], 1e-9):.2f}x")
    four = by.get(("medtune-auto", 4))
    if four:
        print(f"4 clients: p95 {four['p95_s']} s (target < 1 s)")


if __name__ == "__main__":
    main()

"""Crash-safety check: kill -9 a catalog run at random moments, run it again
with the same arguments, and compare the final outputs with a clean run's.

    .venv/bin/python scripts/kill_loop.py --images 200 --kills 8 --clip-checkpoint /tmp/vitb32-random.pt

Prints what was killed when, then: rows lost / duplicated (must be 0), whether
the outputs equal the clean run's, and how many embeddings and LLM requests the
killed series spent beyond the clean run (work redone after kills)."""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from llm_server import FakeLLMServer  # noqa: E402  (a real HTTP server; latency makes the LLM stage killable)

from catalog_intel.io.synthetic import write_catalog  # noqa: E402

VOLATILE = ("run_id", "processed_at")


def run_cli(images: Path, out: Path, cache: Path, args, base_url: str, log: Path) -> subprocess.Popen:
    env = {**os.environ, "DO_NOT_TRACK": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_HOME": str(out.parent / "prefect-home"), "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "catalog_intel.cli", "run", str(images), "--out", str(out), "--cache-dir", str(cache),
           "--clip-checkpoint", args.clip_checkpoint, "--llm-base-url", base_url, "--shard-size", str(args.shard_size)]
    if args.config:
        cmd += ["--config", args.config]
    # A new session, so kill -9 takes Prefect's temporary server down with the run.
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True)


def stage_of(log: Path) -> str:
    text = log.read_text(errors="replace")
    for marker, stage in (("Task run 'export", "export"), ("Task run 'validate", "validate"), ("describe shard", "llm"),
                          ("embed shard", "embedding"), ("Task run 'ingest", "ingest"), ("Beginning flow run", "flow start")):
        if marker in text:
            return stage
    return "start-up"


def load(out: Path) -> pl.DataFrame:
    return pl.read_parquet(out / "catalog.parquet").drop(VOLATILE).sort("image")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--kills", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--shard-size", type=int, default=64)
    parser.add_argument("--llm-latency", type=float, default=0.3)
    parser.add_argument("--clip-checkpoint", required=True, help="ViT-B-32 weights (scripts/make_random_checkpoint.py)")
    parser.add_argument("--config", help="extra TOML config")
    parser.add_argument("--workdir", default="/tmp/catalog-intel-kill-loop")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    work = Path(args.workdir)
    images = work / "images"
    write_catalog(images, args.images, size=(400, 500), seed=args.seed)

    with FakeLLMServer(latency_s=args.llm_latency) as clean_llm:
        t0 = time.monotonic()
        (work / "clean").mkdir(parents=True, exist_ok=True)
        proc = run_cli(images, work / "clean" / "out", work / "clean" / "cache", args, clean_llm.base_url,
                       work / "clean.log")
        if proc.wait() != 0:
            print((work / "clean.log").read_text()[-3000:])
            return 1
        clean_seconds = time.monotonic() - t0
        clean_requests = clean_llm.requests
    print(f"clean run: {clean_seconds:.1f} s, {clean_requests} LLM requests")

    (work / "killed").mkdir(parents=True, exist_ok=True)
    out, cache = work / "killed" / "out", work / "killed" / "cache"
    kills = []
    with FakeLLMServer(latency_s=args.llm_latency) as llm:
        for k in range(args.kills):
            log = work / f"kill-{k}.log"
            proc = run_cli(images, out, cache, args, llm.base_url, log)
            delay = rng.uniform(2.0, clean_seconds * 0.95)
            try:
                proc.wait(timeout=delay)
                kills.append((k, delay, "finished before the kill"))  # resumed work done: later kills hit re-runs
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                kills.append((k, delay, stage_of(log)))
            print(f"kill {k}: after {delay:.1f} s, during {kills[-1][2]}")
        final = run_cli(images, out, cache, args, llm.base_url, work / "final.log")
        if final.wait() != 0:
            print((work / "final.log").read_text()[-3000:])
            return 1
        killed_requests = llm.requests

    summary_line = next((line for line in (work / "final.log").read_text().splitlines() if line.startswith("catalog-intel:")), "")
    clean, killed = load(work / "clean" / "out"), load(out)
    lost = set(clean["image"]) - set(killed["image"])
    duplicated = killed.height - killed["image"].n_unique()
    exact = [c for c, t in clean.schema.items() if t != pl.Float64]
    floats = [c for c, t in clean.schema.items() if t == pl.Float64]
    same_rows = clean.select(exact).equals(killed.select(exact))
    max_float_diff = max((clean[c] - killed[c]).abs().max() or 0.0 for c in floats) if same_rows else None
    rejects_same = (work / "clean" / "out" / "rejects.csv").read_text() == (out / "rejects.csv").read_text()
    report = {
        "images": args.images, "kills": [{"after_s": round(d, 1), "stage": s} for _, d, s in kills],
        "kills_landed": sum(1 for _, _, s in kills if s != "finished before the kill"),
        "rows_clean": clean.height, "rows_after_kills": killed.height, "rows_lost": len(lost), "rows_duplicated": duplicated,
        "outputs_equal": same_rows and rejects_same, "max_confidence_diff": max_float_diff,
        "llm_requests_clean": clean_requests, "llm_requests_killed_series": killed_requests,
        "final_run": summary_line,
        "leftover_temp_files": sorted(p.name for p in out.glob(".*.tmp")),
    }
    print(json.dumps(report, indent=2))
    (work / "report.json").write_text(json.dumps(report, indent=2))
    ok = not lost and not duplicated and same_rows and rejects_same
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""Why copy answers are retried: every answer of the copy step, with its problems (#9).

    python bench/copy_measure.py prepare --work /tmp/copybench-retries --n 90 --base-n 60
    # products 51-90 (the first 50 are kept for copy_measure.py run --first 50)
    python bench/copy_first_answers.py --work /tmp/copybench-retries --skip 50 --first 40 --label v7 --llm-threads 1
    python bench/copy_first_answers.py ... --label t05 --set llm.temperature=0.5 --set 'llm.sampling={"min_p": 0.1}'
    python bench/copy_first_answers.py ... --label v8 --llm-toml prompt-v8.toml   # [llm] keys (prompts, example)

The products' attributes are what a run computes (a `--no-llm` run of the same manifest rows with
this checkout, kept under WORK/attributes-SKIP-FIRST/). This checkout's describe() then writes their
copy through the gate, on one embedded server (the pipeline's slots, `--llm-threads` threads, normal
priority) and a fresh copy cache. Each answer and its problems go to WORK/first-answers/LABEL.jsonl;
the figures (retries per product, first answers with any problem, with too many to repair, problem
kinds, s/product) to WORK/first-answers/LABEL.json.

`--first-answers-only` asks once per product (llm.content_attempts = 1: the gate repairs or rejects
the first answer); "would retry" counts the first answers the pipeline would have asked again.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import polars as pl

HERE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(HERE))


def attributes(work: Path, skip: int, first: int) -> pl.DataFrame:
    """The products' attribute rows, as this checkout's run computes them (facts merged, no copy)."""
    out = work / f"attributes-{skip}-{first}"
    if not (out / "catalog.parquet").is_file():
        manifest = work / "catalog" / f"manifest-{skip}-{first}.csv"
        pl.read_csv(work / "catalog" / "manifest.csv", infer_schema_length=0).slice(skip, first).write_csv(manifest)
        env = {**os.environ, "PYTHONPATH": str(HERE), "DO_NOT_TRACK": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
        cache = Path(tempfile.mkdtemp(prefix="attrs-", dir=work))
        proc = subprocess.run([sys.executable, "-m", "catalog_intel.cli", "run", str(manifest), "--out", str(out),
                               "--config", str(work / "config.toml"), "--cache-dir", str(cache), "--no-llm"],
                              cwd=HERE, env=env, capture_output=True, text=True)
        shutil.rmtree(cache, ignore_errors=True)
        if proc.returncode:
            sys.exit(proc.stdout[-2000:] + proc.stderr[-2000:])
    return pl.read_parquet(out / "catalog.parquet")


class Recorder:
    """The pipeline's gate, recording each fresh answer and its problems (repair is the gate's own)."""

    def __init__(self, gate, max_removals: int, log: Path):
        self.gate, self.max_removals, self.log = gate, max_removals, log
        self.answers: list[dict] = []
        self.lock = threading.Lock()
        log.parent.mkdir(exist_ok=True)
        log.write_text("")

    def problems(self, attributes: dict, copy: dict) -> list:
        found = self.gate.problems(attributes, copy)
        key = json.dumps(attributes, sort_keys=True)
        retry = bool(found) and (len(found) > self.max_removals or self.gate.repair(attributes, copy, found)[0] is None)
        with self.lock:
            n = 1 + sum(1 for a in self.answers if a["key"] == key)
            self.answers.append({"key": key, "answer": n, "copy": copy, "would_retry": retry,
                                 "problems": [{"kind": p.kind, "field": p.field, "problem": p.problem,
                                               "text": p.text, "sentence": p.sentence} for p in found]})
            with open(self.log, "a") as f:  # as they come: an interrupted run still tells
                f.write(json.dumps(self.answers[-1], ensure_ascii=False) + "\n")
        return found

    def repair(self, attributes: dict, copy: dict, problems: list):
        return self.gate.repair(attributes, copy, problems)


def figures(rows: pl.DataFrame, stats, answers: list[dict], seconds: float) -> dict:
    n = rows.height
    firsts = [a for a in answers if a["answer"] == 1]
    kinds = Counter(k for a in firsts for k in {p["kind"] for p in a["problems"]})
    return {
        "products": n, "distinct_sets": len({a["key"] for a in answers}) or None,
        "calls": stats.calls, "retries": stats.retries, "retries_per_product": stats.retries / n,
        "retry_reasons": dict(stats.retry_reasons),
        "first_answers": stats.first_answers,
        "first_with_problems_share": 1 - stats.first_clean / stats.first_answers if stats.first_answers else None,
        "first_would_retry_share": sum(a["would_retry"] for a in firsts) / len(firsts) if firsts else None,
        "first_problems_per_answer": sum(len(a["problems"]) for a in firsts) / len(firsts) if firsts else None,
        "first_problem_kinds": dict(kinds.most_common()),
        "failed": stats.failed, "s_per_product": seconds / n, "load": os.getloadavg(),
    }


def rescore(work: Path, label: str, gate, max_removals: int) -> dict:
    """The first answers of an earlier run judged again by this checkout's gate (a checker change)."""
    firsts = [a for a in map(json.loads, (work / "first-answers" / f"{label}.jsonl").read_text().splitlines())
              if a["answer"] == 1]
    from catalog_intel.copywriting.grounding import contradictions

    kinds: Counter = Counter()
    with_problems = retry = contradicting = 0
    for a in firsts:
        found = gate.problems(json.loads(a["key"]), a["copy"])
        # copy-quality's contradiction figure: it reads the style summary as what the product is
        contradicting += bool(contradictions({**json.loads(a["key"]), **a["copy"]}, gate.terms))
        kinds.update({p.kind for p in found})
        with_problems += bool(found)
        retry += bool(found) and (len(found) > max_removals
                                  or gate.repair(json.loads(a["key"]), a["copy"], found)[0] is None)
    n = len(firsts)
    return {"label": label, "first_answers": n, "first_with_problems_share": with_problems / n,
            "first_would_retry_share": retry / n, "first_problem_kinds": dict(kinds.most_common()),
            "first_contradicting_share": contradicting / n}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--skip", type=int, default=50, help="manifest rows skipped (the final measurement's products)")
    ap.add_argument("--first", type=int, default=40, help="products after those")
    ap.add_argument("--label", required=True)
    ap.add_argument("--llm-threads", type=int, default=1)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="config override, e.g. llm.temperature=0.5 (JSON values parsed)")
    ap.add_argument("--llm-toml", type=Path, help="TOML keys added to the [llm] table (a prompt to try)")
    ap.add_argument("--rescore", action="store_true", help="judge LABEL's recorded first answers again, no LLM")
    ap.add_argument("--first-answers-only", action="store_true", help="one answer per product (content_attempts=1)")
    a = ap.parse_args()

    from catalog_intel.settings import load_config
    from catalog_intel.copywriting.copywriter import describe
    from catalog_intel.copywriting.grounding import copy_check
    from catalog_intel.copywriting.local_llm import EmbeddedLLMServer, ensure_gguf

    def value(text: str):
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return text

    overrides = {k: value(v) for k, v in (s.split("=", 1) for s in a.set)}
    if a.first_answers_only:
        overrides["llm.content_attempts"] = 1
    config_file = a.work / "config.toml"
    if a.llm_toml:  # its sub-tables ([llm.example...]) go last, after every key of [llm]
        config_file = a.work / f"config-{a.label}.toml"
        base = config_file.with_name("config.toml").read_text()
        llm_table = "[llm]\ntimeout_s = 600\n"  # as copy_measure.py prepare writes it
        assert llm_table in base, f"{llm_table!r} not in the work config"
        config_file.write_text(base.replace(llm_table, "") + "\n" + llm_table + a.llm_toml.read_text())
    config = load_config(config_file, overrides)
    if a.rescore:
        print(json.dumps(rescore(a.work, a.label, copy_check(config), config.llm.repair_max_removals), indent=1))
        return
    rows = attributes(a.work, a.skip, a.first)
    llm = config.llm
    gate = Recorder(copy_check(config), llm.repair_max_removals, a.work / "first-answers" / f"{a.label}.jsonl")
    cache = Path(tempfile.mkdtemp(prefix="copy-", dir=a.work))
    with EmbeddedLLMServer(ensure_gguf(a.work, progress=False), n_ctx=llm.embedded_context,
                           n_parallel=llm.embedded_parallel, threads=a.llm_threads, isolate=True) as server:
        llm = llm.model_copy(update={"base_url": server.base_url, "model": server.model})
        started = time.monotonic()
        copy, stats = describe(rows, llm, config.validation, cache, check=gate)
        seconds = time.monotonic() - started
    shutil.rmtree(cache, ignore_errors=True)
    result = {"label": a.label, "overrides": overrides, **figures(rows, stats, gate.answers, seconds),
              "rejected": copy["copy_error"].drop_nulls().to_list(),
              "rows_repaired": int(copy["copy_warnings"].list.len().fill_null(0).gt(0).sum())}
    (a.work / "first-answers" / f"{a.label}.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()

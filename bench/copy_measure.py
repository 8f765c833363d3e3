"""Copy quality with catalog facts, before and after: hm-tops labels as supplier facts,
the embedded LLM writing the copy, a random tiny CLIP (the facts give the attributes).

    # 1. a manifest of N products (images copied under WORK, since manifest paths stay inside its folder)
    python bench/copy_measure.py prepare --work /tmp/copybench --n 60
    # 2. one run per code version (REPO: a checkout; its catalog_intel is put first on the path)
    python bench/copy_measure.py run --work /tmp/copybench --repo /work/wt-copy-before --label before
    python bench/copy_measure.py run --work /tmp/copybench --repo . --label after
    # 3. the figures, by this checkout's grounding checker, for every labelled run found
    python bench/copy_measure.py score --work /tmp/copybench --json bench/results/copy_facts.json

Facts given: colour, sleeve, neckline, pattern, garment type (labels' category), mapped into the
vocabulary with evaluate.LABEL_VALUE_MAP; `material` (source_fabric_from_desc) and `fit`
(source_fit_from_desc: fitted/slim -> slim, loose/oversized -> loose) as well. Blank label = blank cell.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import polars as pl

HERE = Path(__file__).resolve().parent.parent
HM = HERE.parent / "shared" / "data" / "hm-tops"
FIT_MAP = {"fitted/slim": "slim", "loose": "loose", "oversized": "loose"}


def prepare(work: Path, n: int) -> None:
    sys.path.insert(0, str(HERE))
    sys.path.insert(0, str(HERE / "tests"))
    from catalog_intel.evaluate import LABEL_VALUE_MAP
    from conftest import make_tiny_clip

    labels = pl.read_csv(HM / "labels.csv", infer_schema_length=0).sort("file")
    step = max(1, labels.height // n)
    sample = labels.gather(list(range(0, labels.height, step))[:n])
    images = work / "catalog" / "images"
    images.mkdir(parents=True, exist_ok=True)
    rows = []
    for r in sample.iter_rows(named=True):
        shutil.copyfile(HM / r["file"], images / Path(r["file"]).name)

        def fact(attr, value):
            value = (value or "").strip()
            return LABEL_VALUE_MAP.get(attr, {}).get(value, value)

        rows.append({"image": f"images/{Path(r['file']).name}", "product_id": r["source_article_id"],
                     "color": fact("color", r["color"]), "sleeve": fact("sleeve", r["sleeve"]),
                     "neckline": fact("neckline", r["neckline"]), "pattern": fact("pattern", r["pattern"]),
                     "garment_type": fact("garment_type", r["category"]),
                     "fit": FIT_MAP.get((r["source_fit_from_desc"] or "").strip(), ""),
                     "material": (r["source_fabric_from_desc"] or "").strip()})
    pl.DataFrame(rows).write_csv(work / "catalog" / "manifest.csv")
    clip = make_tiny_clip(work / "clip")
    (work / "config.toml").write_text(
        f'[clip]\nmodel = "tiny-clip"\nmodel_config = "{clip["clip.model_config"]}"\n'
        f'checkpoint = "{clip["clip.checkpoint"]}"\ndecode_workers = 0\nbatch_size = 16\n'
        "[llm]\ntimeout_s = 600\n[run]\nmax_reject_share = 1.0\n"
    )
    print(f"{len(rows)} products -> {work / 'catalog' / 'manifest.csv'}")


def run(work: Path, repo: Path, label: str) -> None:
    out, cache = work / label, work / f"{label}-cache"
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(cache, ignore_errors=True)
    cache.mkdir(parents=True)
    (work / "models").mkdir(exist_ok=True)
    (cache / "models").symlink_to(work / "models")  # the GGUF is assembled once, copy caches stay fresh
    env = {**os.environ, "PYTHONPATH": str(repo.resolve()), "DO_NOT_TRACK": "1",
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    cmd = [sys.executable, "-m", "catalog_intel.cli", "run", str(work / "catalog" / "manifest.csv"),
           "--out", str(out), "--config", str(work / "config.toml"), "--cache-dir", str(cache)]
    started = time.monotonic()
    proc = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True)
    seconds = time.monotonic() - started
    (work / f"{label}.log").write_text(proc.stdout + "\n" + proc.stderr)
    line = next((ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.startswith("catalog-intel: ")), "")
    (work / f"{label}.json").write_text(json.dumps({"label": label, "repo": str(repo), "rc": proc.returncode,
                                                     "seconds": seconds, "summary_line": line,
                                                     "load": os.getloadavg()}, indent=1))
    print(line or proc.stderr[-2000:])


def _llm_counts(line: str) -> dict:
    m = re.search(r"(\d+) inputs = (\d+) rows \+ (\d+) rejects .*LLM (\d+) calls, (\d+) cached, (\d+) failed, "
                  r"(\d+) retries", line)
    if not m:
        return {}
    keys = ("inputs", "rows", "rejects", "llm_calls", "llm_cached", "llm_failed", "llm_retries")
    return dict(zip(keys, map(int, m.groups())))


def score(work: Path, json_out: Path | None) -> None:
    sys.path.insert(0, str(HERE))
    from catalog_intel.config import load_config
    from catalog_intel.copy_quality import assess_file

    config = load_config()
    results = {}
    for meta_file in sorted(work.glob("*.json")):
        meta = json.loads(meta_file.read_text())
        parquet = work / meta["label"] / "catalog.parquet"
        counts = _llm_counts(meta["summary_line"])
        entry = {**meta, **counts}
        if parquet.is_file():
            q = assess_file(parquet, config)
            entry["quality"] = {k: q[k] for k in q if k not in ("file",)}
            n = counts.get("inputs") or q["rows"]
            entry["retries_per_product"] = counts.get("llm_retries", 0) / n if n else None
            entry["s_per_product"] = meta["seconds"] / n if n else None
        results[meta["label"]] = entry
        print(json.dumps({k: v for k, v in entry.items() if k != "quality"}, indent=1))
        if "quality" in entry:
            print(json.dumps(entry["quality"].get("headline", {}), indent=1))
    if json_out:
        json_out.write_text(json.dumps(results, indent=1, default=str))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--n", type=int, default=60)
    r = sub.add_parser("run")
    r.add_argument("--work", type=Path, required=True)
    r.add_argument("--repo", type=Path, required=True)
    r.add_argument("--label", required=True)
    s = sub.add_parser("score")
    s.add_argument("--work", type=Path, required=True)
    s.add_argument("--json", type=Path)
    a = ap.parse_args()
    if a.cmd == "prepare":
        prepare(a.work, a.n)
    elif a.cmd == "run":
        run(a.work, a.repo, a.label)
    else:
        score(a.work, a.json)


if __name__ == "__main__":
    main()

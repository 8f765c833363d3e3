"""Copy quality with catalog facts, before and after: hm-tops labels as supplier facts,
the embedded LLM writing the copy, a random tiny CLIP (the facts give the attributes).

    # 1. a manifest of N products (images copied under WORK, since manifest paths stay inside its folder)
    python bench/copy_measure.py prepare --work /tmp/copybench --n 60
    # 2. one run per code version (REPO: a checkout; its catalog_intel is put first on the path)
    python bench/copy_measure.py run --work /tmp/copybench --repo /work/wt-copy-before --label before
    python bench/copy_measure.py run --work /tmp/copybench --repo . --label after --first 50
    # another model for the embedded server, same products (llm.embedded_model_path)
    python bench/copy_measure.py run --work /tmp/copybench --repo . --label smollm2 --first 20 --gguf M.gguf
    # 3. the figures, by this checkout's grounding checker, for every labelled run found
    python bench/copy_measure.py score --work /tmp/copybench --first 50 --json bench/results/copy_facts.json

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


def _sample(labels: pl.DataFrame, n: int) -> list[int]:
    step = max(1, labels.height // n)
    return list(range(0, labels.height, step))[:n]


def prepare(work: Path, n: int, base_n: int | None = None) -> None:
    """`base_n`: the first products are those `prepare --n BASE_N` picks (an earlier measurement's
    products stay first), then others up to N: `--skip BASE_N` in copy_first_answers.py picks
    products no measurement on the first BASE_N has seen."""
    sys.path.insert(0, str(HERE))
    sys.path.insert(0, str(HERE / "tests"))
    from catalog_intel.quality.evaluate import LABEL_VALUE_MAP
    from conftest import make_tiny_clip

    labels = pl.read_csv(HM / "labels.csv", infer_schema_length=0).sort("file")
    picked = _sample(labels, base_n) if base_n else []
    picked += [i for i in _sample(labels, n) if i not in set(picked)]
    sample = labels.gather(picked[:n])
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


def run(work: Path, repo: Path, label: str, first: int | None = None, keep_cache: bool = False,
        llm_threads: int | None = None, gguf: Path | None = None) -> None:
    out, cache = work / label, work / f"{label}-cache"
    config = work / "config.toml"
    llm_keys = ""
    if llm_threads:  # code with llm.embedded_nice: a fixed thread count at normal priority
        llm_keys += f"embedded_threads = {llm_threads}\nembedded_nice = 0\n"
    if gguf:  # code with llm.embedded_model_path: another GGUF for the embedded server
        llm_keys += f'embedded_model_path = "{gguf.resolve()}"\n'
    if llm_keys:
        config = work / f"config-{label}.toml"
        config.write_text((work / "config.toml").read_text().replace("[llm]\n", "[llm]\n" + llm_keys))
    shutil.rmtree(out, ignore_errors=True)
    if not keep_cache:  # keep_cache: resume an interrupted run (s/answer is then read from the copy store)
        shutil.rmtree(cache, ignore_errors=True)
    cache.mkdir(parents=True, exist_ok=True)
    (work / "models").mkdir(exist_ok=True)
    if not (cache / "models").exists():
        (cache / "models").symlink_to(work / "models")  # the GGUF is assembled once, copy caches stay fresh
    env = {**os.environ, "PYTHONPATH": str(repo.resolve()), "DO_NOT_TRACK": "1",
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    manifest = work / "catalog" / "manifest.csv"
    if first:  # the first N products of the same manifest (same folder, so its paths hold)
        manifest = work / "catalog" / f"manifest-{first}.csv"
        pl.read_csv(work / "catalog" / "manifest.csv", infer_schema_length=0).head(first).write_csv(manifest)
    cmd = [sys.executable, "-m", "catalog_intel.cli", "run", str(manifest),
           "--out", str(out), "--config", str(config), "--cache-dir", str(cache)]
    started = time.monotonic()
    proc = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True)
    seconds = time.monotonic() - started
    (work / f"{label}.log").write_text(proc.stdout + "\n" + proc.stderr)
    line = next((ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.startswith("catalog-intel: ")), "")
    (work / f"{label}.json").write_text(json.dumps({"label": label, "repo": str(repo), "rc": proc.returncode,
                                                     "seconds": seconds, "summary_line": line,
                                                     "load": os.getloadavg()}, indent=1))
    print(line or proc.stderr[-2000:])


_PARTIAL = r"""
import json, sys
import polars as pl
from catalog_intel.schemas import ATTRIBUTE_ORDER
from catalog_intel.settings import load_config
from catalog_intel.schemas import COPY_COLUMNS
from catalog_intel.copywriting.copywriter import copy_key, copy_store, prompt_attributes
work, label, alias = sys.argv[1], sys.argv[2], sys.argv[3]
config = load_config(f"{work}/config.toml", {"llm.model": alias})
table = pl.read_parquet(f"{work}/{label}-nollm/catalog.parquet")
attrs = table
try:  # code with catalog facts: the free facts the LLM saw, as the run computed them
    from catalog_intel.pipeline.facts import merge_facts
    fact_cols = [c for c in table.columns if c.endswith("_fact") or c in config.facts.free_text]
    attrs = merge_facts(table.select("sha256", *ATTRIBUTE_ORDER, *[f"{a}_confidence" for a in ATTRIBUTE_ORDER]),
                        table.select("sha256", *fact_cols), config)
except ImportError:
    pass
keys = [copy_key(prompt_attributes(r), config.llm) for r in attrs.to_dicts()]
store = copy_store(config.paths.cache_path.__class__(f"{work}/{label}-cache")).lookup(set(keys))
answers = {r["copy_key"]: (json.loads(r["copy_json"]), r["created_at"]) for r in store.iter_rows(named=True)}
rows = []
for r, k in zip(table.drop([c for c in COPY_COLUMNS if c in table.columns]).to_dicts(), keys):
    if k in answers:
        copy, at = answers[k]
        rows.append({**r, **{c: copy[c] for c in COPY_COLUMNS}, "copy_warnings": copy.get("warnings", []),
                     "answered_at": at})
pl.DataFrame(rows, schema_overrides={"answered_at": pl.Float64}).write_parquet(f"{work}/{label}/catalog.parquet")
print(json.dumps({"rows_valid": table.height, "answered": len(rows), "answers_in_store": len(answers)}))
"""


def partial(work: Path, repo: Path, label: str, first: int | None = None, bare: bool = False) -> None:
    """Score an interrupted run from its copy store: the repo's own code re-derives each row's
    prompt (a --no-llm run over the same caches) and looks its answer up. Rows without an
    answer yet are left out; retries are not known (no run summary).

    `bare`: re-derive from the images alone (no fact columns). Code that writes the copy from
    the model attributes and only then lets manifest columns replace them (before catalog
    facts) asked the LLM about exactly these attributes, so every answer is judged against
    what it was given."""
    manifest = work / "catalog" / (f"manifest-{first}.csv" if first else "manifest.csv")
    if bare:
        table = pl.read_csv(manifest, infer_schema_length=0).select("image", "product_id")
        manifest = manifest.with_name(manifest.stem + "-bare.csv")
        table.write_csv(manifest)
    env = {**os.environ, "PYTHONPATH": str(repo.resolve()), "DO_NOT_TRACK": "1",
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    shutil.rmtree(work / f"{label}-nollm", ignore_errors=True)
    subprocess.run([sys.executable, "-m", "catalog_intel.cli", "run", str(manifest), "--out", str(work / f"{label}-nollm"),
                    "--config", str(work / "config.toml"), "--cache-dir", str(work / f"{label}-cache"), "--no-llm"],
                   cwd=repo, env=env, capture_output=True, text=True)
    (work / label).mkdir(exist_ok=True)
    proc = subprocess.run([sys.executable, "-c", _PARTIAL, str(work), label, "qwen2.5-coder-1.5b-instruct-q4_k_m"],
                          cwd=repo, env=env, capture_output=True, text=True)
    print(proc.stdout, proc.stderr[-2000:])
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    times = sorted(pl.read_parquet(work / label / "catalog.parquet")["answered_at"].to_list())
    gaps = [b - a for a, b in zip(times, times[1:]) if b - a < 900]  # one run's answers (a resumed run restarts)
    (work / f"{label}.json").write_text(json.dumps({
        "label": label, "repo": str(repo), "partial": True, **info, "summary_line": "",
        "seconds": None, "s_per_answer": sum(gaps) / len(gaps) if gaps else None, "load": os.getloadavg()}, indent=1))


def _llm_counts(line: str) -> dict:
    m = re.search(r"(\d+) inputs = (\d+) rows \+ (\d+) rejects .*LLM (\d+) calls, (\d+) cached, (\d+) failed, "
                  r"(\d+) retries", line)
    if not m:
        return {}
    keys = ("inputs", "rows", "rejects", "llm_calls", "llm_cached", "llm_failed", "llm_retries")
    return dict(zip(keys, map(int, m.groups())))


def score(work: Path, json_out: Path | None, first: int | None = None) -> None:
    """Figures per labelled run, on the manifest's first N products when `first` is given
    (runs over more products are cut to those, so before and after compare like with like)."""
    sys.path.insert(0, str(HERE))
    from catalog_intel.schemas import ATTRIBUTE_ORDER, UNKNOWN
    from catalog_intel.settings import load_config
    from catalog_intel.quality.copy_quality import copy_quality, load_output
    from catalog_intel.pipeline.facts import normalise

    config = load_config()
    manifest = pl.read_csv(work / "catalog" / "manifest.csv", infer_schema_length=0)
    if first:
        manifest = manifest.head(first)
    images = set(manifest["image"].to_list())
    n = manifest.height
    results = {}
    for meta_file in sorted(work.glob("*.json")):
        meta = json.loads(meta_file.read_text())
        parquet = work / meta["label"] / "catalog.parquet"
        counts = _llm_counts(meta["summary_line"])
        entry = {**meta, **counts, "products": n}
        if parquet.is_file():
            frame, seps = load_output(parquet)
            frame = frame.filter(pl.col("image").is_in(list(images)))
            q = copy_quality(frame, config, name=meta["label"], separators=seps)
            entry["quality"] = q
            per = counts.get("inputs") or (None if meta.get("partial") else n)
            entry["rows_of_products"] = frame.height
            entry["retries_per_product"] = counts.get("llm_retries", 0) / per if per else None
            entry["calls_per_product"] = counts.get("llm_calls", 0) / per if per else None
            entry["s_per_product"] = meta["seconds"] / per if per and meta.get("seconds") else meta.get("s_per_answer")
            entry["completeness"] = {
                a: {"input": sum(1 for v in manifest[a].to_list() if v and normalise(v, a, config)) / n
                    if a in manifest.columns else 0.0,
                    "output": int((frame[a] != UNKNOWN).sum()) / n if a in frame.columns else 0.0}
                for a in ATTRIBUTE_ORDER}
            entry["headline"] = {
                "rows": frame.height, "rejects": n - frame.height,
                "ungrounded_rows_share": q["ungrounded_claims"]["share"],
                "ungrounded_by_kind": {k: v for k, v in q["ungrounded_claims"]["by_kind"].items() if v},
                "contradiction_rows_share": q["contradictions"]["share"],
                "truncated_fields": q["form"]["truncated_fields"],
                "duplicate_tag_rows": q["form"]["rows"]["duplicate_tag"],
                "other_script_rows": q["form"]["other_script_rows"],
                "summary_repeats_rows": q["form"]["rows"]["summary_repeats"],
                "duplicate_descriptions_share": q["form"]["duplicate_descriptions_share"],
                "rows_with_copy_warnings": int(frame["copy_warnings"].list.len().fill_null(0).gt(0).sum())
                if "copy_warnings" in frame.columns else None,
                "retries_per_product": entry["retries_per_product"], "s_per_product": entry["s_per_product"],
            }
        results[meta["label"]] = entry
        print(meta["label"], json.dumps(entry.get("headline", meta), indent=1))
        if "completeness" in entry:
            print("  completeness in -> out:", ", ".join(
                f"{a} {v['input']:.0%} -> {v['output']:.0%}" for a, v in entry["completeness"].items()))
    if json_out:  # labels measured in other work folders stay
        kept = json.loads(json_out.read_text()) if json_out.is_file() else {}
        json_out.write_text(json.dumps({**kept, **results}, indent=1, default=str))
    print(markdown(results))


def markdown(results: dict) -> str:
    """The README table: one column per labelled run."""
    labels = [k for k in results if "headline" in results[k]]

    def pct(x):
        return "-" if x is None else f"{100 * x:.0f}%"

    def cell(label, key):
        h, e = results[label]["headline"], results[label]
        return {
            "products judged (answered)": f"{h['rows']}" + (" (partial run)" if e.get("partial") else ""),
            "rows with an ungrounded claim": f"{pct(h['ungrounded_rows_share'])} "
                                             f"({', '.join(f'{k} {v}' for k, v in h['ungrounded_by_kind'].items()) or 'none'})",
            "rows contradicting attributes": pct(h["contradiction_rows_share"]),
            "truncated fields": str(h["truncated_fields"]),
            "rows with duplicate SEO tags": str(h["duplicate_tag_rows"]),
            "rows with other-script words": str(h["other_script_rows"]),
            "style summary repeats description": str(h["summary_repeats_rows"]),
            "rows with copy_warnings (repaired)": str(h["rows_with_copy_warnings"]),
            "retries per product": "-" if h["retries_per_product"] is None else f"{h['retries_per_product']:.2f}",
            "s per product": "-" if h["s_per_product"] is None else f"{h['s_per_product']:.0f}",
        }[key]

    keys = ["products judged (answered)", "rows with an ungrounded claim", "rows contradicting attributes",
            "truncated fields", "rows with duplicate SEO tags", "rows with other-script words",
            "style summary repeats description", "rows with copy_warnings (repaired)", "retries per product",
            "s per product"]
    lines = ["| | " + " | ".join(labels) + " |", "|---|" + "---|" * len(labels)]
    lines += [f"| {k} | " + " | ".join(cell(lb, k) for lb in labels) + " |" for k in keys]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--n", type=int, default=60)
    p.add_argument("--base-n", type=int, help="first the products of `prepare --n BASE_N`, then others up to N")
    r = sub.add_parser("run")
    r.add_argument("--work", type=Path, required=True)
    r.add_argument("--repo", type=Path, required=True)
    r.add_argument("--label", required=True)
    r.add_argument("--first", type=int, help="only the manifest's first N products")
    r.add_argument("--keep-cache", action="store_true", help="resume: keep the copy answers of an earlier run")
    r.add_argument("--llm-threads", type=int, help="embedded server threads, at normal priority (code after #9)")
    r.add_argument("--gguf", type=Path, help="another GGUF for the embedded server (llm.embedded_model_path)")
    pa = sub.add_parser("partial")
    pa.add_argument("--work", type=Path, required=True)
    pa.add_argument("--repo", type=Path, required=True)
    pa.add_argument("--label", required=True)
    pa.add_argument("--first", type=int)
    pa.add_argument("--bare", action="store_true", help="re-derive the prompts from the images alone")
    s = sub.add_parser("score")
    s.add_argument("--work", type=Path, required=True)
    s.add_argument("--json", type=Path)
    s.add_argument("--first", type=int, help="score only the manifest's first N products")
    a = ap.parse_args()
    if a.cmd == "prepare":
        prepare(a.work, a.n, a.base_n)
    elif a.cmd == "run":
        run(a.work, a.repo, a.label, a.first, a.keep_cache, a.llm_threads, a.gguf)
    elif a.cmd == "partial":
        partial(a.work, a.repo, a.label, a.first, a.bare)
    else:
        score(a.work, a.json, a.first)


if __name__ == "__main__":
    main()

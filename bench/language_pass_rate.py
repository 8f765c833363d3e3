"""Share of the embedded LLM's copy that passes the grounding checker, per language.

    python bench/language_pass_rate.py --n 6 --languages en,de,fr --json bench/results/language_pass_rate.json

Products: the first N hm-tops labels with a known colour, sleeve and garment type, their labels
mapped into the vocabulary (evaluate.LABEL_VALUE_MAP) and used as the attributes. Each language's
copy is the model's first schema-valid answer (no checker feedback, no repair), with a fresh copy
cache, so the figure is the model's own. Two figures: every rule, and only the rules the checker has
in every language (SHARED_RULES). Re-score cached copy without the server:
`--cache DIR --llm-base-url http://127.0.0.1:9/v1 --llm-model qwen2.5-coder-1.5b-instruct-q4_k_m`. The machine's load average is recorded with the result."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import polars as pl

HERE = Path(__file__).resolve().parent.parent
HM = HERE.parent / "shared" / "data" / "hm-tops"
# The rules the checker has in every language (size, season, care, brand and price are English only),
# so this figure compares languages fairly.
SHARED_RULES = ("colour", "garment", "sleeve", "neckline", "pattern", "fabric", "fit", "gender", "language")


def products(n: int, config) -> pl.DataFrame:
    from catalog_intel.quality.evaluate import LABEL_VALUE_MAP

    labels = pl.read_csv(HM / "labels.csv", infer_schema_length=0).sort("file")
    rows = []
    for r in labels.iter_rows(named=True):
        row = {"sha256": r["file"]}
        for attr, col in (("color", "color"), ("sleeve", "sleeve"), ("neckline", "neckline"),
                          ("pattern", "pattern"), ("garment_type", "category")):
            value = (r.get(col) or "").strip()
            value = LABEL_VALUE_MAP.get(attr, {}).get(value, value)
            row[attr] = value if value in config.attributes[attr].values else "unknown"
        row.update(fabric="unknown", fit="unknown")
        if all(row[a] != "unknown" for a in ("color", "sleeve", "garment_type")):
            rows.append(row)
        if len(rows) == n:
            break
    return pl.DataFrame(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=6)
    ap.add_argument("--languages", default="en,de,fr")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--cache", type=Path, help="copy cache to reuse (default: a fresh one)")
    ap.add_argument("--llm-base-url", help="score cached copy (or use a server) instead of starting the embedded one")
    ap.add_argument("--llm-model", help="with --llm-base-url: the model name the copy was cached under")
    a = ap.parse_args()
    sys.path.insert(0, str(HERE))
    from catalog_intel.settings import load_config
    from catalog_intel.copywriting.copywriter import describe
    from catalog_intel.copywriting.languages import BASE, language_gate, language_llm, translate_attributes
    from catalog_intel.copywriting.llm_service import llm_endpoint

    langs = [x.strip() for x in a.languages.split(",") if x.strip()]
    cache = a.cache or Path(tempfile.mkdtemp(prefix="lang-bench-"))
    if not (cache / "models").exists():
        cache.mkdir(parents=True, exist_ok=True)
        (cache / "models").symlink_to(Path.home() / ".cache" / "catalog-intel" / "models")  # the assembled GGUF
    config = load_config(overrides={"llm.languages": langs, "paths.cache_dir": str(cache),
                                    "llm.concurrency": 1, "llm.base_url": a.llm_base_url, "llm.model": a.llm_model})
    attrs = products(a.n, config)
    results, load_before = {}, os.getloadavg()
    with llm_endpoint(config) as cfg:
        for lang in langs:
            started = time.monotonic()
            given = attrs if lang == BASE else translate_attributes(attrs, cfg, lang)
            llm = cfg.llm if lang == BASE else language_llm(cfg.llm, lang, cfg.languages[lang])
            copy, stats = describe(given, llm, cfg.validation, cfg.paths.cache_path)  # no check: raw answers
            seconds = time.monotonic() - started
            gate = language_gate(cfg, lang)
            table = attrs.join(copy, on="sha256").rename({"sha256": "image"})
            passed, passed_shared, kinds, examples = 0, 0, Counter(), []
            for row, given_row in zip(table.iter_rows(named=True), given.iter_rows(named=True)):
                if row["title"] is None:
                    kinds["no copy"] += 1
                    continue
                problems = gate.problems({k: v for k, v in given_row.items() if k != "sha256"},
                                         {c: row[c] for c in ("title", "bullet_points", "description",
                                                              "style_summary", "seo_tags")})
                passed += not problems
                passed_shared += not [p for p in problems if p.kind in SHARED_RULES]
                kinds.update(p.kind for p in problems)
                examples.extend(p.reason for p in problems[:2])
            results[lang] = {"products": attrs.height, "with_copy": int(copy["title"].is_not_null().sum()),
                             "passed": passed, "pass_rate": passed / attrs.height,
                             "passed_shared_rules": passed_shared, "pass_rate_shared_rules": passed_shared / attrs.height,
                             "problem_kinds": dict(kinds),
                             "examples": examples[:6], "llm_calls": stats.calls, "seconds": round(seconds, 1),
                             "titles": copy["title"].to_list()}
            print(json.dumps({lang: {k: v for k, v in results[lang].items() if k != "titles"}}, ensure_ascii=False))
    out = {"languages": results, "load_before": load_before, "load_after": os.getloadavg(), "cpus": os.cpu_count()}
    if a.json:
        a.json.write_text(json.dumps(out, indent=1, ensure_ascii=False))
    print(json.dumps({k: (v["passed"], v["passed_shared_rules"], v["products"]) for k, v in results.items()}))


if __name__ == "__main__":
    main()

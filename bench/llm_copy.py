"""LLM copy benches, one tool: quality with catalog facts, first answers, threads, languages, concurrency.

    # a work folder: N hm-tops products with their labels as supplier facts, and the tiny random CLIP (the facts give
    # the attributes); --base-n keeps an earlier measurement's products first
    python bench/llm_copy.py prepare --work /tmp/copybench --n 60 [--base-n 50]
    # the pipeline with the embedded LLM on the first N products (REPO: a checkout to measure), then the figures
    python bench/llm_copy.py measure --work /tmp/copybench --repo . --label final50 --first 50 --llm-threads 1 [--gguf M]
    python bench/llm_copy.py score --work /tmp/copybench --first 50 [--json bench/results/llm_copy.json]
    # every answer of the copy step and its problems, for products no measurement above has seen
    python bench/llm_copy.py first-answers --work /tmp/copybench --skip 50 --first 20 --label v10 --first-answers-only
    # completion tokens/s and s/product by model and llama.cpp thread count, interleaved
    python bench/llm_copy.py threads --threads 1 2 --rounds 2 --products 3 [--gguf A.gguf B.gguf]
    # the share of first answers that pass the grounding checker, per language
    python bench/llm_copy.py languages --n 4 --languages en,de,fr
    # products/s at 1, 2, 4 concurrent requests against the embedded server (ceiling: c x the single-stream rate)
    python bench/llm_copy.py concurrency --products 8 --levels 1,2,4

Each sub-command's report is one section of bench/results/llm_copy.json (with --json), beside the others.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.harness import REPO, Timer, add_report_args, load_settings, log, report, run_pipeline  # noqa: E402

HM = REPO.parent / "shared" / "data" / "hm-tops"
FIT_MAP = {"fitted/slim": "slim", "loose": "loose", "oversized": "loose"}
# The rules the checker has in every language (size, season, care, brand and price are English only).
SHARED_RULES = ("colour", "garment", "sleeve", "neckline", "pattern", "fabric", "fit", "gender", "language")
THREAD_PRODUCTS = [
    {"color": "navy", "sleeve": "long sleeve", "neckline": "round neck", "pattern": "striped", "garment_type": "top"},
    {"color": "white", "sleeve": "short sleeve", "neckline": "v-neck", "pattern": "solid", "garment_type": "t-shirt",
     "facts_json": json.dumps({"material": "100% cotton"})},
    {"color": "pink", "sleeve": "sleeveless", "pattern": "floral", "garment_type": "tank top"},
    {"color": "grey", "neckline": "hooded", "pattern": "solid", "garment_type": "hoodie",
     "facts_json": json.dumps({"material": "sweatshirt fabric"})},
]


def _label_value(attr: str, value: str | None) -> str:
    from catalog_intel.quality.evaluate import LABEL_VALUE_MAP

    value = (value or "").strip()
    return LABEL_VALUE_MAP.get(attr, {}).get(value, value)


def _settings(work: Path) -> dict:
    return json.loads((work / "settings.json").read_text())


# ----------------------------------------------------------------------------- prepare, measure, score


def _sample(labels: pl.DataFrame, n: int) -> list[int]:
    step = max(1, labels.height // n)
    return list(range(0, labels.height, step))[:n]


def prepare(args) -> None:
    """WORK/catalog/manifest.csv (images copied under WORK: manifest paths stay inside its folder) and
    WORK/settings.json (the tiny CLIP, a long LLM timeout). Facts: colour, sleeve, neckline, pattern, garment type
    (labels' category) through LABEL_VALUE_MAP; `material` (source_fabric_from_desc), `fit` (source_fit_from_desc)."""
    from bench.harness import tiny_clip

    labels = pl.read_csv(HM / "labels.csv", infer_schema_length=0).sort("file")
    picked = _sample(labels, args.base_n) if args.base_n else []
    picked += [i for i in _sample(labels, args.n) if i not in set(picked)]
    images = args.work / "catalog" / "images"
    images.mkdir(parents=True, exist_ok=True)
    rows = []
    for r in labels.gather(picked[:args.n]).iter_rows(named=True):
        shutil.copyfile(HM / r["file"], images / Path(r["file"]).name)
        rows.append({"image": f"images/{Path(r['file']).name}", "product_id": r["source_article_id"],
                     **{a: _label_value(a, r[a]) for a in ("color", "sleeve", "neckline", "pattern")},
                     "garment_type": _label_value("garment_type", r["category"]),
                     "fit": FIT_MAP.get((r["source_fit_from_desc"] or "").strip(), ""),
                     "material": (r["source_fabric_from_desc"] or "").strip()})
    pl.DataFrame(rows).write_csv(args.work / "catalog" / "manifest.csv")
    settings = {**tiny_clip(args.work / "clip"), "llm.timeout_s": 600}
    (args.work / "settings.json").write_text(json.dumps(settings, indent=1))
    log(f"{len(rows)} products -> {args.work / 'catalog' / 'manifest.csv'}")


def _manifest(work: Path, skip: int = 0, first: int | None = None) -> Path:
    """The manifest's rows SKIP..SKIP+FIRST, in the same folder (so its paths hold)."""
    if not skip and not first:
        return work / "catalog" / "manifest.csv"
    path = work / "catalog" / f"manifest-{skip}-{first}.csv"
    table = pl.read_csv(work / "catalog" / "manifest.csv", infer_schema_length=0)
    table.slice(skip, first).write_csv(path)
    return path


def measure(args) -> None:
    """The pipeline of checkout REPO with the embedded LLM, into WORK/LABEL, fresh copy cache; its summary goes to
    WORK/LABEL.json for `score`."""
    work, label = args.work, args.label
    out, cache = work / label, work / f"{label}-cache"
    settings = _settings(work)
    if args.llm_threads:  # a fixed thread count at normal priority
        settings.update({"llm.embedded_threads": args.llm_threads, "llm.embedded_nice": 0})
    if args.gguf:  # another GGUF for the embedded server
        settings["llm.embedded_model_path"] = str(args.gguf.resolve())
    shutil.rmtree(out, ignore_errors=True)
    if not args.keep_cache:  # keep_cache: resume an interrupted run
        shutil.rmtree(cache, ignore_errors=True)
    cache.mkdir(parents=True, exist_ok=True)
    (work / "models").mkdir(exist_ok=True)
    if not (cache / "models").exists():
        (cache / "models").symlink_to(work / "models")  # the GGUF is assembled once, copy caches stay fresh
    run = run_pipeline(_manifest(work, 0, args.first), out, cache=cache, settings=settings, no_llm=False,
                       repo=args.repo.resolve(), label=label)
    (work / f"{label}.json").write_text(json.dumps({"label": label, "repo": str(args.repo), **run.figures(),
                                                    "load_avg": os.getloadavg()}, indent=1))


def score(args) -> None:
    """Figures per measured label, on the manifest's first N products when --first is given (runs over more
    products are cut to those, so labels compare like with like)."""
    from catalog_intel.schemas import ATTRIBUTE_ORDER, UNKNOWN
    from catalog_intel.pipeline.facts import normalise
    from catalog_intel.quality.copy_quality import copy_quality, load_output

    config = load_settings()
    manifest = pl.read_csv(args.work / "catalog" / "manifest.csv", infer_schema_length=0)
    if args.first:
        manifest = manifest.head(args.first)
    images, n = set(manifest["image"].to_list()), manifest.height
    results = {}
    for meta_file in sorted(args.work.glob("*.json")):
        meta = json.loads(meta_file.read_text())
        if "summary" not in meta or not (args.work / meta["label"] / "catalog.parquet").is_file():
            continue
        frame, seps = load_output(args.work / meta["label"] / "catalog.parquet")
        frame = frame.filter(pl.col("image").is_in(list(images)))
        q = copy_quality(frame, config, name=meta["label"], separators=seps)
        s, per = meta["summary"], meta["summary"]["inputs"]
        results[meta["label"]] = {
            "run": meta, "quality": q, "rows": frame.height, "rejects": n - frame.height,
            "ungrounded_rows_share": q["ungrounded_claims"]["share"],
            "ungrounded_by_kind": {k: v for k, v in q["ungrounded_claims"]["by_kind"].items() if v},
            "contradiction_rows_share": q["contradictions"]["share"],
            "truncated_fields": q["form"]["truncated_fields"], "duplicate_tag_rows": q["form"]["rows"]["duplicate_tag"],
            "other_script_rows": q["form"]["other_script_rows"],
            "summary_repeats_rows": q["form"]["rows"]["summary_repeats"],
            "duplicate_descriptions_share": q["form"]["duplicate_descriptions_share"],
            "rows_with_copy_warnings": int(frame["copy_warnings"].list.len().fill_null(0).gt(0).sum())
            if "copy_warnings" in frame.columns else None,
            "calls_per_product": s["llm_calls"] / per, "retries_per_product": s["llm_retries"] / per,
            "s_per_product": meta["wall_s"] / per,
            "completeness": {a: {"input": sum(1 for v in manifest[a].to_list() if v and normalise(v, a, config)) / n
                                 if a in manifest.columns else 0.0,
                                 "output": int((frame[a] != UNKNOWN).sum()) / n if a in frame.columns else 0.0}
                             for a in ATTRIBUTE_ORDER}}
    report("llm_copy", results, args.json, section=f"measure {args.work.name}")


# ----------------------------------------------------------------------------- first answers


class Recorder:
    """The pipeline's gate, recording each fresh answer and its problems (repair is the gate's own)."""

    def __init__(self, gate, max_removals: int, log_file: Path):
        self.gate, self.max_removals, self.log_file = gate, max_removals, log_file
        self.answers: list[dict] = []
        self.lock = threading.Lock()
        log_file.parent.mkdir(exist_ok=True)
        log_file.write_text("")

    def problems(self, attributes: dict, copy: dict) -> list:
        found = self.gate.problems(attributes, copy)
        key = json.dumps(attributes, sort_keys=True)
        retry = bool(found) and (len(found) > self.max_removals or self.gate.repair(attributes, copy, found)[0] is None)
        with self.lock:
            n = 1 + sum(1 for a in self.answers if a["key"] == key)
            self.answers.append({"key": key, "answer": n, "copy": copy, "would_retry": retry,
                                 "problems": [{"kind": p.kind, "field": p.field, "problem": p.problem,
                                               "text": p.text, "sentence": p.sentence} for p in found]})
            with open(self.log_file, "a") as f:  # as they come: an interrupted run still tells
                f.write(json.dumps(self.answers[-1], ensure_ascii=False) + "\n")
        return found

    def repair(self, attributes: dict, copy: dict, problems: list):
        return self.gate.repair(attributes, copy, problems)


def _first_answer_figures(rows: pl.DataFrame, stats, answers: list[dict], seconds: float) -> dict:
    n = rows.height
    firsts = [a for a in answers if a["answer"] == 1]
    return {
        "products": n, "distinct_sets": len({a["key"] for a in answers}) or None,
        "calls": stats.calls, "retries": stats.retries, "retries_per_product": stats.retries / n,
        "retry_reasons": dict(stats.retry_reasons), "first_answers": stats.first_answers,
        "first_with_problems_share": 1 - stats.first_clean / stats.first_answers if stats.first_answers else None,
        "first_would_retry_share": sum(a["would_retry"] for a in firsts) / len(firsts) if firsts else None,
        "first_problems_per_answer": sum(len(a["problems"]) for a in firsts) / len(firsts) if firsts else None,
        "first_problem_kinds": dict(Counter(k for a in firsts for k in {p["kind"] for p in a["problems"]}).most_common()),
        "failed": stats.failed, "s_per_product": seconds / n,
    }


def _rescore(work: Path, label: str, gate, max_removals: int) -> dict:
    """The first answers of an earlier run judged again by this checkout's gate (after a checker change)."""
    from catalog_intel.copywriting.grounding import contradictions

    firsts = [a for a in map(json.loads, (work / "first-answers" / f"{label}.jsonl").read_text().splitlines())
              if a["answer"] == 1]
    kinds: Counter = Counter()
    with_problems = retry = contradicting = 0
    for a in firsts:
        attributes = json.loads(a["key"])
        found = gate.problems(attributes, a["copy"])
        # copy-quality's contradiction figure: it reads the style summary as what the product is
        contradicting += bool(contradictions({**attributes, **a["copy"]}, gate.terms))
        kinds.update({p.kind for p in found})
        with_problems += bool(found)
        retry += bool(found) and (len(found) > max_removals or gate.repair(attributes, a["copy"], found)[0] is None)
    n = len(firsts)
    return {"label": label, "first_answers": n, "first_with_problems_share": with_problems / n,
            "first_would_retry_share": retry / n, "first_problem_kinds": dict(kinds.most_common()),
            "first_contradicting_share": contradicting / n}


def first_answers(args) -> None:
    """The products' attributes as this checkout's run computes them (a --no-llm run of the manifest's rows
    SKIP..SKIP+FIRST, kept under WORK/attributes-SKIP-FIRST/); then describe() writes their copy through the gate on
    one embedded server (the pipeline's slots, --llm-threads threads, normal priority) and a fresh copy cache. Each
    answer and its problems go to WORK/first-answers/LABEL.jsonl. `--first-answers-only`: one answer per product
    (llm.content_attempts = 1); "would retry" counts the first answers the pipeline would have asked again."""
    from catalog_intel.copywriting.copywriter import describe
    from catalog_intel.copywriting.grounding import copy_check
    from catalog_intel.copywriting.local_llm import EmbeddedLLMServer, ensure_gguf

    overrides = {**_settings(args.work), **{k: _value(v) for k, v in (s.split("=", 1) for s in args.set)}}
    if args.first_answers_only:
        overrides["llm.content_attempts"] = 1
    config = load_settings(args.config, overrides)
    if args.rescore:
        report("llm_copy", _rescore(args.work, args.label, copy_check(config), config.llm.repair_max_removals),
               args.json, section="first-answers-rescore")
        return
    out = args.work / f"attributes-{args.skip}-{args.first}"
    if not (out / "catalog.parquet").is_file():
        with tempfile.TemporaryDirectory(prefix="attrs-", dir=args.work) as cache:
            run_pipeline(_manifest(args.work, args.skip, args.first), out, cache=cache, settings=_settings(args.work),
                         label="attributes")
    rows = pl.read_parquet(out / "catalog.parquet")
    llm = config.llm
    gate = Recorder(copy_check(config), llm.repair_max_removals, args.work / "first-answers" / f"{args.label}.jsonl")
    with tempfile.TemporaryDirectory(prefix="copy-", dir=args.work) as cache, \
            EmbeddedLLMServer(ensure_gguf(args.work, progress=False), n_ctx=llm.embedded_context,
                              n_parallel=llm.embedded_parallel, threads=args.llm_threads, isolate=True) as server:
        llm = llm.model_copy(update={"base_url": server.base_url, "model": server.model})
        with Timer() as t:
            copy, stats = describe(rows, llm, config.validation, Path(cache), check=gate)
    figures = {"label": args.label, "overrides": {k: v for k, v in overrides.items() if not k.startswith("clip.")},
               **_first_answer_figures(rows, stats, gate.answers, t.wall), "cpu_s": round(t.cpu, 1),
               "rejected": copy["copy_error"].drop_nulls().to_list(),
               "rows_repaired": int(copy["copy_warnings"].list.len().fill_null(0).gt(0).sum())}
    report("llm_copy", figures, args.json, section=f"first-answers {args.label}")


def _value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


# ----------------------------------------------------------------------------- threads


def _thread_samples(gguf: Path, threads: int, products: list[dict], config) -> list[dict]:
    import openai

    from catalog_intel.copywriting.copywriter import build_messages, prompt_attributes, response_schema
    from catalog_intel.copywriting.local_llm import EmbeddedLLMServer

    llm, out = config.llm, []
    with EmbeddedLLMServer(gguf, n_ctx=llm.embedded_context, n_parallel=1, threads=threads, isolate=True) as srv:
        client = openai.OpenAI(base_url=srv.base_url, api_key="not-needed", max_retries=0, timeout=600)
        fmt = {"type": "json_schema", "json_schema": {"name": "catalog_copy", "strict": True,
                                                       "schema": response_schema()}}
        for row in products:
            messages = build_messages(prompt_attributes({"sha256": "x", **row}), llm)
            t0 = time.monotonic()
            reply = client.chat.completions.create(model=srv.model, messages=messages, response_format=fmt,
                                                   temperature=llm.temperature, max_tokens=llm.max_tokens, seed=1)
            seconds = time.monotonic() - t0
            tokens = reply.usage.completion_tokens if reply.usage else 0
            out.append({"model": gguf.stem, "threads": threads, "seconds": seconds, "completion_tokens": tokens,
                        "tokens_per_s": tokens / seconds if seconds else None, "load1": os.getloadavg()[0]})
            log(json.dumps(out[-1]))
    return out


def threads(args) -> None:
    """Each round starts one server per model and thread count in turn (so load drifts hit all alike) and sends the
    same product prompts (the pipeline's own prompt, one at a time, fixed seed)."""
    from catalog_intel.copywriting.local_llm import ensure_gguf

    config = load_settings(overrides={"paths.cache_dir": args.cache_dir})
    models = args.gguf or [ensure_gguf(config.paths.cache_path)]
    samples = []
    for _ in range(args.rounds):
        for gguf in models:
            for t in args.threads:
                samples += _thread_samples(gguf, t, THREAD_PRODUCTS[:args.products], config)
    table = {}
    for gguf in models:
        for t in args.threads:
            mine = [s for s in samples if s["threads"] == t and s["model"] == gguf.stem]
            table[f"{gguf.stem} threads {t}"] = {
                "s_per_product": statistics.median(s["seconds"] for s in mine),
                "completion_tokens": statistics.median(s["completion_tokens"] for s in mine),
                "tokens_per_s": statistics.median(s["tokens_per_s"] for s in mine),
                "load1": statistics.fmean(s["load1"] for s in mine), "requests": len(mine)}
    report("llm_copy", {"table": table, "samples": samples}, args.json, section="threads")


# ----------------------------------------------------------------------------- languages


def _language_products(n: int, config) -> pl.DataFrame:
    """The first N hm-tops labels with a known colour, sleeve and garment type, as attributes."""
    labels = pl.read_csv(HM / "labels.csv", infer_schema_length=0).sort("file")
    rows = []
    for r in labels.iter_rows(named=True):
        row = {"sha256": r["file"]}
        for attr, col in (("color", "color"), ("sleeve", "sleeve"), ("neckline", "neckline"),
                          ("pattern", "pattern"), ("garment_type", "category")):
            value = _label_value(attr, r.get(col))
            row[attr] = value if value in config.attributes[attr].values else "unknown"
        row.update(fabric="unknown", fit="unknown")
        if all(row[a] != "unknown" for a in ("color", "sleeve", "garment_type")):
            rows.append(row)
        if len(rows) == n:
            break
    return pl.DataFrame(rows)


def languages(args) -> None:
    """Each language's copy is the model's first schema-valid answer (no checker feedback, no repair), with a fresh
    copy cache. Two figures: every rule, and only the rules the checker has in every language (SHARED_RULES).
    Re-score cached copy without a server: --cache DIR --llm-base-url http://127.0.0.1:9/v1 --llm-model NAME."""
    from catalog_intel.copywriting.copywriter import describe
    from catalog_intel.copywriting.languages import BASE, language_gate, language_llm, translate_attributes
    from catalog_intel.copywriting.llm_service import llm_endpoint

    langs = [x.strip() for x in args.languages.split(",") if x.strip()]
    cache = args.cache or Path(tempfile.mkdtemp(prefix="lang-bench-"))
    if not (cache / "models").exists():
        cache.mkdir(parents=True, exist_ok=True)
        (cache / "models").symlink_to(Path.home() / ".cache" / "catalog-intel" / "models")  # the assembled GGUF
    config = load_settings(overrides={"llm.languages": langs, "paths.cache_dir": str(cache), "llm.concurrency": 1,
                                      "llm.base_url": args.llm_base_url, "llm.model": args.llm_model})
    attrs = _language_products(args.n, config)
    results = {}
    with llm_endpoint(config) as cfg:
        for lang in langs:
            given = attrs if lang == BASE else translate_attributes(attrs, cfg, lang)
            llm = cfg.llm if lang == BASE else language_llm(cfg.llm, lang, cfg.languages[lang])
            with Timer() as t:
                copy, stats = describe(given, llm, cfg.validation, cfg.paths.cache_path)  # no check: raw answers
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
                             "passed": passed, "passed_shared_rules": passed_shared, "problem_kinds": dict(kinds),
                             "examples": examples[:6], "llm_calls": stats.calls, "seconds": round(t.wall, 1),
                             "titles": copy["title"].to_list()}
            log(f"{lang}: {passed} / {attrs.height} pass every rule, {passed_shared} the shared rules")
    report("llm_copy", results, args.json, section="languages")


# ----------------------------------------------------------------------------- concurrency


def concurrency(args) -> None:
    """Products/s at each concurrency level, fresh attribute sets per level (no cached prompt), against the embedded
    server with one slot per concurrent request, or --llm-base-url."""
    import numpy as np

    from catalog_intel.schemas import ATTRIBUTE_ORDER
    from catalog_intel.copywriting.copywriter import describe
    from catalog_intel.copywriting.local_llm import EmbeddedLLMServer, ensure_gguf

    config = load_settings()
    levels = [int(x) for x in args.levels.split(",")]
    server = None
    base_url, model = args.llm_base_url, args.llm_model
    if not base_url:
        gguf = ensure_gguf(Path(os.path.expanduser("~/.cache/catalog-intel")), progress=False)
        server = EmbeddedLLMServer(gguf, n_ctx=args.ctx_per_slot * max(levels), n_parallel=max(levels), isolate=True)
        server.start()
        base_url, model = server.base_url, server.model
    vocab = {a: list(config.attributes[a].values) for a in ATTRIBUTE_ORDER}
    rng = np.random.default_rng(7)
    rows_out, single = [], None
    try:
        with tempfile.TemporaryDirectory(prefix="llm-concurrency-") as work:
            for level, c in enumerate(levels):
                rows = [{"sha256": f"{level:02d}{i:062x}",
                         **{a: vals[int(rng.integers(len(vals)))] for a, vals in vocab.items()}}
                        for i in range(args.products)]
                llm = config.llm.model_copy(update={"base_url": base_url, "model": model or "local-model",
                                                    "concurrency": c, "max_attempts": 2})
                with Timer() as t:
                    copy, stats = describe(pl.DataFrame(rows), llm, config.validation, Path(work) / f"cache-{c}")
                ok = copy.filter(pl.col("copy_error").is_null()).height
                rate = ok / t.wall
                single = rate if single is None and c == 1 else single
                rows_out.append({"concurrency": c, "products_per_s": rate, "ok": ok, "calls": stats.calls,
                                 "retries": stats.retries, "s_per_product": t.wall / max(ok, 1),
                                 "ratio_to_linear": rate / (c * single) if single else None,
                                 "foreign_cores": round(t.foreign_cores, 2)})
                log(f"concurrency {c}: {rate:.3f} products/s ({ok}/{args.products} ok)")
    finally:
        if server is not None:
            server.stop()
    report("llm_copy", rows_out, args.json, section="concurrency")


# ----------------------------------------------------------------------------- command line


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare", help=prepare.__doc__.split("\n")[0])
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--n", type=int, default=60)
    p.add_argument("--base-n", type=int, help="first the products of `prepare --n BASE_N`, then others up to N")
    m = sub.add_parser("measure", help="the pipeline with the embedded LLM on the manifest (REPO's code)")
    m.add_argument("--work", type=Path, required=True)
    m.add_argument("--repo", type=Path, default=REPO, help="the checkout to measure (default: this one)")
    m.add_argument("--label", required=True)
    m.add_argument("--first", type=int, help="only the manifest's first N products")
    m.add_argument("--keep-cache", action="store_true", help="resume: keep the copy answers of an earlier run")
    m.add_argument("--llm-threads", type=int, help="embedded server threads, at normal priority")
    m.add_argument("--gguf", type=Path, help="another GGUF for the embedded server (llm.embedded_model_path)")
    s = sub.add_parser("score", help="copy-quality figures of every measured label")
    s.add_argument("--work", type=Path, required=True)
    s.add_argument("--first", type=int, help="score only the manifest's first N products")
    f = sub.add_parser("first-answers", help="every answer of the copy step, with its problems")
    f.add_argument("--work", type=Path, required=True)
    f.add_argument("--skip", type=int, default=50, help="manifest rows skipped (the measured products)")
    f.add_argument("--first", type=int, default=40, help="products after those")
    f.add_argument("--label", required=True)
    f.add_argument("--llm-threads", type=int, default=1)
    f.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="config override, e.g. llm.temperature=0.5 (JSON values parsed)")
    f.add_argument("--config", type=Path, help="a TOML of further keys, e.g. a prompt to try")
    f.add_argument("--rescore", action="store_true", help="judge LABEL's recorded first answers again, no LLM")
    f.add_argument("--first-answers-only", action="store_true", help="one answer per product (content_attempts=1)")
    t = sub.add_parser("threads", help="tokens/s and s/product by model and thread count")
    t.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    t.add_argument("--rounds", type=int, default=2)
    t.add_argument("--products", type=int, default=3)
    t.add_argument("--cache-dir")
    t.add_argument("--gguf", type=Path, nargs="+", help="GGUF files to compare (default: the default model)")
    lg = sub.add_parser("languages", help="first answers that pass the checker, per language")
    lg.add_argument("--n", type=int, default=6)
    lg.add_argument("--languages", default="en,de,fr")
    lg.add_argument("--cache", type=Path, help="copy cache to reuse (default: a fresh one)")
    lg.add_argument("--llm-base-url", help="score cached copy (or use a server) instead of starting the embedded one")
    lg.add_argument("--llm-model", help="with --llm-base-url: the model name the copy was cached under")
    c = sub.add_parser("concurrency", help="products/s at several concurrent requests")
    c.add_argument("--products", type=int, default=8, help="distinct products per concurrency level")
    c.add_argument("--levels", default="1,2,4")
    c.add_argument("--ctx-per-slot", type=int, default=1536)
    c.add_argument("--llm-base-url", help="an OpenAI-compatible server (default: the embedded one)")
    c.add_argument("--llm-model")
    for sp in (s, f, t, lg, c):
        add_report_args(sp, "llm_copy")
    return ap


COMMANDS = {"prepare": prepare, "measure": measure, "score": score, "first-answers": first_answers,
            "threads": threads, "languages": languages, "concurrency": concurrency}

if __name__ == "__main__":
    arguments = parser().parse_args()
    COMMANDS[arguments.cmd](arguments)

"""`catalog-intel` command line."""

from __future__ import annotations

import argparse
import logging
import os
import sys

# Offline by default: no telemetry from Prefect; set before Prefect is imported.
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "60")


def _add_run_parser(sub) -> None:
    run = sub.add_parser("run", help="enrich a folder or manifest of product images")
    run.add_argument("source", help="folder of images (recursive) or CSV/Parquet manifest with an image path column; "
                     "a local path or a URL (s3://, gs://, az://, file://)")
    run.add_argument("--out", required=True, help="output folder or URL (catalog.csv, catalog.parquet, rejects.csv, "
                     "data_docs/)")
    run.add_argument("--config", help="TOML configuration file (defaults: catalog_intel/defaults.toml)")
    from catalog_intel.settings import add_override_flags

    add_override_flags(run)  # one flag per declared run override (catalog_intel/settings.py)
    run.add_argument("--offline", action="store_true",
                     help="never download: missing CLIP weights stop the run (also HF_HUB_OFFLINE=1)")


def _add_models_parser(sub) -> None:
    models = sub.add_parser("models", help="fetch or list cached models")
    msub = models.add_subparsers(dest="models_command", required=True)
    for name, text in (("pull", "download the configured CLIP weights into the cache (needs network)"),
                       ("list", "show cached models with sizes and hashes")):
        p = msub.add_parser(name, help=text)
        p.add_argument("--config")
        p.add_argument("--clip-model")
        p.add_argument("--clip-pretrained")
        p.add_argument("--cache-dir")


def _add_evaluate_parser(sub) -> None:
    ev = sub.add_parser("evaluate", help="score predicted attributes against a labelled image set")
    ev.add_argument("--pred", required=True, help="OUT_DIR/catalog.parquet (or catalog.csv: no garment_type, no confidences)")
    ev.add_argument("--labels", required=True, help="labels.csv with a file column, e.g. ../shared/data/hm-tops/labels.csv")
    ev.add_argument("--json", help="also write the full result (confusion matrices, calibration curve) here")
    ev.add_argument("--config", help="TOML configuration file: its vocabulary and current thresholds are used")
    ev.add_argument("--calibrate", action="store_true",
                    help="propose per-attribute min_confidence values (needs catalog.parquet)")
    ev.add_argument("--target-precision", type=float, default=0.9,
                    help="accuracy on covered (non-abstained) rows to reach when calibrating (default 0.9)")
    ev.add_argument("--min-covered", type=int, default=20,
                    help="ignore thresholds that leave fewer covered rows than this (default 20)")
    ev.add_argument("--step", type=float, default=0.01, help="threshold grid step (default 0.01)")
    ev.add_argument("--heads", help="the heads folder the run used: their classes are the vocabulary")


def _add_train_heads_parser(sub) -> None:
    th = sub.add_parser("train-heads", help="train attribute classifiers on your own labelled products",
                        description="Train one classifier per labelled attribute on the CLIP embeddings (colour "
                                    "also on the garment's pixel colours), with calibrated probabilities. Prints "
                                    "cross-validated (and --holdout) accuracy and macro-F1 beside the majority class.")
    th.add_argument("--labels", required=True, help="labels CSV: a 'file' column (relative to --images-root) and one "
                    "column per attribute, blank = unknown; e.g. ../shared/data/hm-tops/labels.csv")
    th.add_argument("--out", required=True, help="heads folder to write (<attribute>.json + .npz, train_report.json)")
    th.add_argument("--images-root", help="folder the 'file' paths are relative to (default: the labels file's folder)")
    th.add_argument("--attributes", help="comma-separated attributes to train (default: every label column)")
    th.add_argument("--holdout", type=float, default=0.0,
                    help="share of rows kept out of training and scored (written to OUT/holdout.csv); default 0")
    th.add_argument("--group-column", help="labels column naming the product: its variants stay on one side of "
                    "the holdout and of the cross-validation folds")
    th.add_argument("--seed", type=int, default=0, help="seed of the holdout split and the folds (default 0)")
    th.add_argument("--no-pixel-color", action="store_true", help="colour head on the CLIP embedding only")
    th.add_argument("--json", help="also write the report here")
    for flag, text in (("--config", "TOML configuration file"), ("--clip-model", "open_clip architecture"),
                       ("--clip-pretrained", "open_clip pretrained tag"),
                       ("--clip-checkpoint", "local open_clip weights file"),
                       ("--cache-dir", "cache folder (embeddings are shared with `run`)")):
        th.add_argument(flag, help=f"{text}, as for `run`")


def _add_copy_quality_parser(sub) -> None:
    cq = sub.add_parser("copy-quality", help="schema validity, contradictions, title length and SEO tags of the copy")
    cq.add_argument("output", help="catalog.parquet, catalog.csv, or the original tool's reference_output.csv")
    cq.add_argument("--reference", help="a second output to print side by side, e.g. "
                    "../shared/data/seed-samples/reference_output.csv")
    cq.add_argument("--json", help="also write the full result (every flagged row with its reasons) here")
    cq.add_argument("--config", help="TOML configuration file: vocabulary and validation limits")
    cq.add_argument("--list-sep", default="auto",
                    help="how CSV list cells are split: 'auto' (';' if present, else ',') or an exact separator")


def _add_search_parsers(sub) -> None:
    for name, query_help, k, text in (
        ("similar", "an image file, or an image id / sha256 from OUT/catalog.parquet", 5,
         "catalog images most similar to an image (the image itself first, if it is in the catalog)"),
        ("search", "text, e.g. \"red floral blouse\"", 10, "catalog images matching a text description"),
    ):
        p = sub.add_parser(name, help=text, description=f"{text}. Prints one result per line, best first: "
                                                        "image, a tab, cosine similarity.")
        p.add_argument("query", help=query_help)
        p.add_argument("-k", type=int, default=k, help=f"number of results (default {k})")
        p.add_argument("--out", required=True, help="output folder of a run (catalog.parquet, search/, run_config.json)")
        p.add_argument("--config", help="TOML configuration file; its [clip] keys override what the run recorded")
        p.add_argument("--clip-checkpoint", help="local open_clip weights file (default: the one the run used)")
        p.add_argument("--cache-dir", help="cache folder holding pulled CLIP weights (default: the run's)")


def _add_demo_parser(sub) -> None:
    demo = sub.add_parser("demo", help="make the synthetic demo catalog, run it, print the review report's path")
    demo.add_argument("--out", default="catalog-intel-demo",
                      help="folder for the demo images (OUT/images) and the run's outputs (default ./catalog-intel-demo)")
    demo.add_argument("--count", type=int, default=12, help="demo products to draw (default 12)")
    demo.add_argument("--config", help="TOML configuration file")
    demo.add_argument("--clip-checkpoint", help="local open_clip weights file")
    demo.add_argument("--cache-dir", help="cache folder (default ~/.cache/catalog-intel)")
    demo.add_argument("--no-llm", action="store_true", help="attributes only, no copy (seconds instead of minutes)")
    demo.add_argument("--offline", action="store_true", help="never download (also HF_HUB_OFFLINE=1)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="catalog-intel", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    _add_run_parser(sub)
    _add_models_parser(sub)
    _add_evaluate_parser(sub)
    _add_train_heads_parser(sub)
    _add_copy_quality_parser(sub)
    _add_search_parsers(sub)
    _add_cache_parser(sub)
    _add_demo_parser(sub)
    return parser


def _add_cache_parser(sub) -> None:
    cache = sub.add_parser("cache", help="maintain a (shared) cache folder")
    csub = cache.add_subparsers(dest="cache_command", required=True)
    p = csub.add_parser("compact", help="merge small cache parts and delete parts superseded long enough ago; "
                        "safe while runs use the cache")
    p.add_argument("--config")
    p.add_argument("--cache-dir", help="cache folder or URL (default: the config's paths.cache_dir)")
    p.add_argument("--purge-after", type=float, help="delete superseded parts only after this many seconds "
                   "(default: paths.purge_after_s; keep it above the longest single lookup)")


def _settings(config_path, **overrides):
    """The command's settings (settings.resolve_settings), with their storage options in effect in this process."""
    from catalog_intel.io.filesystem import configure
    from catalog_intel.settings import resolve_settings

    settings = resolve_settings(config_path, **overrides)
    configure(settings.paths.storage_options)
    return settings


def _cache(args) -> int:
    from catalog_intel.io.parquet_store import compact_cache

    config = _settings(args.config, cache_dir=args.cache_dir)
    purge = config.paths.purge_after_s if args.purge_after is None else args.purge_after
    for folder, (superseded, purged, live) in compact_cache(config.paths.cache_path, purge).items():
        print(f"{folder}: {superseded} parts merged, {purged} superseded parts deleted, {live} live parts")
    return 0


def _run(args) -> int:
    from catalog_intel.copywriting.llm_service import prepare_embedded, uses_embedded
    from catalog_intel.orchestration.preflight import preflight
    from catalog_intel.orchestration.prefect_api import start_api, using_api
    from catalog_intel.settings import overrides_from_args

    overrides = overrides_from_args(args)
    config = _settings(args.config, **overrides)
    # fetch the weights or fail before starting Prefect; the flow finds this result (its runner note is logged there)
    preflight(config, args.out, download=True, offline=args.offline, warn=lambda note: None)
    if uses_embedded(config):
        prepare_embedded(config)
    server = start_api()  # Prefect's temporary server comes up in its own process meanwhile
    if server is not None:
        print(f"Prefect: temporary server on {server.api_url} (set PREFECT_API_URL to report to a running one)",
              file=sys.stderr)
    if _first_local_run(config, args.out):  # CLIP and its label texts load while Prefect's server starts
        from catalog_intel.inference.zeroshot import preload

        _import_after("great_expectations", preload(config))  # for the validation at the end
    from catalog_intel.orchestration.flow import catalog_flow

    with using_api(server):
        result = catalog_flow(source=args.source, out_dir=args.out, config_path=args.config, **overrides)
    from catalog_intel.pipeline.summary import RunSummary

    summary = RunSummary(**result)
    print(summary.one_line())
    print(f"outputs: {', '.join(summary.outputs.values())}; data docs: {summary.validation.get('data_docs')}")
    print(f"review report: {summary.outputs.get('report')}")
    return 0


def _import_after(module: str, thread) -> None:
    """Import `module` in the background once `thread` is done: a 3 s import (Great Expectations)
    then overlaps the model's forward, which releases the GIL, instead of adding to the start-up
    imports, which hold it. A failed import is left to the code that needs the module."""
    import importlib
    import threading

    def load() -> None:
        thread.join()
        try:
            importlib.import_module(module)
        except Exception:  # noqa: BLE001 - the code that needs the module raises it again
            logging.getLogger(__name__).debug("background import of %s failed", module, exc_info=True)

    threading.Thread(target=load, name=f"import-{module}", daemon=True).start()


def _first_local_run(config, out: str) -> bool:
    """Load CLIP while Prefect's server starts? Only where it pays: shards run in this
    process, and nothing was published into OUT yet, so the images need the model. A
    re-run into an earlier output mostly finds its images cached, and a fully cached run
    never imports torch at all."""
    from catalog_intel.io.layout import OutputLayout
    from catalog_intel.io.filesystem import isfile, location

    return config.runner.task_runner == "local" and not isfile(OutputLayout(out).commit_file)


def _demo(args) -> int:
    from pathlib import Path

    from catalog_intel.errors import WeightsNotCached
    from catalog_intel.inference.clip_model import ensure_weights
    from catalog_intel.io.synthetic import write_demo_catalog

    config = _settings(args.config, clip_checkpoint=args.clip_checkpoint, no_llm=args.no_llm,
                            cache_dir=args.cache_dir)
    try:
        ensure_weights(config.clip, config.paths.cache_path, args.offline)
    except WeightsNotCached as exc:
        raise WeightsNotCached(f"the demo needs CLIP weights. {exc} To try the pipeline without them (meaningless "
                               "attributes): python scripts/make_random_checkpoint.py /tmp/random.pt, then "
                               "catalog-intel demo --clip-checkpoint /tmp/random.pt.") from None
    out = Path(args.out)
    images = write_demo_catalog(out / "images", args.count)
    print(f"demo catalog: {len(images)} synthetic packshots in {out / 'images'}")
    run_args = build_parser().parse_args(
        ["run", str(out / "images"), "--out", str(out)]
        + [f for flag, value in (("--config", args.config), ("--clip-checkpoint", args.clip_checkpoint),
                                 ("--cache-dir", args.cache_dir)) if value for f in (flag, value)]
        + ["--no-llm"] * args.no_llm + ["--offline"] * args.offline)
    code = _run(run_args)
    print(f"\ndemo done. Open the review report: {(out / 'report' / 'index.html').resolve().as_uri()}")
    return code


def _train_heads(args) -> int:
    from catalog_intel.inference.clip_model import model_id
    from catalog_intel.training.heads import format_train_report, train_heads

    config = _settings(args.config, clip_model=args.clip_model, clip_pretrained=args.clip_pretrained,
                            clip_checkpoint=args.clip_checkpoint, cache_dir=args.cache_dir)
    only = [a.strip() for a in args.attributes.split(",") if a.strip()] if args.attributes else None
    report = train_heads(args.labels, args.out, config, model_id(config.clip, config.paths.cache_path),
                         args.images_root, only, args.holdout, args.seed, args.group_column,
                         pixel_color=not args.no_pixel_color)
    print(format_train_report(report))
    print(f"heads written to {args.out}; use them with `catalog-intel run ... --heads {args.out}`")
    if args.json:
        _write_json(args.json, report)
    return 0


def _models(args) -> int:
    from catalog_intel.pipeline.model_cache import list_models, pull_models

    config = _settings(args.config, clip_model=args.clip_model, clip_pretrained=args.clip_pretrained,
                            cache_dir=args.cache_dir)
    if args.models_command == "pull":
        for line in pull_models(config):
            print(line)
    else:
        rows = list_models(config)
        if not rows:
            print(f"no models cached under {config.paths.cache_path / 'models'}")
        for row in rows:
            print(f"{row['kind']:5} {row['size_mb']:9.1f} MB  sha256:{row['sha256'][:16]}  {row['path']}")
    return 0


def _write_json(path: str, data: dict) -> None:
    import json

    from catalog_intel.io.filesystem import atomic_write_text

    atomic_write_text(path, json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    print(f"\nwrote {path}")


def _evaluate(args) -> int:
    from catalog_intel.quality import evaluate as ev
    from catalog_intel.inference.heads import published_attributes

    attributes = published_attributes(_settings(args.config, heads=args.heads))
    pred, labels = ev.load_predictions(args.pred), ev.load_labels(args.labels)
    result = ev.evaluate(pred, labels, attributes, pred_name=args.pred, labels_name=args.labels)
    print(ev.format_report(result))
    if args.calibrate:
        cal = ev.calibrate(pred, labels, attributes, args.target_precision, step=args.step,
                           min_covered=args.min_covered, pred_name=args.pred, labels_name=args.labels)
        result["calibration"] = cal
        result["calibration"]["toml"] = ev.calibration_toml(cal, args.labels)
        print()
        print(ev.format_calibration(cal))
        print()
        print(result["calibration"]["toml"], end="")
    if args.json:
        _write_json(args.json, result)
    return 0


def _copy_quality(args) -> int:
    from catalog_intel.quality.copy_quality import assess_file, format_report

    config = _settings(args.config)
    results = [assess_file(args.output, config, args.list_sep)]
    if args.reference:
        results.append(assess_file(args.reference, config, "auto"))
    print(format_report(results))
    if args.json:
        _write_json(args.json, {"output": results[0], "reference": results[1] if args.reference else None})
    return 0


def _search(args) -> int:
    from catalog_intel.inference.clip_model import load_clip
    from catalog_intel.search.index import read_run_config, similar_to, text_search
    from catalog_intel.io.filesystem import location

    if args.k < 1:
        raise SystemExit("catalog-intel: error: -k must be at least 1")
    out = location(args.out)
    config = _settings(args.config, base=read_run_config(out), clip_checkpoint=args.clip_checkpoint,
                       cache_dir=args.cache_dir)

    def load_model():  # only when the query needs embedding
        return load_clip(config.clip, config.paths.cache_path)

    if args.command == "similar":
        results = similar_to(out, args.query, args.k, load_model, config.run.max_image_pixels,
                             config.search.hnsw_ef_search)
    else:
        results = text_search(out, args.query, args.k, load_model, config.search.hnsw_ef_search)
    for image, score in results.iter_rows():
        print(f"{image}\t{score:.4f}")
    return 0


def main(argv: list[str] | None = None) -> int:
    from catalog_intel.errors import ModelUnavailableError
    from catalog_intel.errors import EmbeddedServerError
    from catalog_intel.errors import ConfigError
    from catalog_intel.errors import CopyQualityError
    from catalog_intel.errors import EvaluationError
    from catalog_intel.errors import HeadError
    from catalog_intel.errors import SourceError
    from catalog_intel.errors import OutputLocked
    from catalog_intel.errors import SearchError
    from catalog_intel.errors import ServerStartError
    from catalog_intel.errors import RunFailed

    args = build_parser().parse_args(argv)
    try:
        return {"run": _run, "models": _models, "evaluate": _evaluate, "copy-quality": _copy_quality,
                "similar": _search, "search": _search, "cache": _cache, "demo": _demo,
                "train-heads": _train_heads}[args.command](args)
    except (ModelUnavailableError, EmbeddedServerError, ConfigError, SourceError, OutputLocked, EvaluationError,
            CopyQualityError, SearchError, HeadError, ServerStartError) as exc:
        print(f"catalog-intel: error: {exc}", file=sys.stderr)
        return 2
    except RunFailed as exc:
        print(f"catalog-intel: run failed: {exc}", file=sys.stderr)
        return 1


def entry() -> None:
    """The `catalog-intel` console script: `main`, then the exit steps an interpreter takes
    (threads' exit hooks, where Prefect drains its log and event queues; atexit handlers,
    where it stops its temporary server; flushed streams), without its teardown. Unloading
    torch, open_clip and Great Expectations module by module took 2-5 s after every run."""
    import atexit
    import threading

    code = main()
    threading._shutdown()  # noqa: SLF001  # what the interpreter calls first at exit
    atexit._run_exitfuncs()  # noqa: SLF001
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    entry()

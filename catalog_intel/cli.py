"""`catalog-intel` command line."""

from __future__ import annotations

import argparse
import os
import sys

# Offline by default: no telemetry from Prefect; set before Prefect is imported.
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "60")


def _add_run_parser(sub) -> None:
    run = sub.add_parser("run", help="enrich a folder or manifest of product images")
    run.add_argument("source", help="folder of images (recursive) or CSV/Parquet manifest with an image path column")
    run.add_argument("--out", required=True, help="output folder (catalog.csv, catalog.parquet, rejects.csv, data_docs/)")
    run.add_argument("--config", help="TOML configuration file (defaults: catalog_intel/defaults.toml)")
    run.add_argument("--clip-model", help="open_clip architecture, e.g. ViT-B-32")
    run.add_argument("--clip-pretrained", help="open_clip pretrained tag, e.g. laion2b_s34b_b79k")
    run.add_argument("--clip-checkpoint", help="local open_clip weights file (replaces the pretrained tag)")
    run.add_argument("--llm-base-url", help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:1234/v1 "
                     "(default: an embedded llama.cpp server started for the run)")
    run.add_argument("--llm-model", help="model name to request from the endpoint")
    run.add_argument("--no-llm", action="store_true", help="attributes only; copy columns stay empty")
    run.add_argument("--cache-dir", help="cache folder for embeddings and copy (default ~/.cache/catalog-intel)")
    run.add_argument("--shard-size", type=int, help="images per pipeline shard")
    run.add_argument("--color-policy", choices=["clip", "pixels", "ensemble"],
                     help="colour from CLIP, from the garment's pixels, or both (default: config color.policy)")
    run.add_argument("--heads", help="folder of attribute heads from `catalog-intel train-heads`: used where one "
                     "exists, zero-shot elsewhere (config: attributes.<name>.head)")


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="catalog-intel", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    _add_run_parser(sub)
    _add_models_parser(sub)
    _add_evaluate_parser(sub)
    _add_train_heads_parser(sub)
    _add_copy_quality_parser(sub)
    _add_search_parsers(sub)
    return parser


def _start_prefect_server_early():
    """Without PREFECT_API_URL, Prefect starts a temporary server (a subprocess
    that takes seconds to come up) when the flow begins, and waits for it. Start
    it now in a thread instead, so it comes up while this process imports the
    pipeline; the flow then finds it running (Prefect keeps one per process).
    Any failure here is ignored: Prefect then starts it itself, as before."""
    import threading

    def start() -> None:
        try:
            from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_ENABLED

            if PREFECT_API_URL.value() or not PREFECT_SERVER_EPHEMERAL_ENABLED.value():
                return
            from prefect.server.api.server import SubprocessASGIServer

            SubprocessASGIServer().start()
        except Exception:  # noqa: BLE001
            pass

    thread = threading.Thread(target=start, name="prefect-server-start", daemon=True)
    thread.start()
    return thread


def _run(args) -> int:
    from catalog_intel.clip_model import resolve_weights
    from catalog_intel.config import resolve_config
    from catalog_intel.llm_service import prepare_embedded, uses_embedded

    config = resolve_config(args.config, args.clip_model, args.clip_pretrained, args.clip_checkpoint,
                            args.llm_base_url, args.llm_model, args.no_llm, args.cache_dir, args.shard_size,
                            args.color_policy, args.heads)
    resolve_weights(config.clip, config.paths.cache_path)  # fail before starting Prefect
    _check_heads(config)
    if uses_embedded(config):
        prepare_embedded(config)
    server = _start_prefect_server_early()
    from flows.catalog import catalog_flow

    import great_expectations  # noqa: F401  # every run validates; import it while the server starts

    server.join()
    result = catalog_flow(
        source=args.source, out_dir=args.out, config_path=args.config, clip_model=args.clip_model,
        clip_pretrained=args.clip_pretrained, clip_checkpoint=args.clip_checkpoint,
        llm_base_url=args.llm_base_url, llm_model=args.llm_model, no_llm=args.no_llm,
        cache_dir=args.cache_dir, shard_size=args.shard_size, color_policy=args.color_policy, heads=args.heads,
    )
    from catalog_intel.summary import RunSummary

    summary = RunSummary(**result)
    print(summary.one_line())
    print(f"outputs: {', '.join(summary.outputs.values())}; data docs: {summary.validation.get('data_docs')}")
    print(f"review report: {summary.outputs.get('report')}")
    return 0


def _check_heads(config) -> None:
    """Refuse heads trained on another CLIP model before any work."""
    from catalog_intel.clip_model import model_id
    from catalog_intel.heads import configured_heads

    if any(spec.head for spec in config.attributes.values()):
        configured_heads(config.attributes, model_id(config.clip, config.paths.cache_path))


def _train_heads(args) -> int:
    from catalog_intel.clip_model import model_id
    from catalog_intel.config import resolve_config
    from catalog_intel.heads import format_train_report, train_heads

    config = resolve_config(args.config, args.clip_model, args.clip_pretrained, args.clip_checkpoint,
                            cache_dir=args.cache_dir)
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
    from catalog_intel.models import list_models, pull_models
    from catalog_intel.config import resolve_config

    config = resolve_config(args.config, args.clip_model, args.clip_pretrained, cache_dir=args.cache_dir)
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

    from catalog_intel.storage import atomic_write_text

    atomic_write_text(path, json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    print(f"\nwrote {path}")


def _evaluate(args) -> int:
    from catalog_intel import evaluate as ev
    from catalog_intel.config import resolve_config
    from catalog_intel.heads import published_attributes

    attributes = published_attributes(resolve_config(args.config, heads=args.heads))
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
    from catalog_intel.config import load_config
    from catalog_intel.copy_quality import assess_file, format_report

    config = load_config(args.config)
    results = [assess_file(args.output, config, args.list_sep)]
    if args.reference:
        results.append(assess_file(args.reference, config, "auto"))
    print(format_report(results))
    if args.json:
        _write_json(args.json, {"output": results[0], "reference": results[1] if args.reference else None})
    return 0


def _search(args) -> int:
    from pathlib import Path

    from catalog_intel.clip_model import load_clip
    from catalog_intel.config import load_config
    from catalog_intel.search import read_run_config, similar_to, text_search

    if args.k < 1:
        raise SystemExit("catalog-intel: error: -k must be at least 1")
    out = Path(args.out)
    config = load_config(args.config, {"clip.checkpoint": args.clip_checkpoint, "paths.cache_dir": args.cache_dir},
                         base=read_run_config(out))

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
    from catalog_intel.clip_model import ModelUnavailableError
    from catalog_intel.local_llm import EmbeddedServerError
    from catalog_intel.config import ConfigError
    from catalog_intel.copy_quality import CopyQualityError
    from catalog_intel.evaluate import EvaluationError
    from catalog_intel.heads import HeadError
    from catalog_intel.ingest import SourceError
    from catalog_intel.runlock import OutputLocked
    from catalog_intel.search import SearchError
    from catalog_intel.summary import RunFailed

    args = build_parser().parse_args(argv)
    try:
        return {"run": _run, "models": _models, "evaluate": _evaluate, "copy-quality": _copy_quality,
                "similar": _search, "search": _search, "train-heads": _train_heads}[args.command](args)
    except (ModelUnavailableError, EmbeddedServerError, ConfigError, SourceError, OutputLocked, EvaluationError,
            CopyQualityError, SearchError, HeadError) as exc:
        print(f"catalog-intel: error: {exc}", file=sys.stderr)
        return 2
    except RunFailed as exc:
        print(f"catalog-intel: run failed: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

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
    run.add_argument("--llm-base-url", help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:1234/v1")
    run.add_argument("--llm-model", help="model name to request from the endpoint")
    run.add_argument("--no-llm", action="store_true", help="attributes only; copy columns stay empty")
    run.add_argument("--cache-dir", help="cache folder for embeddings and copy (default ~/.cache/catalog-intel)")
    run.add_argument("--shard-size", type=int, help="images per pipeline shard")


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="catalog-intel", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    _add_run_parser(sub)
    _add_models_parser(sub)
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

    config = resolve_config(args.config, args.clip_model, args.clip_pretrained, args.clip_checkpoint,
                            args.llm_base_url, args.llm_model, args.no_llm, args.cache_dir, args.shard_size)
    resolve_weights(config.clip, config.paths.cache_path)  # fail before starting Prefect
    server = _start_prefect_server_early()
    from flows.catalog import catalog_flow

    import great_expectations  # noqa: F401  # every run validates; import it while the server starts

    server.join()
    result = catalog_flow(
        source=args.source, out_dir=args.out, config_path=args.config, clip_model=args.clip_model,
        clip_pretrained=args.clip_pretrained, clip_checkpoint=args.clip_checkpoint,
        llm_base_url=args.llm_base_url, llm_model=args.llm_model, no_llm=args.no_llm,
        cache_dir=args.cache_dir, shard_size=args.shard_size,
    )
    from catalog_intel.summary import RunSummary

    summary = RunSummary(**result)
    print(summary.one_line())
    print(f"outputs: {', '.join(summary.outputs.values())}; data docs: {summary.validation.get('data_docs')}")
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


def main(argv: list[str] | None = None) -> int:
    from catalog_intel.clip_model import ModelUnavailableError
    from catalog_intel.config import ConfigError
    from catalog_intel.ingest import SourceError
    from catalog_intel.runlock import OutputLocked
    from catalog_intel.summary import RunFailed

    args = build_parser().parse_args(argv)
    try:
        return {"run": _run, "models": _models}[args.command](args)
    except (ModelUnavailableError, ConfigError, SourceError, OutputLocked) as exc:
        print(f"catalog-intel: error: {exc}", file=sys.stderr)
        return 2
    except RunFailed as exc:
        print(f"catalog-intel: run failed: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

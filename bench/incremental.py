"""Nightly-run bench: does a re-run cost the new work, or grow with the catalog?

Builds a catalog of N small synthetic JPEGs (bench/catalog.py::small_catalog), runs it once with the tests' tiny random
open_clip model (attributes only), adds M new images and runs again; then a cold run over just the M new images (fresh
cache and output). Every run is `catalog-intel run` through the harness, reporting to one Prefect server that is already
up, so no run pays a server start. Reports each run's wall time, flow time and phases (from its summary line), and the
listing timed alone, so the phases that grow with the catalog (listing, hash lookup, validation, search, export,
report) show.

    python bench/incremental.py --images 100000 --new 1000 [--work /tmp/incr] [--json bench/results/incremental.json]
    python bench/incremental.py --work /tmp/incr --resume --new 1000   # another night on that catalog

Target (issue #11): the re-run takes at most 3x the cold run over the new images (`ratio`: flow times;
`command_ratio`: whole commands, imports included)."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.catalog import small_catalog  # noqa: E402
from bench.harness import add_report_args, log, prefect_server, report, run_pipeline, tiny_clip  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--new", type=int, default=1_000)
    parser.add_argument("--work", type=Path, default=Path("/tmp/catalog-intel-incremental"))
    parser.add_argument("--resume", action="store_true",
                        help="reuse WORK's catalog and first run (from an earlier bench): add --new images and re-run")
    add_report_args(parser, "incremental")
    args = parser.parse_args()
    from catalog_intel.io.filesystem import walk_files

    work = args.work
    catalog, out, cache, model = work / "catalog", work / "out", work / "cache", work / "settings.json"
    resume = args.resume and (out / "_SUCCESS.json").is_file() and model.is_file()
    if not resume:  # resumed: the same model, not a new file
        clip = tiny_clip(work / "tiny-clip")
        model.write_text(json.dumps({**clip, "clip.batch_size": 256, "clip.decode_workers": 1,
                                     "run.shard_size": 8192, "color.policy": "clip"}))
    settings = json.loads(model.read_text())
    figures: dict = {"new": args.new, "resumed": resume}
    with prefect_server() as api_url:
        env = {"PREFECT_API_URL": api_url}
        if resume:
            args.images = len(walk_files(str(catalog))[0])
            log(f"resuming: {args.images} images already run in {out}")
        else:
            started = time.monotonic()
            small_catalog(catalog, 0, args.images)
            log(f"catalog of {args.images} images ready in {time.monotonic() - started:.0f} s")
            figures["first"] = run_pipeline(catalog, out, cache=cache, settings=settings, env=env,
                                            label="first run").figures()
        figures["images"] = args.images
        small_catalog(catalog, args.images, args.new)
        started = time.monotonic()
        files, _ = walk_files(str(catalog))
        figures["listing_s"] = round(time.monotonic() - started, 2)
        time.sleep(2.1)  # past the hash cache's racy window for the new files
        rerun = run_pipeline(catalog, out, cache=cache, settings=settings, env=env, label="re-run")
        figures["rerun"] = rerun.figures()

        new_only = work / "new-only"
        for stale in (new_only, work / "out-new", work / "cache-new"):  # the cold run starts from nothing
            shutil.rmtree(stale, ignore_errors=True)
        for path, _ in files:
            if int(Path(path).stem.split("-")[1]) >= args.images:
                target = new_only / Path(path).relative_to(catalog)
                target.parent.mkdir(parents=True, exist_ok=True)
                os.link(path, target)
        cold = run_pipeline(new_only, work / "out-new", cache=work / "cache-new", settings=settings, env=env,
                            label="cold run over the new images")
        figures["cold_new"] = cold.figures()
    figures["ratio"] = round(rerun.summary["seconds"] / cold.summary["seconds"], 2)
    figures["command_ratio"] = round(rerun.wall_s / cold.wall_s, 2)
    log(f"re-run / cold new-only: flow {figures['ratio']}x, command {figures['command_ratio']}x (target <= 3); "
        f"listing alone {figures['listing_s']} s")
    report("incremental", figures, args.json)


if __name__ == "__main__":
    main()

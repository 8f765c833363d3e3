"""Nightly-run bench: does a re-run cost the new work, or grow with the catalog?

Builds a catalog of N small synthetic JPEGs (byte-distinct copies of a few drawn
ones), runs it once with a tiny random open_clip model (attributes only), adds M
new images and runs again; then a cold run over just the M new images (fresh cache
and output). Reports the per-task times of the re-run and of the cold run, read
back from Prefect, plus listing and hashing timed alone, so the phases that grow
with the catalog (listing, hash lookup, validation, search, export, report) show.

    python bench/incremental.py --images 100000 --new 1000 [--work /tmp/incr] [--json out.json]
    python bench/incremental.py --work /tmp/incr --resume --new 1000   # another night on that catalog
Target (issue #11): the re-run takes at most 3x the cold run over the new images."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


def make_images(folder: Path, start: int, count: int) -> None:
    import io


    from catalog_intel.io.synthetic import COLORS, SLEEVES, draw_top, jpeg_with_comment

    folder.mkdir(parents=True, exist_ok=True)
    seeds = []
    for i, color in enumerate(list(COLORS)[:8]):
        buf = io.BytesIO()
        draw_top(color, "solid", SLEEVES[i % len(SLEEVES)], (64, 80), seed=i).save(buf, "JPEG", quality=85)
        seeds.append(buf.getvalue())
    for i in range(start, start + count):
        path = folder / f"{i // 1000:03d}" / f"sku-{i:06d}.jpg"
        path.parent.mkdir(exist_ok=True)
        if not path.exists():
            path.write_bytes(jpeg_with_comment(seeds[i % len(seeds)], f"sku {i}".encode()))


def warm_up():
    """Imports and Prefect's server, before any timed run: the runs share this process, so the
    first one would pay them and the cold run after it not (without --resume, the untimed
    first run did this). `catalog-intel run` does most of it while the server starts.
    Returns the temporary server the runs report to (None where PREFECT_API_URL is set)."""
    import great_expectations  # noqa: F401
    import open_clip  # noqa: F401

    import flows.catalog  # noqa: F401
    from catalog_intel.orchestration.prefect_api import start_api

    server = start_api()
    if server is not None:
        server.wait_ready()
    return server


def run(source: Path, out: Path, cache: Path, config: Path) -> tuple[float, dict, dict]:
    from catalog_intel.orchestration.phases import phase_times
    from catalog_intel.orchestration.flow import catalog_flow

    started = time.monotonic()
    state = catalog_flow(source=str(source), out_dir=str(out), config_path=str(config), cache_dir=str(cache),
                         no_llm=True, return_state=True)
    wall = time.monotonic() - started
    summary = state.result()
    phases = phase_times(state.state_details.flow_run_id)
    return wall, phases, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--new", type=int, default=1_000)
    parser.add_argument("--work", default="/tmp/catalog-intel-incremental")
    parser.add_argument("--json")
    parser.add_argument("--resume", action="store_true",
                        help="reuse WORK's catalog and first run (from an earlier bench): add --new images and re-run")
    args = parser.parse_args()
    from conftest import make_tiny_clip

    from catalog_intel.io.filesystem import walk_files
    from catalog_intel.orchestration.prefect_api import using_api

    work = Path(args.work)
    config = work / "config.toml"
    resume = args.resume and (work / "out" / "_SUCCESS.json").is_file() and config.is_file()
    clip = {} if resume else make_tiny_clip(work / "tiny-clip")  # resumed: the same model, not a new file
    if not resume:
        config.write_text("[clip]\n" + "".join(f'{k.split(".")[1]} = {json.dumps(v)}\n' for k, v in clip.items()
                                               if k not in ("clip.decode_workers", "clip.batch_size"))
                          + "batch_size = 256\ndecode_workers = 1\n[run]\nshard_size = 8192\n[color]\npolicy = \"clip\"\n")
    catalog, out, cache = work / "catalog", work / "out", work / "cache"
    with using_api(warm_up()):  # the runs report to one temporary Prefect server
        if resume:
            args.images = len(walk_files(str(catalog))[0])
            result = {"images": args.images, "new": args.new, "resumed": True}
            print(f"resuming: {args.images} images already run in {out}", flush=True)
        else:
            t = time.monotonic()
            make_images(catalog, 0, args.images)
            print(f"catalog of {args.images} images ready in {time.monotonic() - t:.0f} s", flush=True)
            result = {"images": args.images, "new": args.new}
            result["first_wall_s"], result["first_phases"], _ = run(catalog, out, cache, config)
            print("first run", round(result["first_wall_s"], 1), result["first_phases"], flush=True)

        make_images(catalog, args.images, args.new)
        t = time.monotonic()
        files, _ = walk_files(str(catalog))
        result["listing_s"] = time.monotonic() - t
        time.sleep(2.1)  # past the hash cache's racy window for the new files
        result["rerun_wall_s"], result["rerun_phases"], summary = run(catalog, out, cache, config)
        result["rerun_embeddings_computed"] = summary["embeddings_computed"]
        print("re-run", round(result["rerun_wall_s"], 1), result["rerun_phases"], flush=True)

        new_only = work / "new-only"
        for stale in (new_only, work / "out-new", work / "cache-new"):  # the cold run starts from nothing
            shutil.rmtree(stale, ignore_errors=True)
        for path, _ in files:
            if int(Path(path).stem.split("-")[1]) >= args.images:
                target = new_only / Path(path).relative_to(catalog)
                target.parent.mkdir(parents=True, exist_ok=True)
                if not target.exists():
                    os.link(path, target)
        result["cold_new_wall_s"], result["cold_new_phases"], _ = run(new_only, work / "out-new", work / "cache-new", config)
        print("cold run over the new images", round(result["cold_new_wall_s"], 1), result["cold_new_phases"], flush=True)
        result["ratio"] = result["rerun_wall_s"] / result["cold_new_wall_s"]
        print(f"re-run / cold new-only = {result['ratio']:.2f} (target <= 3); listing alone {result['listing_s']:.1f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()

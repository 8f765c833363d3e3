"""The benchmark's synthetic catalog, generated once and kept on disk.

Layout under ROOT (default ~/.cache/catalog-intel/bench-catalog/<W>x<H>-q<quality>-d<drawn>):

    drawn/part-KK/sku-NNNNN.jpg  packshots drawn by catalog_intel.io.synthetic (16 chunks, drawn in parallel)
    copies/c-NNNNNN.jpg          byte-distinct copies of drawn images (a JPEG COM segment with a
                                 serial number: same pixels, different sha256, so the pipeline
                                 treats each as a new product) to reach large counts cheaply
    manifest-N.csv               the first N images of the fixed catalog order (image_path column)

Drawing costs ~40 ms per 800x1000 image per core; a copy costs ~0.1 ms.
"""

from __future__ import annotations

import csv
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

DEFAULT_ROOT = Path(os.path.expanduser("~/.cache/catalog-intel/bench-catalog"))


CHUNKS = 16  # drawing work units (folders drawn/part-K); fixed so the layout does not depend on the machine


def catalog_root(base: Path, size: tuple[int, int], quality: int, drawn: int) -> Path:
    return base / f"{size[0]}x{size[1]}-q{quality}-d{drawn}"


def _draw_part(args) -> int:
    folder, count, size, quality, seed = args
    from catalog_intel.io.synthetic import write_catalog

    return len(write_catalog(Path(folder), count, size=size, quality=quality, seed=seed))


def _drawn_parts(root: Path, drawn: int) -> list[tuple[Path, int, int]]:
    """(folder, count, seed) per drawing chunk; fixed for a given `drawn`."""
    per = -(-drawn // CHUNKS)
    return [(root / "drawn" / f"part-{k:02d}", min(per, drawn - k * per), k + 1)
            for k in range(CHUNKS) if drawn - k * per > 0]


def ensure_catalog(base: Path, count: int, drawn: int, size=(800, 1000), quality: int = 88,
                   procs: int | None = None, log=print) -> tuple[Path, list[str]]:
    """Make sure ROOT holds `count` images: `drawn` drawn ones (all drawn once,
    whatever `count`), then copies; returns (root, relative paths in catalog order).
    Idempotent: a second call only checks files."""
    root = catalog_root(base, size, quality, drawn)
    root.mkdir(parents=True, exist_ok=True)
    parts = _drawn_parts(root, drawn)
    missing = [p for p in parts if len(list(p[0].glob("sku-*.jpg"))) < p[1]]
    if missing:
        started = time.monotonic()
        procs = procs or max(1, os.cpu_count() or 1)
        log(f"drawing {drawn} {size[0]}x{size[1]} packshots with {procs} processes into {root} (once) ...")
        with ProcessPoolExecutor(procs) as pool:
            list(pool.map(_draw_part, [(str(f), n, size, quality, seed) for f, n, seed in missing]))
        log(f"  drawn in {time.monotonic() - started:.0f} s")
    base_files = [f"drawn/{f.name}/sku-{i:05d}.jpg" for f, n, _ in parts for i in range(n)]
    order = list(base_files[:count])
    if count > len(base_files):
        from catalog_intel.io.synthetic import jpeg_with_comment

        copies = root / "copies"
        copies.mkdir(exist_ok=True)
        made, started = 0, time.monotonic()
        sources: dict[int, bytes] = {}
        for i in range(len(base_files), count):
            rel = f"copies/c-{i:06d}.jpg"
            order.append(rel)
            target = root / rel
            if target.exists():
                continue
            src = i % len(base_files)
            if src not in sources:
                sources[src] = (root / base_files[src]).read_bytes()
            tmp = target.with_suffix(".tmp")
            tmp.write_bytes(jpeg_with_comment(sources[src], f"catalog-intel bench copy {i}".encode()))
            os.replace(tmp, target)
            made += 1
        if made:
            log(f"  {made} byte-distinct copies made in {time.monotonic() - started:.1f} s")
    return root, order


def ensure_manifest(root: Path, order: list[str], n: int) -> Path:
    """manifest-N.csv: the first n images (relative paths; the manifest's folder is the root)."""
    path = root / f"manifest-{n}.csv"
    if not path.is_file():
        tmp = path.with_suffix(".tmp")
        with open(tmp, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["image_path"])
            writer.writerows([p] for p in order[:n])
        os.replace(tmp, path)
    return path


def mean_file_kb(root: Path, order: list[str], sample: int = 200) -> float:
    step = max(1, len(order) // sample)
    sizes = [(root / p).stat().st_size for p in order[::step]]
    return sum(sizes) / len(sizes) / 1024 if sizes else 0.0


def small_catalog(folder: Path, start: int, count: int) -> None:
    """Images START..START+COUNT of a catalog of small (64x80) byte-distinct copies of 8 drawn tops, in folders of
    1,000 (`NNN/sku-NNNNNN.jpg`); existing files are kept. A cheap catalog of any size for the re-run benches."""
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

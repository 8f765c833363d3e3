"""Write the demo catalog into data/demo/images (synthetic, made here; no licensed photos)."""

import argparse
from pathlib import Path

from catalog_intel.io.synthetic import write_demo_catalog

parser = argparse.ArgumentParser(description=__doc__)
parser.add_argument("--count", type=int, default=24)
parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "data" / "demo" / "images"))
args = parser.parse_args()
paths = write_demo_catalog(Path(args.out), args.count)
print(f"{len(paths)} demo images in {args.out}")

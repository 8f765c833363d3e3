"""The three figures of bench/gpu.sh, from its run 1 report: img/s of the bare forward and of the embed
stage, and CPU ms per image outside the model (with what the host's cores can feed).

    python bench/gpu_figures.py OUT_DIR/gpu.json
"""

from __future__ import annotations

import argparse
import json
import sys


def main(path: str) -> None:
    try:
        report = json.loads(open(path).read())
    except (OSError, ValueError) as e:
        sys.exit(f"bench/gpu_figures.py: cannot read the report {path}: {e}; run bench/gpu.sh first (it writes OUT_DIR/gpu.json)")
    rows = {r["stage"]: r for r in report.get("figures", {}).get("stages", [])}

    def row(prefix: str) -> dict:
        return next((r for stage, r in rows.items() if stage.startswith(prefix)), {})

    def rate(prefix: str) -> str:
        r = row(prefix)
        return f"{r['rate']:.1f} {r['unit']}" if r.get("rate") is not None else "-"

    print(f"== figures ({report.get('machine', {}).get('gpu') or 'no GPU'}, {report.get('machine', {}).get('cores')} "
          f"cores): bare forward {rate('model forward alone, random')} | embed stage {rate('embed')} | "
          f"CPU outside the model {rate('CPU outside the model')}")
    cpu = row("CPU outside the model")
    if cpu:
        print(f"   {cpu['note']}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("report", help="bench/gpu.sh's OUT_DIR/gpu.json")
    main(parser.parse_args().report)

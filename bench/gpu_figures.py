"""The three figures of bench/gpu.sh, from its run 1 report: img/s of the bare forward and of the embed
stage, and CPU ms per image outside the model (with what the host's cores can feed).

    python bench/gpu_figures.py OUT_DIR/gpu.json
"""

from __future__ import annotations

import json
import sys


def main(path: str) -> None:
    report = json.load(open(path))
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
    main(sys.argv[1])

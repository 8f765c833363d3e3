"""Score the pixel colour extractor against a labelled image set.

    python bench/eval_pixel_color.py --labels ../shared/data/hm-tops/labels.csv [--json OUT.json]

Every row with a non-blank ``color`` label is scored (no class is excluded: a label the
extractor cannot produce, e.g. ``multicolor``, counts as wrong).  Image paths in the
``file`` column are relative to the folder holding ``labels.csv``.

``--vocabulary labels`` (default) restricts answers to the colour names that occur in
the label column, i.e. the dataset's own label space (hm-tops has no ``navy``: H&M maps
Dark Blue -> blue, so the extractor's navy is reported as blue).  ``--vocabulary full``
allows every name in ``PALETTE``.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from catalog_intel.inference.image_feed import COLOR_INPUT_SIZE  # noqa: E402
from catalog_intel.inference.image_feed import FeedSpec, feed_image  # noqa: E402
from catalog_intel.inference.pixel_color import PALETTE, dominant_color_file  # noqa: E402
from bench.harness import add_report_args, report  # noqa: E402


def load_rows(labels: Path) -> list[dict[str, str]]:
    with labels.open(newline="", encoding="utf-8") as fh:
        return [r for r in csv.DictReader(fh) if (r.get("color") or "").strip()]


def run_path(path: str, vocabulary: list[str]) -> tuple[str, float]:
    """The colour a run gives: the decode that feeds the model (ViT-B-32's), then pixel-color-v3."""
    spec = FeedSpec(10**9, color_vocabulary=tuple(vocabulary))
    return feed_image(path, None, COLOR_INPUT_SIZE, COLOR_INPUT_SIZE, spec, model_pixels=False).color


PATHS = {"run": run_path,  # pixel-color-v3, as runs compute it
         "v1": lambda path, vocabulary: dominant_color_file(path, vocabulary=vocabulary)}  # k-means at 128 px


def evaluate(labels: Path, vocabulary: str = "labels", limit: int | None = None, path: str = "run") -> dict:
    rows = load_rows(labels)
    if limit:
        rows = rows[:limit]
    root = labels.parent
    label_names = sorted({r["color"].strip() for r in rows})
    vocab = [n for n in PALETTE if n in label_names] if vocabulary == "labels" else list(PALETTE)

    preds = []
    t0, c0 = time.perf_counter(), time.process_time()
    for r in rows:
        name, conf = PATHS[path](str(root / r["file"]), vocab)
        preds.append((r["file"], r["color"].strip(), name, conf))
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0

    n = len(preds)
    correct = sum(p == t for _, t, p, _ in preds)
    confusion = Counter((t, p) for _, t, p, _ in preds)
    per_colour = {}
    for name in label_names:
        support = sum(v for (t, _), v in confusion.items() if t == name)
        predicted = sum(v for (_, p), v in confusion.items() if p == name)
        hit = confusion[(name, name)]
        per_colour[name] = {
            "support": support,
            "correct": hit,
            "accuracy": hit / support if support else None,
            "predicted": predicted,
            "precision": hit / predicted if predicted else None,
            "mistaken_for": {p: v for (t, p), v in confusion.most_common() if t == name and p != name},
        }
    bins = [(0.0, 0.4), (0.4, 0.6), (0.6, 0.8), (0.8, 1.01)]
    calibration = []
    for lo, hi in bins:
        sel = [p == t for _, t, p, c in preds if lo <= c < hi]
        calibration.append({"conf_from": lo, "conf_to": min(hi, 1.0), "n": len(sel),
                            "accuracy": sum(sel) / len(sel) if sel else None})
    return {
        "labels": str(labels),
        "vocabulary": vocab,
        "n": n,
        "correct": correct,
        "accuracy": correct / n if n else None,
        "ms_per_image": 1000.0 * elapsed / n if n else None,  # wall clock, one process
        "cpu_ms_per_image": 1000.0 * cpu / n if n else None,  # CPU time (less noisy under load)
        "per_colour": per_colour,
        "top_confusions": [{"label": t, "predicted": p, "count": v}
                           for (t, p), v in confusion.most_common() if t != p][:20],
        "confusion": {t: {p: v for (tt, p), v in confusion.items() if tt == t} for t in label_names},
        "calibration": calibration,
        "rows": [{"file": f, "label": t, "predicted": p, "confidence": round(c, 4)} for f, t, p, c in preds],
    }


def print_report(res: dict) -> None:
    print(f"labels: {res['labels']}")
    print(f"vocabulary: {', '.join(res['vocabulary'])}")
    print(f"accuracy: {res['accuracy']:.4f} ({res['correct']}/{res['n']})   {res['ms_per_image']:.1f} ms/image wall, "
          f"{res['cpu_ms_per_image']:.1f} ms/image CPU")
    print()
    print(f"{'colour':10s} {'support':>7s} {'acc':>6s} {'prec':>6s}  mistaken for")
    for name, s in sorted(res["per_colour"].items(), key=lambda kv: -kv[1]["support"]):
        acc = f"{s['accuracy']:.2f}" if s["accuracy"] is not None else "  -  "
        prec = f"{s['precision']:.2f}" if s["precision"] is not None else "  -  "
        wrong = ", ".join(f"{p} {v}" for p, v in s["mistaken_for"].items())
        print(f"{name:10s} {s['support']:7d} {acc:>6s} {prec:>6s}  {wrong}")
    print()
    print("top confusions (label -> predicted):")
    for c in res["top_confusions"][:12]:
        print(f"  {c['label']:>9s} -> {c['predicted']:<9s} {c['count']}")
    print()
    print("confidence calibration:")
    for b in res["calibration"]:
        acc = f"{b['accuracy']:.2f}" if b["accuracy"] is not None else "-"
        print(f"  [{b['conf_from']:.1f}, {b['conf_to']:.1f})  n={b['n']:4d}  accuracy={acc}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--labels", required=True, type=Path, help="labels.csv with file,color columns")
    add_report_args(ap, "eval_pixel_color")
    ap.add_argument("--vocabulary", choices=("labels", "full"), default="labels")
    ap.add_argument("--limit", type=int, default=None, help="score only the first N labelled rows")
    ap.add_argument("--path", choices=tuple(PATHS), default="run",
                    help="run: the colour a run computes (pixel-color-v3); v1: the k-means extractor it replaced")
    args = ap.parse_args(argv)
    res = evaluate(args.labels, vocabulary=args.vocabulary, limit=args.limit, path=args.path)
    print_report(res)
    if args.json:
        report("eval_pixel_color", res, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

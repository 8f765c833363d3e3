"""Heads against the majority class and against the pipeline's own answer, on rows not trained on.

    python bench/heads.py --labels ../shared/data/hm-tops/labels.csv --clip-checkpoint /tmp/vitb32-random.pt \
        --cache-dir /tmp/heads-cache [--pred OUT/catalog.parquet] [--group-column source_prod_name]

Trains every labelled attribute with `--holdout` (default 0.2) into a temporary folder, prints
train-heads' table, then, per attribute, the holdout accuracy / macro-F1 of: the head, the majority
class, the colour head without pixel features, and (with --pred, a run over the same images) the
pipeline's zero-shot / pixel answer on the very same held-out rows."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from catalog_intel.quality import evaluate as ev  # noqa: E402
from catalog_intel.inference.clip_model import model_id  # noqa: E402
from catalog_intel.settings import resolve_settings  # noqa: E402
from catalog_intel.training.heads import format_train_report, train_heads  # noqa: E402
from bench.harness import add_report_args, report  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--labels", required=True)
    p.add_argument("--config")
    p.add_argument("--clip-checkpoint")
    p.add_argument("--cache-dir")
    p.add_argument("--holdout", type=float, default=0.2)
    p.add_argument("--group-column")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--pred", help="catalog.parquet of a run over the same images (zero-shot / pixel baseline)")
    add_report_args(p, "heads")
    args = p.parse_args()
    config = resolve_settings(args.config, clip_checkpoint=args.clip_checkpoint, cache_dir=args.cache_dir)
    mid = model_id(config.clip, config.paths.cache_path)
    out = Path(tempfile.mkdtemp(prefix="heads-bench-"))
    trained = train_heads(args.labels, str(out / "heads"), config, mid, holdout=args.holdout, seed=args.seed,
                         group_column=args.group_column)
    print(format_train_report(trained))
    result = {"heads": trained}
    if "color" in trained["attributes"]:
        plain = train_heads(args.labels, str(out / "clip-only"), config, mid, only=["color"], holdout=args.holdout,
                            seed=args.seed, group_column=args.group_column, pixel_color=False)
        result["color_clip_only"] = plain["attributes"]["color"].get("holdout")
        print("colour head on the CLIP embedding only (no pixel features), holdout: "
              + json.dumps({k: round(v, 3) if isinstance(v, float) else v
                            for k, v in (result["color_clip_only"] or {}).items()}))
    if args.pred:
        pipeline = ev.evaluate(ev.load_predictions(args.pred), ev.load_labels(trained["holdout_labels"]),
                               config.attributes, args.pred, trained["holdout_labels"])
        result["pipeline_on_holdout"] = {a: {"accuracy": e["accuracy"], "macro_f1": e["macro_f1"], "rows": e["support"]}
                                         for a, e in pipeline["attributes"].items()}
        print("\nthe run's own answer on the same held-out rows (unknown counts as wrong):")
        for a, e in result["pipeline_on_holdout"].items():
            print(f"  {a:14} accuracy {100 * e['accuracy']:.1f}  macro-F1 {100 * e['macro_f1']:.1f}  ({e['rows']} rows)")
    report("heads", result, args.json)


if __name__ == "__main__":
    main()

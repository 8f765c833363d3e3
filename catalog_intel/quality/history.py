"""Data-quality history across runs into one output location (OUT/history/).

Each run appends its metrics (rows, rejects by reason, abstentions per attribute, copy
warnings, conflicts with catalog facts) to OUT/history/runs.jsonl; the GX validation results
sit beside it in OUT/history/validations/ (see quality.py), so Data Docs list every run.
Pure functions turn that into the report's trend table and the sudden-change alerts."""

from __future__ import annotations

import json
import re
from pathlib import Path

import polars as pl

from catalog_intel.io.filesystem import atomic_write_text, location, read_bytes, remove_files
from catalog_intel.io.layout import OutputLayout


def reject_category(reason: str) -> str:
    """A reject reason without the row's particulars: 'LLM copy failed: HTTP 500 ...' -> 'LLM copy failed'."""
    first = reason.split(";")[0].split(":")[0].strip()
    return re.sub(r"\s*\(.*\)$", "", first) or "other"


def run_metrics(run: dict, review: pl.DataFrame, rejects: pl.DataFrame) -> dict:
    """One run's data-quality figures. `review` is review_rows' frame (rows that reached the
    table, rejected or not), `run` the run summary."""
    rows = int(run.get("rows") or 0)
    kept = review.filter(pl.col("reject_reason").is_null()) if "reject_reason" in review.columns else review
    by_reason: dict[str, int] = {}
    for reason in rejects["reason"].to_list() if rejects.height else []:
        key = reject_category(reason or "")
        by_reason[key] = by_reason.get(key, 0) + 1
    abstentions = {k: int(v) for k, v in (run.get("abstentions") or {}).items()}
    warnings = int((kept["copy_warnings"].list.len().fill_null(0) > 0).sum()) \
        if "copy_warnings" in kept.columns and kept.height else 0
    conflicts = int((kept["conflicts"].list.len().fill_null(0) > 0).sum()) \
        if "conflicts" in kept.columns and kept.height else 0
    first = review.row(0, named=True) if review.height else {}
    return {
        "run_id": first.get("run_id") or "", "processed_at": first.get("processed_at") or "",
        "rows": rows, "rejects": int(run.get("rejects") or 0), "rejects_by_reason": dict(sorted(by_reason.items())),
        "abstentions": abstentions, "abstention_rate": {k: (v / rows if rows else 0.0) for k, v in abstentions.items()},
        "copy_warnings": warnings, "conflicts": conflicts,
    }


def sudden_changes(previous: dict | None, current: dict, min_rejects: int, abstention_jump: float) -> list[str]:
    """What changed abruptly since the previous run: rejects (all, or one reason) at least doubling
    to at least `min_rejects`; an attribute's abstention share rising by more than `abstention_jump`;
    copy warnings or fact conflicts at least doubling to at least `min_rejects`."""
    if not previous:
        return []
    alerts = []

    def doubled(label: str, before: int, now: int) -> None:
        if now >= min_rejects and now >= 2 * max(before, 1) and now > before:
            alerts.append(f"{label}: {before} -> {now} since the previous run")

    doubled("rejects", previous.get("rejects", 0), current["rejects"])
    for reason, n in current["rejects_by_reason"].items():
        before = previous.get("rejects_by_reason", {}).get(reason, 0)
        if (before, n) != (previous.get("rejects", 0), current["rejects"]):  # not the total again
            doubled(f"rejects '{reason}'", before, n)
    for attr, rate in current["abstention_rate"].items():
        before = previous.get("abstention_rate", {}).get(attr)
        if before is not None and rate - before > abstention_jump:
            alerts.append(f"{attr} abstains on {rate:.0%} of rows, up from {before:.0%} in the previous run")
    doubled("copy warnings", previous.get("copy_warnings", 0), current["copy_warnings"])
    doubled("conflicts with catalog facts", previous.get("conflicts", 0), current["conflicts"])
    return alerts


def trend_table(history: list[dict], last: int) -> dict | None:
    """The report's trend: one row per recent run (oldest first), columns rows, rejects,
    rejects per reason, abstentions per attribute, copy warnings, conflicts."""
    runs = history[-last:]
    if len(runs) < 2:
        return None
    reasons = sorted({r for run in runs for r in run.get("rejects_by_reason", {})})
    attrs = list(dict.fromkeys(a for run in runs for a in run.get("abstentions", {})))
    columns = (["rows", "rejects"] + [f"rejects: {r}" for r in reasons] + [f"unknown {a}" for a in attrs]
               + ["copy warnings", "conflicts"])
    rows = []
    for run in runs:
        cells = [run.get("rows", 0), run.get("rejects", 0)]
        cells += [run.get("rejects_by_reason", {}).get(r, 0) for r in reasons]
        cells += [run.get("abstentions", {}).get(a, "") for a in attrs]
        cells += [run.get("copy_warnings", 0), run.get("conflicts", 0)]
        label = (run.get("processed_at") or "")[:19].replace("T", " ") or run.get("run_id") or "?"
        rows.append({"label": label, "cells": cells})
    return {"columns": columns, "runs": rows}


# --- the store ------------------------------------------------------------------------------

def read_history(out_dir: Path) -> list[dict]:
    path = OutputLayout(out_dir).history_runs
    try:
        text = read_bytes(str(path)).decode("utf-8")
    except (OSError, FileNotFoundError):
        return []
    runs = []
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                runs.append(json.loads(line))
            except ValueError:
                raise ValueError(f"{path}, line {n}: not JSON; fix or delete that line (it is one run's metrics)")
    return runs


def append_history(out_dir: Path, metrics: dict, keep: int) -> list[dict]:
    """Add this run's metrics; keep the last `keep` runs."""
    history = (read_history(out_dir) + [metrics])[-keep:]
    atomic_write_text(OutputLayout(out_dir).history_runs, "".join(json.dumps(r) + "\n" for r in history))
    return history


def prune_validations(folder: Path, keep: int) -> None:
    """Keep the newest `keep` GX validation results (their run-time folders sort by time)."""
    if not folder.is_dir() or keep < 0:
        return
    results = sorted(folder.glob("*/*/*/*.json"), key=lambda p: p.parent.name)
    remove_files(results[:len(results) - keep] if len(results) > keep else [])


def record_run(out_dir: Path, run: dict, review: pl.DataFrame, rejects: pl.DataFrame, trend_runs: int, keep: int,
               min_rejects: int, abstention_jump: float) -> tuple[dict | None, list[str]]:
    """Append this run to OUT/history/ and return (trend table, sudden-change alerts)."""
    metrics = run_metrics(run, review, rejects)
    previous = read_history(out_dir)
    alerts = sudden_changes(previous[-1] if previous else None, metrics, min_rejects, abstention_jump)
    history = append_history(out_dir, {**metrics, "alerts": alerts}, keep)
    return trend_table(history, trend_runs), alerts

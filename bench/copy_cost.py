"""What copy costs per product, in token-times, and what it is worth (#20).

    nice -n -5 python bench/copy_cost.py --label before --json bench/results/copy_cost.json
    nice -n -5 python bench/copy_cost.py --label llm-titles --set llm.structured_fields=llm ...

One run: the embedded server (the pipeline's slots and threads, this process's priority) first
writes free text alone (the model's raw single-stream tokens/s), then the pipeline's describe()
writes the copy of N hm-tops products with their labels as facts and H&M's note
(``source_detail_desc``) as a ``details`` fact, then of M other products with the labels only,
then the raw rate again. Token-times per product = describe seconds per product x raw tokens/s
(the mean of both raw measurements): a figure that does not depend on the machine's speed, and
less on its load, since both are measured under the same load. The same from the server
process's CPU time (``cpu_token_times_per_product``) depends on the load least of all.

Copy figures, per set: copy-quality's ungrounded-claim and contradiction shares and cut fields,
sentences per description, the share of prose sentences with a stock phrase (grounding.phrases),
sentences borrowed from the worked example, descriptions that use the note; generated tokens,
answers and retries per product.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

HERE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(HERE))
from bench.harness import add_report_args, load_settings, log, report  # noqa: E402

#: ../shared beside the checkout (a worktree under wt/ looks one folder further up)
HM = next((p / "shared" / "data" / "hm-tops" for p in (HERE.parent, HERE.parent.parent, Path("/work"))
           if (p / "shared" / "data" / "hm-tops").is_dir()), HERE.parent / "shared" / "data" / "hm-tops")
LABELS = {"color": "color", "sleeve": "sleeve", "neckline": "neckline", "pattern": "pattern", "garment_type": "category"}
RAW_PROMPT = "Write a long, plain English paragraph about the history of cotton farming."


def products(n_notes: int, n_bare: int) -> tuple[list[dict], list[dict]]:
    """hm-tops rows with distinct notes, spread over the set: the first N get the note, the next M not."""
    from catalog_intel.quality.evaluate import LABEL_VALUE_MAP

    labels = pl.read_csv(HM / "labels.csv", infer_schema_length=0).sort("file")
    labels = labels.unique(subset="source_detail_desc", keep="first", maintain_order=True)
    step = max(1, labels.height // max(1, n_notes + n_bare))
    picked = labels.gather(list(range(0, labels.height, step))[:n_notes + n_bare])
    rows = []
    for r in picked.iter_rows(named=True):
        facts = {a: LABEL_VALUE_MAP.get(a, {}).get((r[c] or "").strip(), (r[c] or "").strip()) for a, c in LABELS.items()}
        rows.append({"sha256": hashlib.sha256(r["file"].encode()).hexdigest(), "image": r["file"],
                     **{f"{a}_fact": v or None for a, v in facts.items()}, "details": r["source_detail_desc"]})
    notes, bare = rows[:n_notes], [{**r, "details": None} for r in rows[n_notes:]]
    return notes, bare


def attribute_frame(rows: list[dict], config) -> pl.DataFrame:
    """What describe() gets in a run whose models know nothing: the facts merged over blanks."""
    from catalog_intel.schemas import ATTRIBUTE_ORDER, UNKNOWN
    from catalog_intel.pipeline.facts import merge_facts

    model = pl.DataFrame([{"sha256": r["sha256"], **{a: UNKNOWN for a in ATTRIBUTE_ORDER},
                           **{f"{a}_confidence": 0.0 for a in ATTRIBUTE_ORDER}} for r in rows])
    facts = pl.DataFrame(rows, infer_schema_length=None).drop("image")
    for c in facts.columns:
        facts = facts.with_columns(pl.col(c).cast(pl.Utf8))
    return merge_facts(model, facts, config)


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of the server process: its work, whatever the machine's load."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def raw_rate(server) -> dict:
    import openai

    client = openai.OpenAI(base_url=server.base_url, api_key="not-needed", max_retries=0, timeout=600)
    t0, c0 = time.monotonic(), cpu_seconds(server.pid)
    reply = client.chat.completions.create(model=server.model, messages=[{"role": "user", "content": RAW_PROMPT}],
                                           max_tokens=160, temperature=0.0, seed=1)
    seconds, cpu = time.monotonic() - t0, cpu_seconds(server.pid) - c0
    tokens = reply.usage.completion_tokens
    return {"tokens": tokens, "seconds": seconds, "tokens_per_s": tokens / seconds, "cpu_s": cpu,
            "tokens_per_cpu_s": tokens / cpu, "load1": os.getloadavg()[0]}


def counting_client(base_url: str, usage: list):
    """An openai client that records each answer's usage (any code version's describe() takes it):
    prompt tokens, completion tokens, and the prompt tokens llama.cpp evaluated (``timings.prompt_n``;
    the rest came from the slot's prompt cache)."""
    import openai

    client = openai.OpenAI(base_url=base_url, api_key="not-needed", max_retries=0, timeout=600)
    create = client.chat.completions.create

    def recorded(**kwargs):
        reply = create(**kwargs)
        if reply.usage:
            timings = (reply.model_extra or {}).get("timings") or {}
            usage.append((reply.usage.prompt_tokens, reply.usage.completion_tokens,
                          timings.get("prompt_n", reply.usage.prompt_tokens)))
        return reply

    client.chat.completions.create = recorded
    return client


def copy_figures(frame: pl.DataFrame, copy: pl.DataFrame, config) -> dict:
    from catalog_intel.schemas import ATTRIBUTE_ORDER
    from catalog_intel.copywriting.grounding.phrases import borrowed, stock_figures, uses_note
    from catalog_intel.quality.copy_quality import copy_quality

    cols = ["title", "bullet_points", "description", "style_summary", "seo_tags"]
    table = frame.join(copy.select("sha256", *cols, "copy_warnings", "copy_error"), on="sha256")
    judged = table.filter(pl.col("copy_error").is_null())
    figures = {"products": table.height, "rejected": table.height - judged.height,
               "rejected_rows": table.filter(pl.col("copy_error").is_not_null()).select("image", "copy_error").to_dicts()}
    q = copy_quality(judged, config)
    figures.update({"ungrounded_rows_share": q["ungrounded_claims"]["share"],
                    "ungrounded_by_kind": {k: v for k, v in q["ungrounded_claims"]["by_kind"].items() if v},
                    "ungrounded_rows": q["ungrounded_claims"]["rows_flagged"],
                    "contradiction_rows_share": q["contradictions"]["share"],
                    "contradiction_rows": q["contradictions"]["rows_flagged"],
                    "cut_fields": q["form"]["truncated_fields"]})
    rows = judged.to_dicts()
    figures.update(stock_figures(rows))
    example = config.llm.example.answer if config.llm.example.enabled else {}
    figures["example_sentences"] = sum(len(borrowed(r, example)) for r in rows) if example else 0
    noted = [r for r in rows if r.get("details")]
    if noted:
        figures["note_use_share"] = sum(uses_note(r["description"] or "", r["details"],
                                                  [str(r.get(a) or "") for a in ATTRIBUTE_ORDER]) for r in noted) / len(noted)
    figures["rows_repaired"] = sum(bool(r.get("copy_warnings")) for r in rows)
    # the copy, not the note it was written from: H&M's notes are under their licence (../shared/data/README.md)
    figures["copy"] = [{k: r.get(k) for k in ("image", *ATTRIBUTE_ORDER, *cols, "copy_warnings")} for r in rows]
    return figures


def describe_set(rows, config, server) -> tuple[dict, pl.DataFrame]:
    from catalog_intel.copywriting.copywriter import describe
    from catalog_intel.copywriting.grounding import copy_check

    frame = attribute_frame(rows, config)
    llm = config.llm.model_copy(update={"base_url": server.base_url, "model": server.model})
    cache = Path(tempfile.mkdtemp(prefix="copy-cost-"))
    usage: list = []
    client = counting_client(server.base_url, usage)
    started, cpu0 = time.monotonic(), cpu_seconds(server.pid)
    try:
        copy, stats = describe(frame, llm, config.validation, cache, client=client, check=copy_check(config))
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    seconds = time.monotonic() - started
    n = frame.height
    cost = {"products": n, "seconds": seconds, "s_per_product": seconds / n,
            "server_cpu_s_per_product": (cpu_seconds(server.pid) - cpu0) / n,
            "answers_per_product": len(usage) / n, "retries_per_product": stats.retries / n,
            "completion_tokens_per_product": sum(u[1] for u in usage) / n,
            "prompt_tokens_per_product": sum(u[0] for u in usage) / n,
            "prompt_evaluated_per_product": sum(u[2] for u in usage) / n,
            "failed": stats.failed, "retry_reasons": dict(stats.retry_reasons), "load1": os.getloadavg()[0]}
    meta = frame.join(pl.DataFrame(rows).select("sha256", "image", "details"), on="sha256")
    return cost, copy_figures(meta, copy, config) | {"cost": cost}


#: the checker's rules in every language (bench/llm_copy.py's SHARED_RULES), "language": English words left
SHARED_RULES = ("colour", "garment", "sleeve", "neckline", "pattern", "fabric", "fit", "gender", "language")


def language_pass_rates(rows: list[dict], config, server, langs: list[str]) -> dict:
    """Each language's copy as the pipeline writes it (the language's gate: feedback, repair or
    reject), then judged again by that gate: the share of rows that pass every shared rule."""
    from catalog_intel.copywriting.copywriter import COPY_COLUMNS, describe
    from catalog_intel.copywriting.languages import language_gate, language_llm, translate_attributes

    frame = attribute_frame(rows, config)
    out = {}
    for lang in langs:
        given = translate_attributes(frame, config, lang)
        llm = language_llm(config.llm, lang, config.languages[lang]).model_copy(
            update={"base_url": server.base_url, "model": server.model})
        gate = language_gate(config, lang)
        cache = Path(tempfile.mkdtemp(prefix="copy-lang-"))
        started = time.monotonic()
        try:
            copy, stats = describe(given, llm, config.validation, cache, check=gate)
        finally:
            shutil.rmtree(cache, ignore_errors=True)
        seconds = time.monotonic() - started
        passed, kinds, failures = 0, {}, []
        for g, c in zip(given.sort("sha256").to_dicts(), copy.sort("sha256").to_dicts()):
            if c["copy_error"]:
                kinds["rejected"] = kinds.get("rejected", 0) + 1
                failures.append(c["copy_error"][:160])
                continue
            attrs = {k: v for k, v in g.items() if k in ("color", "neckline", "sleeve", "pattern", "fabric", "fit",
                                                        "garment_type") and v not in (None, "unknown")}
            problems = [p for p in gate.problems(attrs, {k: c[k] for k in COPY_COLUMNS}) if p.kind in SHARED_RULES]
            passed += not problems
            for p in problems:
                kinds[p.kind] = kinds.get(p.kind, 0) + 1
            failures += [p.reason for p in problems[:1]]
        n = frame.height
        out[lang] = {"products": n, "passed_shared_rules": passed, "pass_rate": passed / n, "problem_kinds": kinds,
                     "failures": failures[:8], "retries_per_product": stats.retries / n, "s_per_product": seconds / n,
                     "copy": copy.select("title", "description", "style_summary", "bullet_points").head(3).to_dicts()}
        print(lang, json.dumps({k: v for k, v in out[lang].items() if k != "copy"}, ensure_ascii=False), flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--label", required=True)
    ap.add_argument("--notes", type=int, default=24, help="products with the note as a `details` fact")
    ap.add_argument("--bare", type=int, default=12, help="other products, labels only")
    ap.add_argument("--languages", default="", help="instead: de,fr copy of --bare products, pass rates after the gate")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override (JSON values)")
    ap.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "catalog-intel",
                    help="where the GGUF is assembled (once)")
    add_report_args(ap, "copy_cost")  # one section per --label
    a = ap.parse_args()

    from catalog_intel.copywriting.local_llm import EmbeddedLLMServer, ensure_gguf

    def value(text):
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return text

    overrides = {k: value(v) for k, v in (s.split("=", 1) for s in a.set)}
    config = load_settings(overrides=overrides)
    llm = config.llm
    notes, bare = products(a.notes, a.bare)
    gguf = Path(llm.embedded_model_path) if llm.embedded_model_path else ensure_gguf(a.cache_dir, progress=True)
    # code with speculative decoding (#20); a baseline checkout has no such keys
    extra = {"speculative": llm.embedded_speculative, "draft_max": llm.embedded_draft_max} \
        if hasattr(llm, "embedded_speculative") else {}
    log(f"load before: {os.getloadavg()}")
    with EmbeddedLLMServer(gguf, n_ctx=llm.embedded_context, n_parallel=llm.embedded_parallel,
                           threads=llm.embedded_threads or None, isolate=True, **extra) as server:
        if a.languages:
            rates = language_pass_rates(bare, config, server, a.languages.split(","))
            report("copy_cost", {"label": a.label, "overrides": overrides, "languages": rates}, a.json,
                   section=a.label)
            return
        raw = [raw_rate(server)]
        log(f"raw: {raw[-1]}")
        sets = {}
        for name, rows in (("notes", notes), ("bare", bare)):
            if rows:
                cost, figures = describe_set(rows, config, server)
                sets[name] = figures
                log(f"{name} {json.dumps(cost)}")
        raw.append(raw_rate(server))
        log(f"raw: {raw[-1]}")
    rate = sum(r["tokens_per_s"] for r in raw) / len(raw)
    cpu_rate = sum(r["tokens_per_cpu_s"] for r in raw) / len(raw)
    for figures in sets.values():
        cost = figures["cost"]
        cost.update(raw_tokens_per_s=rate, token_times_per_product=cost["s_per_product"] * rate,
                    raw_tokens_per_cpu_s=cpu_rate,  # the same figure from CPU time: load hardly moves it
                    cpu_token_times_per_product=cost["server_cpu_s_per_product"] * cpu_rate)
    result = {"label": a.label, "overrides": overrides, "raw": raw,
              "raw_tokens_per_s": rate, "threads": llm.embedded_threads or os.cpu_count(),
              "slots": llm.embedded_parallel, "nice": os.nice(0), "sets": sets}
    report("copy_cost", result, a.json, section=a.label)


if __name__ == "__main__":
    main()

"""Embedded llama.cpp server: completion tokens/s and s/product by model and thread count, interleaved.

    python bench/llm_threads.py --threads 1 2 --rounds 2 --products 3 [--gguf A.gguf B.gguf] [--cache-dir DIR] [--json OUT]

Each round starts one server per model and thread count in turn (so machine load drifts hit all
alike) and sends the same product prompts (the pipeline's own prompt, one at a time, fixed seed).
Reports per model and thread count: completion tokens/s (usage.completion_tokens / request wall
time), s/product, and the machine's load average. The model is the default GGUF, assembled into
the cache, unless --gguf names other files.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PRODUCTS = [
    {"color": "navy", "sleeve": "long sleeve", "neckline": "round neck", "pattern": "striped", "garment_type": "top"},
    {"color": "white", "sleeve": "short sleeve", "neckline": "v-neck", "pattern": "solid", "garment_type": "t-shirt",
     "facts_json": json.dumps({"material": "100% cotton"})},
    {"color": "pink", "sleeve": "sleeveless", "pattern": "floral", "garment_type": "tank top"},
    {"color": "grey", "neckline": "hooded", "pattern": "solid", "garment_type": "hoodie",
     "facts_json": json.dumps({"material": "sweatshirt fabric"})},
]


def measure(gguf: Path, threads: int, products: list[dict], config) -> list[dict]:
    import openai

    from catalog_intel.copywriting.copywriter import build_messages, prompt_attributes, response_schema
    from catalog_intel.copywriting.local_llm import EmbeddedLLMServer

    llm = config.llm
    out = []
    with EmbeddedLLMServer(gguf, n_ctx=llm.embedded_context, n_parallel=1, threads=threads, isolate=True) as srv:
        client = openai.OpenAI(base_url=srv.base_url, api_key="not-needed", max_retries=0, timeout=600)
        fmt = {"type": "json_schema", "json_schema": {"name": "catalog_copy", "strict": True,
                                                       "schema": response_schema()}}
        for row in products:
            messages = build_messages(prompt_attributes({"sha256": "x", **row}), llm)
            t0 = time.monotonic()
            reply = client.chat.completions.create(model=srv.model, messages=messages, response_format=fmt,
                                                   temperature=llm.temperature, max_tokens=llm.max_tokens, seed=1)
            seconds = time.monotonic() - t0
            tokens = reply.usage.completion_tokens if reply.usage else 0
            out.append({"model": gguf.stem, "threads": threads, "seconds": seconds, "completion_tokens": tokens,
                        "tokens_per_s": tokens / seconds if seconds else None, "load1": os.getloadavg()[0]})
            print(json.dumps(out[-1]), flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--products", type=int, default=3)
    ap.add_argument("--cache-dir")
    ap.add_argument("--gguf", type=Path, nargs="+", help="GGUF files to compare (default: the default model)")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    from catalog_intel.settings import load_config
    from catalog_intel.copywriting.local_llm import ensure_gguf

    config = load_config(overrides={"paths.cache_dir": a.cache_dir})
    models = a.gguf or [ensure_gguf(config.paths.cache_path)]
    samples = []
    for _ in range(a.rounds):
        for gguf in models:
            for t in a.threads:
                samples += measure(gguf, t, PRODUCTS[:a.products], config)
    table = {}
    for gguf in models:
        for t in a.threads:
            mine = [s for s in samples if s["threads"] == t and s["model"] == gguf.stem]
            table[f"{gguf.stem} threads {t}"] = {
                "s_per_product": statistics.median(s["seconds"] for s in mine),
                "completion_tokens": statistics.median(s["completion_tokens"] for s in mine),
                "tokens_per_s": statistics.median(s["tokens_per_s"] for s in mine),
                "load1": statistics.fmean(s["load1"] for s in mine), "requests": len(mine)}
    print(f"cpus {os.cpu_count()}")
    for k, r in table.items():
        print(f"{k}: {r['tokens_per_s']:.1f} completion tokens/s, {r['s_per_product']:.1f} s/product, "
              f"{r['completion_tokens']:.0f} tokens (median of {r['requests']}), load {r['load1']:.1f}")
    if a.json:
        a.json.write_text(json.dumps({"samples": samples, "table": table}, indent=1))


if __name__ == "__main__":
    main()

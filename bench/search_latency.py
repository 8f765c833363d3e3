"""Search latency and index build time at catalog scale (not a test).

Random unit vectors stand in for CLIP embeddings (dim 512, ViT-B-32). For each size it
builds the exact index (IndexFlatIP) and the approximate one (HNSW, the configured
M / efConstruction / efSearch) through catalog_intel.search.index, then times single queries
(k=10) the way `catalog-intel similar` / `search` run them (one FAISS thread), and reports HNSW recall@10
against the exact answer. Random high-dimensional vectors are the hard case for HNSW;
real embeddings are clustered and recall is higher.

    .venv/bin/python bench/search_latency.py                 # 10k and 100k
    .venv/bin/python bench/search_latency.py --sizes 10000 --queries 500 --all-rows
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from catalog_intel.settings import resolve_settings  # noqa: E402
from catalog_intel.search.index import APPROXIMATE, EXACT, build_index, search_vectors, single_threaded  # noqa: E402
from catalog_intel.search.neighbours import neighbours  # noqa: E402
from bench.harness import add_report_args, report  # noqa: E402


def unit_vectors(n: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    x = rng.standard_normal((n, dim), dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def clustered_vectors(n: int, dim: int, rng: np.random.Generator, clusters: int = 2000, spread: float = 0.6
                      ) -> np.ndarray:
    """Unit vectors around `clusters` random centres (like embeddings of many products, each
    photographed several times): much closer to real CLIP data than uniform noise."""
    centres = unit_vectors(clusters, dim, rng)
    x = centres[rng.integers(0, clusters, n)] + spread * unit_vectors(n, dim, rng)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("-k", type=int, default=10)
    parser.add_argument("--data", choices=["random", "clustered"], default="random",
                        help="uniform random unit vectors (default), or vectors clustered like product photos")
    parser.add_argument("--ef-search", type=int, nargs="+", help="HNSW efSearch values to try (default: the config's)")
    parser.add_argument("--all-rows", action="store_true",
                        help="also time the flow's all-rows neighbour search (top_k + group_neighbors)")
    add_report_args(parser, "search_latency")
    args = parser.parse_args()

    import faiss

    cfg = resolve_settings().search
    print(f"faiss {faiss.__version__}, {faiss.omp_get_max_threads()} threads, {os.cpu_count()} CPUs, "
          f"{platform.processor() or platform.machine()}; {args.data} unit vectors, dim {args.dim}, k={args.k}, "
          f"{args.queries} single queries; HNSW M={cfg.hnsw_m} efConstruction={cfg.hnsw_ef_construction}")
    print(f"{'n':>8} {'index':>6} {'efSearch':>8} {'build s':>9} {'ms/query':>9} {'p95 ms':>8} {'recall@k':>9}"
          + (f" {'all-rows s':>11}" if args.all_rows else ""))
    rng = np.random.default_rng(0)
    make = unit_vectors if args.data == "random" else clustered_vectors
    rows = []
    for n in args.sizes:
        both = make(n + args.queries, args.dim, rng)  # queries: held-out vectors from the same distribution
        data, queries = both[:n], both[n:]
        shas = [f"{i:064x}" for i in range(n)]
        exact_ids = None
        for kind in (EXACT, APPROXIMATE):
            started = time.perf_counter()
            index = build_index(shas, data, "bench", cfg, kind=kind)
            build_s = time.perf_counter() - started
            for ef in (args.ef_search or [cfg.hnsw_ef_search]) if kind == APPROXIMATE else [None]:
                times, found = [], []
                with single_threaded():  # as `catalog-intel similar` / `search` query
                    search_vectors(index, queries[:5], args.k, ef_search=ef)  # warm up
                    for q in queries:
                        t = time.perf_counter()
                        _, ids = search_vectors(index, q, args.k, ef_search=ef)
                        times.append((time.perf_counter() - t) * 1000)
                        found.append(ids[0])
                found = np.stack(found)
                if kind == EXACT:
                    exact_ids = found
                recall = np.mean([len(set(a) & set(b)) / args.k for a, b in zip(found, exact_ids)])
                line = (f"{n:>8} {kind:>6} {ef or '':>8} {build_s:>9.2f} {np.mean(times):>9.3f} "
                        f"{np.percentile(times, 95):>8.3f} {recall:>9.3f}")
                if args.all_rows and ef in (None, cfg.hnsw_ef_search):
                    t = time.perf_counter()
                    neighbours(index, shas, max(cfg.top_k + 1, cfg.group_neighbors))
                    line += f" {time.perf_counter() - t:>11.1f}"
                print(line, flush=True)
                rows.append({"n": n, "index": kind, "ef_search": ef, "build_s": round(build_s, 3),
                             "ms_per_query": round(float(np.mean(times)), 4),
                             "p95_ms": round(float(np.percentile(times, 95)), 4), "recall": round(float(recall), 4)})
    report("search_latency", rows, args.json)


if __name__ == "__main__":
    main()

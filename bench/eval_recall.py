"""Time known-relationship recall (paper.md §4a) on a 1,000-gene x 384-d map against an EFAAR-style peer.

    python -m bench.eval_recall            # 1,000 genes x 384-d, all five bundled sources, ours 3 runs, peer 1
    python -m bench.eval_recall --smoke    # seconds: 200 genes x 64-d, SIGNOR only, 1 run each

Map: 1,000 gene symbols drawn (seed 0) from the genes of the bundled CORUM annotations, random 384-d profiles.
Ours: `eval.recall.known_relationship_recall` (annotation cache cleared before each run, no label-permutation
baseline, then again with the default 10 baseline seeds). Peer: the straightforward EFAAR-style implementation,
written here: pairs normalised row by row with `DataFrame.apply`, scikit-learn `cosine_similarity` into a labelled
DataFrame, the upper triangle as the null, and one `.loc` lookup per annotated pair. Both run in this process on the
same map; every recall must agree exactly, else the run fails. Prints a table and writes JSON (`--out`).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics.pairwise import cosine_similarity

from eval import recall
from eval.aggregate import PerturbationMap
from eval.perturbations import GENE
from phenom_data.atomic import atomic_write_json

ANNOTATIONS_DIR = recall.default_annotations_dir()

FULL = {"genes": 1000, "dimensions": 384, "repeats": 3, "sources": recall.BENCHMARK_SOURCES}
SMOKE = {"genes": 200, "dimensions": 64, "repeats": 1, "sources": ("SIGNOR",)}
PEER_REPEATS = 1  # the peer takes about a minute for the five sources; its time hardly varies


def make_map(genes: int, dimensions: int, seed: int = 0) -> PerturbationMap:
    corum_genes = np.unique(recall.load_relationships(ANNOTATIONS_DIR, "CORUM").ravel())
    names = np.sort(np.random.default_rng(seed).choice(corum_genes, size=genes, replace=False)).astype(object)
    features = np.random.default_rng(seed + 1).standard_normal((genes, dimensions)).astype(np.float32)
    return PerturbationMap(names, np.full(genes, "CRISPR", dtype=object), np.full(genes, np.nan),
                           features.astype(np.float64), np.ones(genes, dtype=np.int64),
                           np.full(genes, GENE, dtype=object), np.zeros(genes, dtype=bool))


def efaar_style_recall(perturbation_map: PerturbationMap, sources, thresholds) -> dict[str, dict[str, float]]:
    """The peer: `{source: {"<l>_<u>": recall}}` computed the straightforward way (see the module docstring)."""
    labels = list(perturbation_map.labels)
    similarity = pd.DataFrame(cosine_similarity(perturbation_map.features), index=labels, columns=labels)
    null = np.sort(similarity.to_numpy()[np.triu_indices(len(labels), k=1)])
    out = {}
    for source in sources:
        pairs = pd.read_csv(Path(ANNOTATIONS_DIR) / f"{source}.txt")
        ordered = pairs.apply(lambda row: sorted((row.entity1, row.entity2)), axis=1, result_type="expand")
        ordered.columns = ["entity1", "entity2"]
        ordered = ordered[ordered.entity1 != ordered.entity2].drop_duplicates()
        ordered = ordered[ordered.entity1.isin(labels) & ordered.entity2.isin(labels)]
        query = np.array([similarity.loc[first, second] for first, second in ordered.itertuples(index=False)])
        left = np.searchsorted(null, query, side="left") / len(null)
        right = np.searchsorted(null, query, side="right") / len(null)
        out[source] = {f"{lower}_{upper}": float(((right <= lower) | (left >= upper)).mean())
                       for lower, upper in thresholds}
    return out


def timed(function, repeats: int):
    seconds = []
    for _ in range(repeats):
        recall._read_relationships.cache_clear()
        start = time.perf_counter()
        value = function()
        seconds.append(time.perf_counter() - start)
    return value, float(np.median(seconds))



def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.eval_recall", description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="a 200-gene x 64-d map, 1 repeat: a check that it runs")
    parser.add_argument("--repeats", type=int, help="timed runs per implementation, median reported (default 3)")
    parser.add_argument("--out", type=Path, default=Path("outputs/bench/eval_recall.json"))
    args = parser.parse_args(argv)
    size = dict(SMOKE if args.smoke else FULL)
    size["repeats"] = args.repeats or size["repeats"]
    perturbation_map = make_map(size["genes"], size["dimensions"])
    sources, thresholds = size["sources"], recall.RECALL_THRESHOLDS

    def ours_with(seeds):
        return lambda: recall.known_relationship_recall(perturbation_map, ANNOTATIONS_DIR, sources=sources,
                                                        seeds=seeds)

    ours, ours_seconds = timed(ours_with(()), size["repeats"])
    _, baseline_seconds = timed(ours_with(range(10)), size["repeats"])
    peer, peer_seconds = timed(lambda: efaar_style_recall(perturbation_map, sources, thresholds), PEER_REPEATS)

    mismatches = [(result.source, name) for result in ours for name, value in result.recall.items()
                  if peer[result.source][name] != value]
    report = {
        "benchmark": "known_relationship_recall",
        "map": {"genes": size["genes"], "dimensions": size["dimensions"]},
        "sources": list(sources),
        "null_size": ours[0].null_size,
        "query_sizes": {result.source: result.query_size for result in ours},
        "recall": {result.source: result.recall for result in ours},
        "repeats": size["repeats"],
        "peer_repeats": PEER_REPEATS,
        "ours_seconds": ours_seconds,
        "ours_with_10_baseline_seeds_seconds": baseline_seconds,
        "peer": "EFAAR-style: DataFrame.apply pair sorting, sklearn cosine_similarity DataFrame, .loc per pair",
        "peer_seconds": peer_seconds,
        "speedup": peer_seconds / ours_seconds,
        "recalls_identical_to_peer": not mismatches,
        "smoke": args.smoke,
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "numpy": np.__version__,
    }
    print(f"known-relationship recall: {size['genes']} genes x {size['dimensions']}-d, null {ours[0].null_size:,} "
          f"pairs, query pairs {report['query_sizes']}, median of {size['repeats']} runs (peer {PEER_REPEATS})")
    print(f"{'implementation':<44}{'seconds':>10}{'ratio':>8}")
    print(f"{f'eval.recall ({len(sources)} sources)':<44}{ours_seconds:>10.3f}{1.0:>8.2f}")
    print(f"{'eval.recall + 10 label-permutation baselines':<44}{baseline_seconds:>10.3f}"
          f"{baseline_seconds / ours_seconds:>8.2f}")
    print(f"{f'EFAAR-style peer ({len(sources)} sources)':<44}{peer_seconds:>10.3f}"
          f"{peer_seconds / ours_seconds:>8.2f}")
    print(f"{ours[0].source} recall (0.05, 0.95) on random profiles: {ours[0].recall['0.05_0.95']:.4f} "
          "(chance about 0.10)")
    atomic_write_json(args.out, report)
    print(f"wrote {args.out}")
    if mismatches:
        print(f"FAILED: recall differs from the peer for {mismatches}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

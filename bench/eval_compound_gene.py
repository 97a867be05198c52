"""Time the compound-gene activity benchmark (paper.md §4c) at RxRx3-core size against a scikit-learn loop.

    python -m bench.eval_compound_gene                 # 100 seeds; the peer loop on 1 seed
    python -m bench.eval_compound_gene --smoke         # seconds: a small map, 3 seeds (the peer on 1)

Map: the bundled `compound_gene_interactions.csv` as truth; 735 genes (the truth genes plus filler names) and
1,700 compounds (the truth compounds plus filler) x RxRx3-core's 8 concentrations, random 384-d profiles.

Peer: the straightforward implementation, one `average_precision_score` + `roc_auc_score` call per compound,
concentration and seed on the same sampled sets. Both run in this process on the same map; the peer runs on fewer
seeds and is compared per seed. Every metric of the seeds both ran must agree to 1e-9, else the run fails.
Prints a table and writes JSON (`--out`).
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
from sklearn.metrics import average_precision_score, roc_auc_score

from eval.compound_gene import (
    MAX_CONCENTRATION,
    compound_gene_benchmark,
    format_concentration,
    load_compound_gene_interactions,
    sampling_plans,
)
from phenom_data import RXRX3_CORE_CONCENTRATIONS
from phenom_data.atomic import atomic_write_json

FULL = {"genes": 735, "compounds": 1700, "dimensions": 384, "seeds": 100, "peer_seeds": 1}
SMOKE = {"genes": 120, "compounds": 60, "dimensions": 32, "seeds": 3, "peer_seeds": 1}


def make_map(truth: pd.DataFrame, genes: int, compounds: int, dimensions: int, seed: int = 0):
    """Random profiles for `genes` gene rows and `compounds` x 8 concentration rows; truth names first."""
    truth_genes = sorted(truth["gene_symbol"].unique())[:genes]
    truth_compounds = sorted(truth["treatment"].unique())[:compounds]
    gene_names = truth_genes + [f"FILLER_GENE_{i}" for i in range(genes - len(truth_genes))]
    compound_names = truth_compounds + [f"FILLER_COMPOUND_{i}" for i in range(compounds - len(truth_compounds))]
    rows = [(gene, np.nan) for gene in gene_names]
    rows += [(compound, dose) for compound in compound_names for dose in RXRX3_CORE_CONCENTRATIONS]
    metadata = pd.DataFrame(rows, columns=["perturbation", "concentration"])
    features = np.random.default_rng(seed).standard_normal((len(metadata), dimensions)).astype(np.float32)
    return features, metadata


def sklearn_loop(features, metadata, truth, seeds) -> dict[str, np.ndarray]:
    """The peer: per seed, compound and concentration one scikit-learn call each; returns per-seed macro means."""
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    is_gene = metadata["concentration"].isna() & metadata["perturbation"].isin(truth["gene_symbol"])
    genes = metadata[is_gene].sort_values("perturbation", kind="stable")
    gene_names = genes["perturbation"].to_numpy()
    compounds = metadata[metadata["concentration"].notna() & metadata["perturbation"].isin(truth["treatment"])]
    compound_names = np.array(sorted(compounds["perturbation"].unique()))
    concentrations = sorted(compounds["concentration"].unique())
    names = [format_concentration(value) for value in concentrations] + [MAX_CONCENTRATION]
    score_table = {}
    for compound, rows in compounds.groupby("perturbation"):
        per_dose = {dose: np.abs(unit[index] @ unit[genes.index].T) for index, dose in rows["concentration"].items()}
        per_dose[MAX_CONCENTRATION] = np.max(np.stack(list(per_dose.values())), axis=0)
        score_table[compound] = per_dose
    plans, _, _ = sampling_plans(truth, gene_names, compound_names)
    width = max(len(plan.actives) + plan.n_negatives for plan in plans)
    out = {f"{kind}_{name}": np.empty(len(seeds)) for kind in ("ap", "auc", "ap_base", "auc_base") for name in names}
    for seed_number, seed in enumerate(seeds):
        baseline = np.random.default_rng(seed).random((len(plans), len(names), width))
        for slot, (dose, name) in enumerate(zip(concentrations + [MAX_CONCENTRATION], names, strict=True)):
            values = {"ap": [], "auc": [], "ap_base": [], "auc_base": []}
            for item, plan in enumerate(plans):
                members = np.concatenate([plan.actives, plan.negatives(seed)])
                labels = np.arange(len(members)) < len(plan.actives)
                scores = score_table[compound_names[plan.compound]][dose][members]
                random_scores = baseline[item, slot, : len(members)]
                values["ap"].append(average_precision_score(labels, scores))
                values["auc"].append(roc_auc_score(labels, scores))
                values["ap_base"].append(average_precision_score(labels, random_scores))
                values["auc_base"].append(roc_auc_score(labels, random_scores))
            for kind, per_compound in values.items():
                out[f"{kind}_{name}"][seed_number] = np.mean(per_compound)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.eval_compound_gene", description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="a small map and 3 seeds: a check that it runs")
    parser.add_argument("--seeds", type=int, help="seeds for the vectorized benchmark (default 100; smoke 3)")
    parser.add_argument("--peer-seeds", type=int, help="seeds for the scikit-learn loop (default 1; smoke 3)")
    parser.add_argument("--out", type=Path, default=Path("outputs/bench/eval_compound_gene.json"))
    args = parser.parse_args(argv)
    size = dict(SMOKE if args.smoke else FULL)
    size["seeds"] = args.seeds or size["seeds"]
    size["peer_seeds"] = min(args.peer_seeds or size["peer_seeds"], size["seeds"])

    truth = load_compound_gene_interactions()
    features, metadata = make_map(truth, size["genes"], size["compounds"], size["dimensions"])
    start = time.perf_counter()
    result = compound_gene_benchmark(features, metadata, interactions=truth, seeds=range(size["seeds"]))
    vectorized_seconds = time.perf_counter() - start
    peer_result = compound_gene_benchmark(features, metadata, interactions=truth, seeds=range(size["peer_seeds"]))
    start = time.perf_counter()
    peer = sklearn_loop(features, metadata, truth, list(range(size["peer_seeds"])))
    peer_seconds = time.perf_counter() - start

    disagreement = 0.0
    for name, per_seed in peer.items():
        kind, _, concentration = name.rpartition("_")
        metric = f"compound_gene_{kind.removesuffix('_base')}_{concentration}"
        ours = peer_result.baselines[metric] if kind.endswith("_base") else peer_result.metrics[metric]
        disagreement = max(disagreement, abs(ours - per_seed.mean()))

    per_seed_vectorized = vectorized_seconds / size["seeds"]
    per_seed_peer = peer_seconds / size["peer_seeds"]
    report = {
        "benchmark": "compound_gene",
        "map": {key: size[key] for key in ("genes", "compounds", "dimensions")},
        "concentrations": len(RXRX3_CORE_CONCENTRATIONS),
        "compounds_evaluated": result.counts["compound_gene_compounds_evaluated"],
        "seeds": size["seeds"],
        "vectorized_seconds": vectorized_seconds,
        "vectorized_seconds_per_seed": per_seed_vectorized,
        "peer": "scikit-learn average_precision_score + roc_auc_score per compound, concentration and seed",
        "peer_seeds": size["peer_seeds"],
        "peer_seconds": peer_seconds,
        "peer_seconds_per_seed": per_seed_peer,
        "speedup_per_seed": per_seed_peer / per_seed_vectorized,
        "max_abs_difference_vs_peer": disagreement,
        "compound_gene_ap_max": result.metrics["compound_gene_ap_max"],
        "baseline_compound_gene_ap_max": result.baselines["compound_gene_ap_max"],
        "smoke": args.smoke,
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "numpy": np.__version__,
    }
    print(f"compound-gene benchmark: {size['genes']} genes, {size['compounds']} compounds x 8 concentrations, "
          f"{size['dimensions']}-d random profiles, {report['compounds_evaluated']} compounds evaluated")
    print(f"{'implementation':<32}{'seeds':>7}{'seconds':>11}{'s/seed':>10}")
    print(f"{'vectorized (eval.compound_gene)':<32}{size['seeds']:>7}{vectorized_seconds:>11.2f}"
          f"{per_seed_vectorized:>10.3f}")
    print(f"{'scikit-learn loop (peer)':<32}{size['peer_seeds']:>7}{peer_seconds:>11.2f}{per_seed_peer:>10.3f}")
    print(f"speed-up per seed: {report['speedup_per_seed']:.1f}x; max |difference| vs peer: {disagreement:.2e}")
    atomic_write_json(args.out, report)
    print(f"wrote {args.out}")
    if disagreement > 1e-9:
        print("FAILED: the vectorized benchmark disagrees with the scikit-learn loop", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Well embeddings with planted biology and batch effects, in the RxRx3-core metadata schema, for the eval tests.

Genes of a few disjoint CORUM complexes share their complex's direction. As in RxRx3-core, each gene is screened in
one experiment, and the members of a complex are spread over different experiments; every experiment adds its own
offset and per-feature gain to all its wells (controls included). Uncorrected, genes of the same experiment look
alike; corrected on the controls, the complexes show.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from eval.plots import read_complexes
from eval.recall import load_relationships
from phenom_data import ANNOTATIONS_DIR


def complex_genes(num_complexes: int = 6, genes_per_complex: int = 5) -> dict[str, list[str]]:
    """CORUM complexes (bundled CORUM_clusters.tsv) with `genes_per_complex` genes each, chosen so that every CORUM
    pair among the chosen genes lies within one complex (the planted truth is then exactly CORUM's)."""
    complexes = read_complexes(ANNOTATIONS_DIR / "CORUM_clusters.tsv")
    corum = {tuple(pair) for pair in load_relationships(ANNOTATIONS_DIR, "CORUM")}
    chosen, used = {}, set()
    for name, genes in sorted(complexes.items()):
        members = list(dict.fromkeys(genes))[:genes_per_complex]
        if len(members) < genes_per_complex or used.intersection(members):
            continue
        if any(tuple(sorted((gene, other))) in corum for gene in members for other in used):
            continue
        chosen[name] = members
        used.update(members)
        if len(chosen) == num_complexes:
            break
    return chosen


def planted_wells(num_experiments: int = 3, guides: int = 2, controls_per_experiment: int = 12, hidden_size: int = 24,
                  signal: float = 1.0, batch_strength: float = 4.0, noise: float = 0.3, seed: int = 0,
                  num_complexes: int = 6, num_unrelated: int = 60) -> tuple[pd.DataFrame, np.ndarray]:
    """`(metadata, features [num_wells, hidden_size] float32)` for CRISPR wells of planted complexes + controls."""
    rng = np.random.default_rng(seed)
    complexes = complex_genes(num_complexes)
    directions = {name: rng.normal(size=hidden_size) for name in complexes}
    gene_vectors = {gene: signal * (directions[name] + 0.5 * rng.normal(size=hidden_size))
                    for name, genes in complexes.items() for gene in genes}
    experiment_of = {gene: (complex_index + gene_index) % num_experiments
                     for complex_index, genes in enumerate(complexes.values())
                     for gene_index, gene in enumerate(genes)}
    # Unrelated genes (in no CORUM pair) fill the null, as most gene pairs of a real map are unrelated.
    corum_genes = set(load_relationships(ANNOTATIONS_DIR, "CORUM").ravel())
    string_genes = sorted(set(load_relationships(ANNOTATIONS_DIR, "StringDB").ravel()) - corum_genes)
    for index, gene in enumerate(string_genes[:num_unrelated]):
        gene_vectors[gene] = signal * rng.normal(size=hidden_size)
        experiment_of[gene] = index % num_experiments
    rows, features = [], []
    for experiment_index in range(num_experiments):
        experiment = f"gene-{experiment_index + 1:03d}"
        offset = batch_strength * rng.normal(size=hidden_size)
        gain = np.exp(0.5 * rng.normal(size=hidden_size))
        wells = [(f"{gene}_guide_{guide + 1}", gene, vector) for gene, vector in gene_vectors.items()
                 if experiment_of[gene] == experiment_index for guide in range(guides)]
        wells += [("EMPTY_control", "EMPTY_control", np.zeros(hidden_size))] * controls_per_experiment
        for index, (treatment, gene, vector) in enumerate(wells):
            address = f"A{index + 1:02d}"
            rows.append({"well_id": f"{experiment}_1_{address}", "experiment_name": experiment, "plate": 1,
                         "address": address, "gene": gene, "treatment": treatment, "SMILES": None,
                         "concentration": np.nan, "perturbation_type": "CRISPR", "cell_type": "HUVEC"})
            features.append(gain * (vector + offset) + noise * rng.normal(size=hidden_size))
    return pd.DataFrame(rows), np.asarray(features, dtype=np.float32)


__all__ = ["complex_genes", "planted_wells"]

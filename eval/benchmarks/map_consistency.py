"""Phenotypic consistency mAP (JUMP-CP; `copairs`): among the perturbations active by `map_activity` (corrected
p < 0.05), profiles sharing an annotation (a CORUM complex for genes, from `CORUM_clusters.tsv`; an active target,
<= 1000 nM, for compounds, from `compound_gene_interactions.csv`) retrieved against profiles sharing none, genes
and compounds each among their own kind. Metrics: `map_consistency_mean` (mean mAP over labels) and
`map_consistency_fraction` (fraction of labels with corrected p < 0.05); baselines: the same with the annotations
shuffled among the profiles (seeded). Figure: `map_consistency.png`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..benchmark_common import recipe_text
from ..compound_gene import ACTIVITY_THRESHOLD_NM, load_compound_gene_interactions
from ..context import BenchmarkNotApplicable, BenchmarkResult, EvalContext
from ..mean_average_precision import consistency_map
from ..perturbations import COMPOUND, GENE
from ..plots import read_complexes
from . import Benchmark, MetricFamily
from .map_activity import PREFIX as ACTIVITY
from .map_activity import activity_table, map_plot, map_result, map_titles

PREFIX = "map_consistency"


def annotations(context: EvalContext) -> dict[str, dict[str, list[str]]]:
    """`{modality: {perturbation: [labels]}}`: CORUM complexes of genes, active targets of compounds."""
    folder = Path(context.annotations_dir)
    by_gene: dict[str, list[str]] = {}
    clusters = folder / "CORUM_clusters.tsv"
    if clusters.is_file():
        for name, genes in read_complexes(clusters).items():
            for gene in dict.fromkeys(genes):
                by_gene.setdefault(gene, []).append(f"complex:{name}")
    interactions = folder / "compound_gene_interactions.csv"
    truth = load_compound_gene_interactions(interactions if interactions.is_file() else None)
    actives = truth[truth["nM_value"] <= ACTIVITY_THRESHOLD_NM]
    by_compound = {name: [f"target:{gene}" for gene in sorted(set(group["gene_symbol"].astype(str)))]
                   for name, group in actives.groupby("treatment")}
    return {GENE: by_gene, COMPOUND: by_compound}


def consistency_tables(context: EvalContext, active_rows: np.ndarray, seed: int, shuffle: bool = False):
    """Per modality with labelled active profiles: copairs' per-label table (concatenated) and the rows used."""
    profiles = context.perturbation_map
    tables, used = [], {}
    for modality, labels_of in annotations(context).items():
        rows = np.array([row for row in active_rows if profiles.modalities[row] == modality
                         and str(profiles.labels[row]) in labels_of], dtype=np.int64)
        if len(rows) < 2:
            continue
        labels = [labels_of[str(profiles.labels[row])] for row in rows]
        if shuffle:
            labels = [labels[index] for index in np.random.default_rng(seed).permutation(len(labels))]
        try:
            table = consistency_map(profiles.features[rows], profiles.labels[rows], labels,
                                    context.map_null_size, seed)
        except BenchmarkNotApplicable:
            continue
        tables.append(table.assign(modality=modality))
        used[modality] = len(rows)
    if not tables:
        raise BenchmarkNotApplicable("mAP consistency: no two active perturbations of one kind share an annotation "
                                     "(CORUM complex for genes, active target for compounds)")
    return pd.concat(tables, ignore_index=True), used


def run(context: EvalContext) -> BenchmarkResult:
    seed = context.seeds[0] if context.seeds else 0
    activity = context.tables.get(ACTIVITY)
    if activity is None:
        activity = activity_table(context)
    active_rows = activity.loc[activity["below_corrected_p"], "map_row"].to_numpy()
    table, used = consistency_tables(context, active_rows, seed)
    context.tables[PREFIX] = table
    shuffled, _ = consistency_tables(context, active_rows, seed, shuffle=True)
    counts = {
        f"{PREFIX}_active_perturbations": len(active_rows),
        **{f"{PREFIX}_{modality}_profiles": count for modality, count in used.items()},
        f"{PREFIX}_labels": len(table),
        f"{PREFIX}_consistent_labels": int(table["below_corrected_p"].sum()),
        f"{PREFIX}_recipe": recipe_text({
            "profiles": f"aggregated map rows active by {ACTIVITY} (corrected p < 0.05)",
            "labels": "genes: CORUM complexes; compounds: active targets (nM <= 1000); several per profile",
            "positives": "profiles of other perturbations sharing the label (copairs multilabel)",
            "negatives": "profiles of the same kind sharing no label",
            "p": f"copairs, null of {context.map_null_size} random rank lists, seed {seed}",
            "correction": "Benjamini-Hochberg over labels; consistent = corrected p < 0.05",
            "baseline": f"labels shuffled among the profiles (seed {seed})",
        }),
    }
    return map_result(table, shuffled, PREFIX, counts)


BENCHMARK = Benchmark(
    name=PREFIX,
    order=70,
    families=(MetricFamily(rf"{PREFIX}_", "mAP consistency",
                           "phenotypic consistency (JUMP-CP, copairs): mean average precision of retrieving active "
                           "perturbations that share a CORUM complex (genes) or a target (compounds) against those "
                           "that share none (mean over labels), and the fraction of labels with FDR-corrected "
                           "p < 0.05 (fraction)"),),
    run=run,
    plot=map_plot(PREFIX, "Phenotypic consistency (mAP within annotations)"),
    title=map_titles(PREFIX, "phenotypic consistency", "fraction consistent"),
)

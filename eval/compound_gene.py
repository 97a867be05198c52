"""Compound-gene activity prediction (paper.md §4c, Table 3 in §6.3; EFAAR `compound_gene_benchmark`).

Recipe, per compound of the ground truth (`compound_gene_interactions.csv`: one row per compound x gene with the
measured potency `nM_value`) that has profiles in the map:

1. Scores: |cosine| between the compound's profile at each concentration and each truth gene's profile in the map,
   and a `max` pseudo-concentration = the largest |cosine| over the evaluated concentrations.
2. Actives: the compound's genes with `nM_value <= 1000` that are in the map. Grey zone: its genes with
   `1000 < nM_value <= 10000`, excluded. Negatives: `max(2 x actives, 20)` genes drawn uniformly without replacement
   from the truth genes in the map minus actives minus grey zone, by `numpy.random.default_rng(seed)` created
   anew for each compound (as EFAAR's `sample_for_item`), drawing from the sorted gene symbols (EFAAR draws from a
   Python set, whose order changes between processes; sorting makes a seed mean the same draw everywhere).
3. Compounds with no active in the map, or fewer eligible negatives than needed, are skipped and counted.
4. Per compound and concentration: non-interpolated average precision (the mean, over actives, of the precision
   at the active's score, ties counted as scikit-learn does) and ROC-AUC; macro mean over compounds, and the
   median and quartiles over compounds (numpy's linear interpolation), as EFAAR's RxRx3-core notebook reports.
5. Random baseline: uniform scores (`default_rng(seed)`, one generator per seed) on the same sampled sets.
6. Seeds 0..99 by default: metrics are means over seeds, `metrics_std` their standard deviations (ddof = 1).

Metric names (DESIGN §6): `compound_gene_ap_<conc>`, `compound_gene_auc_<conc>` and `..._max` (means over
compounds), with `_median`, `_q25` and `_q75` appended for the median and quartiles over compounds; `<conc>` is the
concentration as Python writes the float (`1.0`, `0.0025`, `10.0`). Every statistic is computed per seed and
averaged over seeds. The baselines' standard deviations are in `metrics_std` under `<name>_baseline`, so a z-score
against random can be formed from the JSON.

AP and AUC are computed for all compounds and concentrations of a seed at once on padded arrays (one sort per
row), which `tests/test_compound_gene.py` checks against scikit-learn; `bench/eval_compound_gene.py` times it.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from eval.benchmark_common import (
    BenchmarkNotApplicable,
    BenchmarkResult,
    check_features,
    mean_and_std,
    recipe_text,
    unit_rows,
)
from eval.perturbations import COMPOUND, GENE

ACTIVITY_THRESHOLD_NM = 1000.0
INACTIVITY_THRESHOLD_NM = 10000.0
MIN_NEGATIVES = 20
DEFAULT_SEEDS = tuple(range(100))
INTERACTION_COLUMNS = ("gene_symbol", "nM_value", "treatment")
MAX_CONCENTRATION = "max"
# Statistics over compounds beside the mean: metric-name suffix -> quantile (numpy's default linear interpolation).
COMPOUND_QUANTILES = {"median": 0.5, "q25": 0.25, "q75": 0.75}


def load_compound_gene_interactions(path: str | Path | None = None) -> pd.DataFrame:
    """The ground-truth table: columns `gene_symbol`, `nM_value` (float, nM), `treatment` (+ provenance columns).

    `path` defaults to the bundled `phenom_data/annotations/compound_gene_interactions.csv`.
    """
    if path is None:
        from eval.recall import default_annotations_dir  # finds phenom_data/annotations without importing torch

        path = default_annotations_dir() / "compound_gene_interactions.csv"
    table = pd.read_csv(path)
    return check_interactions(table, source=str(path))


def check_interactions(table: pd.DataFrame, source: str = "interactions") -> pd.DataFrame:
    """`table` with the columns the benchmark needs, `nM_value` as float; a clear error otherwise."""
    missing = [column for column in INTERACTION_COLUMNS if column not in table]
    if missing:
        raise ValueError(f"{source} lacks column(s) {missing}; expected {list(INTERACTION_COLUMNS)}")
    table = table.copy()
    table["nM_value"] = pd.to_numeric(table["nM_value"], errors="coerce")
    if table["nM_value"].isna().any():
        raise ValueError(f"{source} has {int(table['nM_value'].isna().sum())} rows whose nM_value is not a number")
    return table


def format_concentration(value: float) -> str:
    """A concentration as it appears in metric names: Python's float repr (`1.0`, `0.0025`, `10.0`)."""
    return repr(float(value))


# --- vectorized average precision and ROC-AUC -------------------------------------------------------------------


@dataclass(frozen=True)
class _TieRanks:
    """Per element of [rows, width] arrays: how many valid elements score >= it, and its average ascending rank."""

    count_at_least: np.ndarray
    true_at_least: np.ndarray
    average_rank: np.ndarray


def _tie_ranks(scores: np.ndarray, labels: np.ndarray, valid: np.ndarray) -> _TieRanks:
    """One descending sort per row; ties form groups that share their last position and their mean rank."""
    rows, width = scores.shape
    keyed = np.where(valid, scores, -np.inf)
    order = np.argsort(-keyed, axis=1, kind="stable")
    sorted_scores = np.take_along_axis(keyed, order, axis=1)
    starts = np.ones((rows, width), dtype=bool)
    starts[:, 1:] = sorted_scores[:, 1:] != sorted_scores[:, :-1]
    ends = np.ones((rows, width), dtype=bool)
    ends[:, :-1] = starts[:, 1:]
    positions = np.broadcast_to(np.arange(width), (rows, width))
    group_start = np.maximum.accumulate(np.where(starts, positions, 0), axis=1)
    group_end = np.minimum.accumulate(np.where(ends, positions, width)[:, ::-1], axis=1)[:, ::-1]
    true_cumulative = np.cumsum(np.take_along_axis(labels, order, axis=1), axis=1)
    sorted_true_at_least = np.take_along_axis(true_cumulative, group_end, axis=1)
    # Invalid entries sort last (-inf), so the valid ones hold ascending ranks 1..n_valid: the group covering
    # descending positions s..e has ascending ranks n_valid - e .. n_valid - s.
    n_valid = valid.sum(axis=1, keepdims=True)
    sorted_average_rank = n_valid - (group_start + group_end) / 2.0

    def unsort(sorted_values: np.ndarray) -> np.ndarray:
        out = np.empty_like(sorted_values)
        np.put_along_axis(out, order, sorted_values, axis=1)
        return out

    return _TieRanks(
        count_at_least=unsort(group_end + 1),
        true_at_least=unsort(sorted_true_at_least),
        average_rank=unsort(sorted_average_rank),
    )


def _check_rows(scores, labels, valid) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    scores = np.atleast_2d(np.asarray(scores, dtype=np.float64))
    labels = np.atleast_2d(np.asarray(labels)).astype(bool)
    valid = np.ones(scores.shape, dtype=bool) if valid is None else np.atleast_2d(np.asarray(valid, dtype=bool))
    if not scores.shape == labels.shape == valid.shape:
        raise ValueError(f"scores {scores.shape}, labels {labels.shape} and valid {valid.shape} must have one shape")
    if not np.isfinite(scores[valid]).all():
        raise ValueError("scores of valid entries must be finite")
    return scores, labels & valid, valid


def ranking_metrics(scores, labels, valid=None) -> tuple[np.ndarray, np.ndarray]:
    """Average precision and ROC-AUC of every row of padded score arrays, as scikit-learn computes them.

    Args:
        scores: float [rows, width] (or [width]); only entries where `valid` is True count.
        labels: bool/int [rows, width], True for positives.
        valid: bool [rows, width] or None (all valid); padding is False.

    Returns:
        (average_precision [rows], roc_auc [rows]): AP = mean over positives of precision among the entries scoring
        at least as high (`sklearn.metrics.average_precision_score`); AUC = Mann-Whitney U / (positives x
        negatives), ties counting one half (`roc_auc_score`). NaN where a row has no positive (AP, AUC) or no
        negative (AUC).
    """
    scores, labels, valid = _check_rows(scores, labels, valid)
    ranks = _tie_ranks(scores, labels, valid)
    n_positive = labels.sum(axis=1)
    n_negative = valid.sum(axis=1) - n_positive
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = ranks.true_at_least / ranks.count_at_least
        average_precision = np.where(labels, precision, 0.0).sum(axis=1) / n_positive
        positive_rank_sum = np.where(labels, ranks.average_rank, 0.0).sum(axis=1)
        roc_auc = (positive_rank_sum - n_positive * (n_positive + 1) / 2.0) / (n_positive * n_negative)
    average_precision = np.where(n_positive > 0, average_precision, np.nan)
    roc_auc = np.where((n_positive > 0) & (n_negative > 0), roc_auc, np.nan)
    return average_precision, roc_auc


# --- the benchmark -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CompoundPlan:
    """The seed-independent part of one compound's sampled set.

    Attributes:
        compound: index into the compound names given to `sampling_plans`.
        actives: int [n_actives], indices into the gene names (truth genes with nM <= the activity threshold).
        eligible_negatives: int [n_eligible], indices of the genes negatives are drawn from (sorted).
        n_negatives: how many are drawn, `max(2 x n_actives, min_negatives)`.
    """

    compound: int
    actives: np.ndarray
    eligible_negatives: np.ndarray
    n_negatives: int

    def negatives(self, seed: int) -> np.ndarray:
        """int [n_negatives]: the gene indices drawn as negatives for `seed`."""
        return self.eligible_negatives[draw_negatives(len(self.eligible_negatives), self.n_negatives, seed)]


def draw_negatives(n_eligible: int, n_negatives: int, seed: int) -> np.ndarray:
    """Positions drawn uniformly without replacement among `n_eligible`, by a fresh `default_rng(seed)` (EFAAR)."""
    return np.random.default_rng(seed).choice(n_eligible, n_negatives, replace=False)


def sampling_plans(
    truth: pd.DataFrame,
    gene_names: Sequence[str],
    compound_names: Sequence[str],
    activity_threshold_nm: float = ACTIVITY_THRESHOLD_NM,
    inactivity_threshold_nm: float = INACTIVITY_THRESHOLD_NM,
    min_negatives: int = MIN_NEGATIVES,
) -> tuple[list[CompoundPlan], dict[str, int], int]:
    """Actives, grey zone and the negative pool of each compound in `compound_names` (paper.md §4c).

    Args:
        truth: the interactions table (`gene_symbol`, `nM_value`, `treatment`).
        gene_names: the truth genes present in the map, sorted; the negative pool is drawn from them.
        compound_names: the compounds present in the map.

    Returns:
        (plans, skipped, active_pairs_not_in_map): one plan per evaluable compound, in `compound_names` order;
        skipped = {"no_active": compounds with no active gene in the map, "not_enough_negatives": compounds with
        fewer eligible genes than negatives needed}; how many (compound, active gene) pairs name a gene absent from
        the map.
    """
    gene_index = {name: index for index, name in enumerate(gene_names)}
    by_compound = dict(tuple(truth.groupby("treatment", sort=False)))
    plans: list[CompoundPlan] = []
    skipped = {"no_active": 0, "not_enough_negatives": 0}
    active_pairs_not_in_map = 0
    for compound, name in enumerate(compound_names):
        rows = by_compound.get(name)
        if rows is None:
            skipped["no_active"] += 1
            continue
        potency = rows["nM_value"].to_numpy(np.float64)
        genes = rows["gene_symbol"].astype(str).to_numpy()
        active_genes = set(genes[potency <= activity_threshold_nm])
        grey_genes = set(genes[(potency > activity_threshold_nm) & (potency <= inactivity_threshold_nm)])
        actives = np.array(sorted(gene_index[gene] for gene in active_genes if gene in gene_index), dtype=np.int64)
        active_pairs_not_in_map += len(active_genes) - len(actives)
        if len(actives) == 0:
            skipped["no_active"] += 1
            continue
        excluded = active_genes | grey_genes
        eligible = np.array([index for index, gene in enumerate(gene_names) if gene not in excluded], dtype=np.int64)
        n_negatives = max(2 * len(actives), min_negatives)
        if len(eligible) < n_negatives:
            skipped["not_enough_negatives"] += 1
            continue
        plans.append(CompoundPlan(compound, actives, eligible, n_negatives))
    return plans, skipped, active_pairs_not_in_map


def _map_rows(metadata: pd.DataFrame, truth: pd.DataFrame, perturbation_column: str, concentration_column: str,
              modality_column: str | None):
    """Truth genes and truth compounds of the map: by `modality_column` (`gene` / `compound`) when given, else
    genes are the rows without a concentration and compounds the rows with one."""
    for column in (perturbation_column, concentration_column, modality_column):
        if column is not None and column not in metadata:
            raise ValueError(f"map metadata lacks column {column!r}; it has {list(metadata.columns)}")
    concentration = pd.to_numeric(metadata[concentration_column], errors="coerce").to_numpy(np.float64)
    perturbation = metadata[perturbation_column].astype(str).to_numpy()
    if modality_column is None:
        gene_rows, compound_rows = np.isnan(concentration), ~np.isnan(concentration)
    else:
        modality = metadata[modality_column].to_numpy()
        gene_rows, compound_rows = modality == GENE, modality == COMPOUND
        unmeasured = compound_rows & np.isnan(concentration) & np.isin(perturbation, truth["treatment"].unique())
        if unmeasured.any():
            raise BenchmarkNotApplicable(
                f"{int(unmeasured.sum())} truth compound profiles have no concentration; compound-gene activity is "
                "scored per concentration (name the concentration column with --concentration-col)"
            )
    is_gene = gene_rows & np.isin(perturbation, truth["gene_symbol"].unique())
    is_compound = compound_rows & ~np.isnan(concentration) & np.isin(perturbation, truth["treatment"].unique())
    if not is_gene.any() or not is_compound.any():
        raise BenchmarkNotApplicable(
            f"compound-gene activity needs truth genes and truth compounds in the map; found {int(is_gene.sum())} "
            f"gene and {int(is_compound.sum())} compound profiles whose {perturbation_column!r} matches "
            "compound_gene_interactions.csv"
        )
    genes = pd.Series(perturbation[is_gene])
    if genes.duplicated().any():
        raise ValueError(
            f"the map has several profiles for gene(s) {sorted(genes[genes.duplicated()].unique())[:5]}: "
            "aggregate wells to one profile per perturbation first"
        )
    compound_keys = pd.DataFrame({"compound": perturbation[is_compound], "concentration": concentration[is_compound]})
    if compound_keys.duplicated().any():
        first = compound_keys[compound_keys.duplicated()].iloc[0]
        raise ValueError(
            f"the map has several profiles for compound {first['compound']!r} at {first['concentration']}: "
            "aggregate wells to one profile per perturbation and concentration first"
        )
    return np.flatnonzero(is_gene), np.flatnonzero(is_compound), perturbation, concentration


def _choose_concentrations(present: pd.DataFrame, concentrations, min_share: float) -> tuple[list[float], list]:
    """Concentrations to evaluate: the given ones, or those at which >= `min_share` of the compounds have profiles."""
    per_concentration = present.groupby("concentration")["compound"].nunique()
    if concentrations is not None:
        chosen = [float(value) for value in concentrations]
        return chosen, [float(value) for value in per_concentration.index if float(value) not in chosen]
    share = per_concentration / present["compound"].nunique()
    chosen = sorted(float(value) for value in share.index[share >= min_share])
    return chosen, sorted(float(value) for value in share.index[share < min_share])


def compound_gene_benchmark(
    features,
    metadata: pd.DataFrame,
    *,
    interactions: pd.DataFrame | None = None,
    perturbation_column: str = "perturbation",
    concentration_column: str = "concentration",
    modality_column: str | None = None,
    concentrations: Sequence[float] | None = None,
    seeds: Sequence[int] = DEFAULT_SEEDS,
    activity_threshold_nm: float = ACTIVITY_THRESHOLD_NM,
    inactivity_threshold_nm: float = INACTIVITY_THRESHOLD_NM,
    min_negatives: int = MIN_NEGATIVES,
    min_concentration_share: float = 0.1,
) -> BenchmarkResult:
    """Compound-gene activity AP and ROC-AUC per concentration and for `max`, against the random baseline.

    Args:
        features: float [profiles, dimensions], one aggregated profile per row (after batch correction).
        metadata: one row per profile: `perturbation_column` (gene symbol or compound name as the truth's
            `treatment`) and `concentration_column` (micromolar; NaN for genes).
        modality_column: a column saying `gene` or `compound` per row (`eval.perturbations`); None: rows without
            a concentration are genes, rows with one compounds.
        interactions: the ground truth (`load_compound_gene_interactions()` by default).
        concentrations: which to evaluate; None = each concentration at which at least `min_concentration_share`
            of the map's truth compounds have a profile (RxRx3-core: its eight, not the 16 stray wells).
        seeds: one negative sampling and one baseline draw per seed.
        activity_threshold_nm, inactivity_threshold_nm: actives are <= the first; the grey zone is above it up to
            the second.
        min_negatives: the floor of the negative count `max(2 x actives, min_negatives)`.

    Returns:
        `BenchmarkResult` with `compound_gene_ap_<conc|max>` and `compound_gene_auc_<conc|max>`.
    """
    truth = check_interactions(load_compound_gene_interactions() if interactions is None else interactions)
    features = check_features(features, metadata)
    seeds = [int(seed) for seed in seeds]
    if not seeds:
        raise ValueError("seeds is empty: give at least one seed")
    gene_rows, compound_rows, perturbation, concentration = _map_rows(
        metadata, truth, perturbation_column, concentration_column, modality_column
    )
    gene_names = perturbation[gene_rows]
    gene_order = np.argsort(gene_names, kind="stable")
    gene_rows, gene_names = gene_rows[gene_order], gene_names[gene_order]

    present = pd.DataFrame(
        {"compound": perturbation[compound_rows], "concentration": concentration[compound_rows], "row": compound_rows}
    )
    chosen, skipped_concentrations = _choose_concentrations(present, concentrations, min_concentration_share)
    present = present[present["concentration"].isin(chosen)]
    if not chosen or present.empty:
        raise BenchmarkNotApplicable(f"no compound profile at the evaluated concentrations {chosen}")
    compound_names = np.array(sorted(present["compound"].unique()))
    compound_index = {name: index for index, name in enumerate(compound_names)}
    slots = chosen + [MAX_CONCENTRATION]
    slot_names = [format_concentration(value) for value in chosen] + [MAX_CONCENTRATION]

    # |cosine| scores [compounds, concentrations + max, genes]; NaN where a compound lacks a concentration.
    unit = unit_rows(features)
    scores = np.full((len(compound_names), len(slots), len(gene_names)), np.nan)
    compound_at = present["compound"].map(compound_index).to_numpy()
    slot_at = present["concentration"].map({value: slot for slot, value in enumerate(chosen)}).to_numpy()
    scores[compound_at, slot_at] = np.abs(unit[present["row"].to_numpy()] @ unit[gene_rows].T)
    scores[:, -1] = np.nanmax(scores[:, :-1], axis=1)
    has_slot = ~np.isnan(scores[:, :, 0])

    plans, skipped, actives_not_in_map = sampling_plans(
        truth, gene_names, compound_names, activity_threshold_nm, inactivity_threshold_nm, min_negatives
    )
    if not plans:
        raise BenchmarkNotApplicable(
            f"no compound has an active gene in the map and enough negatives (skipped: {skipped})"
        )

    width = max(len(plan.actives) + plan.n_negatives for plan in plans)
    item_compound = np.array([plan.compound for plan in plans])
    members = np.zeros((len(plans), width), dtype=np.int64)
    labels = np.zeros((len(plans), width), dtype=bool)
    member_valid = np.zeros((len(plans), width), dtype=bool)
    for item, plan in enumerate(plans):
        size = len(plan.actives) + plan.n_negatives
        labels[item, : len(plan.actives)] = True
        member_valid[item, :size] = True
        members[item, : len(plan.actives)] = plan.actives
    valid = member_valid[:, None, :] & has_slot[item_compound][:, :, None]  # [items, slots, width]
    evaluated = has_slot[item_compound]  # [items, slots]

    statistics = ["", *(f"_{name}" for name in COMPOUND_QUANTILES)]
    per_seed = {kind + prefix + statistic: np.empty((len(seeds), len(slots)))
                for kind in ("ap", "auc") for prefix in ("", "_base") for statistic in statistics}
    for seed_number, seed in enumerate(seeds):
        draws: dict[tuple[int, int], np.ndarray] = {}
        for item, plan in enumerate(plans):
            key = (len(plan.eligible_negatives), plan.n_negatives)
            if key not in draws:  # default_rng(seed) made anew per compound draws the same for equal pool sizes
                draws[key] = draw_negatives(key[0], key[1], seed)
            start = len(plan.actives)
            members[item, start : start + plan.n_negatives] = plan.eligible_negatives[draws[key]]
        item_scores = scores[item_compound[:, None, None], np.arange(len(slots))[None, :, None], members[:, None, :]]
        item_scores = np.where(valid, item_scores, 0.0)
        baseline_scores = np.random.default_rng(seed).random(item_scores.shape)
        for prefix, values in (("", item_scores), ("_base", baseline_scores)):
            average_precision, roc_auc = ranking_metrics(
                values.reshape(-1, width),
                np.broadcast_to(labels[:, None, :], values.shape).reshape(-1, width),
                valid.reshape(-1, width),
            )
            for kind, metric in (("ap", average_precision), ("auc", roc_auc)):
                metric = metric.reshape(len(plans), len(slots))
                summed = np.where(evaluated, metric, 0.0).sum(axis=0)
                per_seed[kind + prefix][seed_number] = summed / np.maximum(evaluated.sum(axis=0), 1)
                spread = np.where(evaluated, metric, np.nan)
                for statistic, quantile in COMPOUND_QUANTILES.items():
                    with np.errstate(all="ignore"), warnings.catch_warnings():
                        warnings.simplefilter("ignore", RuntimeWarning)  # a slot no compound has: NaN, left out
                        per_seed[f"{kind}{prefix}_{statistic}"][seed_number] = np.nanquantile(spread, quantile, axis=0)

    metrics, metrics_std, baselines = {}, {}, {}
    for slot, suffix in enumerate(slot_names):
        if not evaluated[:, slot].any():  # an explicitly requested concentration no evaluated compound has
            continue
        for kind in ("ap", "auc"):
            for statistic in statistics:
                name = f"compound_gene_{kind}_{suffix}{statistic}"
                metrics[name], metrics_std[name] = mean_and_std(per_seed[kind + statistic][:, slot])
                baselines[name], metrics_std[f"{name}_baseline"] = mean_and_std(
                    per_seed[f"{kind}_base{statistic}"][:, slot])

    counts = {
        "compound_gene_truth_compounds": int(truth["treatment"].nunique()),
        "compound_gene_truth_genes": int(truth["gene_symbol"].nunique()),
        "compound_gene_genes_in_map": len(gene_names),
        "compound_gene_compounds_in_map": len(compound_names),
        "compound_gene_compounds_evaluated": len(plans),
        "compound_gene_compounds_skipped_no_active": skipped["no_active"],
        "compound_gene_compounds_skipped_not_enough_negatives": skipped["not_enough_negatives"],
        "compound_gene_active_pairs_gene_not_in_map": actives_not_in_map,
        **{f"compound_gene_compounds_{name}": int(evaluated[:, slot].sum()) for slot, name in enumerate(slot_names)},
        "compound_gene_concentrations_skipped": ", ".join(format_concentration(v) for v in skipped_concentrations),
        "compound_gene_recipe": recipe_text({
            "score": "|cosine| compound x concentration profile vs gene profile; max = largest over concentrations",
            "actives": f"nM_value <= {activity_threshold_nm:g}",
            "grey_zone_excluded": f"{activity_threshold_nm:g} < nM_value <= {inactivity_threshold_nm:g}",
            "negatives": f"max(2 x actives, {min_negatives}) truth genes in the map, uniform without replacement",
            "rng": "numpy default_rng(seed) per compound; sorted gene symbols",
            "average": "macro mean over compounds; median and quartiles (linear interpolation) over compounds",
            "seeds": f"{len(seeds)} ({seeds[0]}..{seeds[-1]})",
        }),
    }
    return BenchmarkResult(metrics, metrics_std, baselines, counts)


__all__ = [
    "ACTIVITY_THRESHOLD_NM",
    "DEFAULT_SEEDS",
    "COMPOUND_QUANTILES",
    "CompoundPlan",
    "INACTIVITY_THRESHOLD_NM",
    "MIN_NEGATIVES",
    "check_interactions",
    "compound_gene_benchmark",
    "draw_negatives",
    "format_concentration",
    "load_compound_gene_interactions",
    "ranking_metrics",
    "sampling_plans",
]

"""`phenom curate`: Phenoprints-style curation of a pretraining set from well embeddings (paper.md §2).

    phenom curate --embeddings wells.parquet --metadata metadata_rxrx3_core.csv --out DIR
                  [--p-threshold 0.01] [--min-experiments 3] [--min-wells 20] [--draws 1000] [--seed 0]
                  [--control-fraction 0.3] [--correction centerscale]

Steps, in the paper's order (its image QC step is the data loader's: corrupt images are skipped there):
1. Labels: a well's perturbation is the `--perturbation-column` value, by default the RxRx3-core label of
   `phenom eval` (the gene of a CRISPR guide, else the treatment, with the concentration for compounds). Wells
   without a label are dropped (counted as `wells.no_label`). Control wells (`--control-column` containing
   `--control-pattern`, default `treatment` containing `_control`) are not perturbations: they are down-sampled
   (step 4). A perturbation is dropped for the first reason that applies, in the order below.
2. Metadata filter: keep perturbations seen in >= `--min-experiments` experiments and >= `--min-wells` wells
   (`too_few_experiments`, then `too_few_wells`).
3. Consistency filter: embeddings batch-corrected per experiment on its negative controls (`--correction`, default
   `centerscale`: cosines then measure deviation from the experiment's controls, not its shared offset); per
   experiment where a perturbation has >= 2 wells, its consistency p-value (`eval/consistency.py`: replicate mean
   cosine vs `--draws` random well sets of the same size from the same experiment, seeded); the p-values combined
   across experiments by the Cauchy combination test; keep combined p < `--p-threshold` (`not_consistent`;
   `untestable` when no experiment has 2 wells of it).
4. Controls: each experiment keeps `round(--control-fraction x its control wells)` (at least one when it has any)
   drawn at random (seeded). The default 0.3 reads the paper's "30 % negative controls" as the share kept (the
   extraction it comes from is ambiguous, paper.md §2); 1 keeps every control, 0 none.

Outputs in DIR: `well_list.txt` (what `train/pretrain.py` reads as `data.well_list`: one `well_id` per line,
sorted, written atomically), `perturbations.csv` (one row per perturbation: experiments, wells, per-experiment and
combined p-values, decision and reason), `curation_summary.json` (kept / dropped per reason, wells, options);
the summary is also printed.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from phenom_data.atomic import atomic_write_text

from .consistency import DEFAULT_DRAWS, cauchy_combination, consistency_p_values
from .correction import CORRECTIONS, MIN_CONTROLS_PER_BATCH, correct
from .embeddings_file import WELL_ID_COLUMN, join_metadata, read_embeddings, read_metadata
from .perturbations import COMPOUND, RXRX3_CORE, read_labels
from .well_labels import experiment_column_of, has_label

logger = logging.getLogger(__name__)

DROP_REASONS = ("too_few_experiments", "too_few_wells", "untestable", "not_consistent")
DEFAULT_P_THRESHOLD = 0.01
DEFAULT_MIN_EXPERIMENTS = 3
DEFAULT_MIN_WELLS = 20
DEFAULT_CONTROL_FRACTION = 0.3
WELL_LIST_NAME = "well_list.txt"
SUMMARY_NAME = "curation_summary.json"
TABLE_NAME = "perturbations.csv"


@dataclass
class CurationOptions:
    """Thresholds and choices of `phenom curate` (the command-line options)."""

    p_threshold: float = DEFAULT_P_THRESHOLD
    min_experiments: int = DEFAULT_MIN_EXPERIMENTS
    min_wells: int = DEFAULT_MIN_WELLS
    draws: int = DEFAULT_DRAWS
    seed: int = 0
    control_fraction: float = DEFAULT_CONTROL_FRACTION
    correction: str = "centerscale"
    control_key: str = RXRX3_CORE.control_keys[0]
    control_column: str = RXRX3_CORE.perturbation_col
    control_pattern: str = RXRX3_CORE.control_pattern
    perturbation_column: str | None = None
    experiment_column: str | None = None
    min_controls: int = MIN_CONTROLS_PER_BATCH

    def check(self) -> None:
        if not 0 < self.p_threshold <= 1:
            raise ValueError(f"--p-threshold must be in (0, 1], got {self.p_threshold}")
        if self.draws < 1 or 1 / (1 + self.draws) >= self.p_threshold:
            raise ValueError(f"--draws {self.draws} cannot give a p-value below --p-threshold {self.p_threshold} "
                             f"(the smallest is 1 / (1 + draws)); use at least {int(np.ceil(1 / self.p_threshold))}")
        if self.min_experiments < 1 or self.min_wells < 1:
            raise ValueError("--min-experiments and --min-wells must be >= 1")
        if not 0 <= self.control_fraction <= 1:
            raise ValueError(f"--control-fraction must be in [0, 1], got {self.control_fraction}")
        if self.correction not in CORRECTIONS:
            raise ValueError(f"unknown correction {self.correction!r}; choose one of {', '.join(CORRECTIONS)}")


@dataclass
class CurationResult:
    """What curation decided.

    Args:
        table: one row per perturbation: `perturbation`, `experiments`, `wells`, `tested_experiments`,
            `p_values` (per experiment, `experiment=p;...`), `combined_p`, `kept`, `reason` (empty when kept).
        well_ids: the well list, sorted.
        summary: counts and options (the JSON summary).
    """

    table: pd.DataFrame
    well_ids: list[str]
    summary: dict = field(default_factory=dict)


def well_perturbations(metadata: pd.DataFrame, column: str | None) -> np.ndarray:
    """`[num_wells]` perturbation of each well: `column`'s values, or the RxRx3-core label (the gene of a CRISPR
    guide, else the treatment; compounds with their concentration, `name@conc`). Missing values stay None."""
    if column is not None:
        if column not in metadata.columns:
            raise ValueError(f"--perturbation-column '{column}' is not in the metadata "
                             f"(columns: {list(metadata.columns)})")
        return np.array([str(value) if has_label(value) else None for value in metadata[column]], dtype=object)
    mapping = RXRX3_CORE
    if mapping.perturbation_col not in metadata.columns:
        raise ValueError(f"the metadata has no '{mapping.perturbation_col}' column; name the perturbation with "
                         "--perturbation-column")
    present = metadata[mapping.perturbation_col].map(has_label).to_numpy(dtype=bool)
    labels = np.full(len(metadata), None, dtype=object)
    # Metadata without a type column is read as genes only (RxRx1-like gene screens), as curation always has.
    read = read_labels(metadata[present], mapping.with_options(genes_only=mapping.type_col not in metadata or None))
    labels[present] = read.perturbation
    if "concentration" in metadata.columns:
        compound = present.copy()
        compound[present] = read.modality == COMPOUND
        concentration = pd.to_numeric(metadata["concentration"], errors="coerce").to_numpy()
        labels[compound] = [f"{label}@{value:g}" if np.isfinite(value) else label
                            for label, value in zip(labels[compound], concentration[compound], strict=True)]
    return labels


def sample_controls(well_ids: np.ndarray, experiments: np.ndarray, fraction: float, seed: int) -> list[str]:
    """Per experiment (sorted), `round(fraction * n)` of its `n` control wells (at least one when `fraction > 0`),
    drawn with `numpy.random.default_rng([seed, experiment index])`."""
    kept = []
    for index, experiment in enumerate(sorted(set(experiments))):
        members = np.sort(well_ids[experiments == experiment])
        count = 0 if fraction == 0 else min(len(members), max(1, round(fraction * len(members))))
        chosen = np.random.default_rng([seed, index]).choice(len(members), size=count, replace=False)
        kept.extend(members[np.sort(chosen)])
    return kept


def curate(features: np.ndarray, metadata: pd.DataFrame, options: CurationOptions | None = None,
           show_progress: bool = True) -> CurationResult:
    """Curate the wells of `metadata` (rows aligned with `features` `[num_wells, D]`); see the module docstring."""
    options = options or CurationOptions()
    options.check()
    experiment_column = experiment_column_of(metadata, options.experiment_column)
    experiments = metadata[experiment_column].astype(str).to_numpy(dtype=object)
    well_ids = metadata[WELL_ID_COLUMN].astype(str).to_numpy(dtype=object)
    if options.control_column not in metadata.columns:
        raise ValueError(f"the metadata has no control column '{options.control_column}' "
                         f"(columns: {list(metadata.columns)}); pass --control-column")
    control_values = metadata[options.control_column].astype(str)
    is_control = control_values.str.contains(options.control_pattern, regex=False).to_numpy()
    perturbations = well_perturbations(metadata, options.perturbation_column)
    labelled = ~is_control & np.array([label is not None for label in perturbations])

    frame = pd.DataFrame({"perturbation": perturbations[labelled], "experiment": experiments[labelled]})
    table = frame.groupby("perturbation").agg(experiments=("experiment", "nunique"),
                                              wells=("experiment", "size")).reset_index()
    table["reason"] = ""
    table.loc[table["experiments"] < options.min_experiments, "reason"] = "too_few_experiments"
    table.loc[(table["reason"] == "") & (table["wells"] < options.min_wells), "reason"] = "too_few_wells"

    candidates = set(table.loc[table["reason"] == "", "perturbation"])
    corrected = correct(features, (control_values == options.control_key).to_numpy(), experiments,
                        options.correction, options.min_controls)
    if show_progress:
        logger.info(f"consistency of {len(candidates)} perturbations in {len(set(experiments))} experiments "
                    f"({options.draws} null draws per set size)")
    p_values = consistency_p_values(corrected, perturbations, experiments, ~labelled, draws=options.draws,
                                    seed=options.seed, query=candidates)
    table["tested_experiments"] = [len(p_values.get(label, {})) for label in table["perturbation"]]
    table["p_values"] = [";".join(f"{name}={value:.6g}" for name, value in sorted(p_values.get(label, {}).items()))
                         for label in table["perturbation"]]
    table["combined_p"] = [cauchy_combination(list(p_values[label].values())) if label in p_values else np.nan
                           for label in table["perturbation"]]
    testable = table["reason"] == ""
    table.loc[testable & (table["tested_experiments"] == 0), "reason"] = "untestable"
    table.loc[(table["reason"] == "") & ~(table["combined_p"] < options.p_threshold), "reason"] = "not_consistent"
    table["kept"] = table["reason"] == ""
    table = table[["perturbation", "experiments", "wells", "tested_experiments", "p_values", "combined_p", "kept",
                   "reason"]]

    kept_perturbations = set(table.loc[table["kept"], "perturbation"])
    kept_wells = [well_id for well_id, label, labelled_well in zip(well_ids, perturbations, labelled, strict=True)
                  if labelled_well and label in kept_perturbations]
    kept_controls = sample_controls(well_ids[is_control], experiments[is_control], options.control_fraction,
                                    options.seed)
    unlabeled = int((~is_control & ~labelled).sum())
    dropped = {reason: int((table["reason"] == reason).sum()) for reason in DROP_REASONS}
    summary = {
        "perturbations": {"total": len(table), "kept": len(kept_perturbations), "dropped": dropped},
        "wells": {"total": len(well_ids), "perturbation_wells": int(labelled.sum()),
                  "perturbation_wells_kept": len(kept_wells), "control_wells": int(is_control.sum()),
                  "control_wells_kept": len(kept_controls), "no_label": unlabeled,
                  "written": len(kept_wells) + len(kept_controls)},
        "experiments": len(set(experiments)),
        "experiment_column": experiment_column,
        "options": asdict(options),
    }
    return CurationResult(table=table, well_ids=sorted(kept_wells + kept_controls), summary=summary)


def write_curation(result: CurationResult, out_dir: str | os.PathLike) -> dict[str, Path]:
    """`well_list.txt`, `perturbations.csv` and `curation_summary.json` in `out_dir`, each written atomically."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"well_list": out_dir / WELL_LIST_NAME, "table": out_dir / TABLE_NAME, "summary": out_dir / SUMMARY_NAME}
    if not result.well_ids:
        raise ValueError("curation kept no well; loosen the thresholds (--p-threshold, --min-experiments, "
                         "--min-wells) or keep controls (--control-fraction)")
    atomic_write_text(paths["well_list"], "".join(f"{well_id}\n" for well_id in result.well_ids))
    atomic_write_text(paths["table"], result.table.to_csv(index=False))
    summary = {**result.summary, "files": {name: path.name for name, path in paths.items()}}
    atomic_write_text(paths["summary"], json.dumps(summary, indent=2) + "\n")
    return paths


def format_summary(summary: dict) -> str:
    perturbations, wells = summary["perturbations"], summary["wells"]
    dropped = ", ".join(f"{reason} {count}" for reason, count in perturbations["dropped"].items())
    return "\n".join([
        f"perturbations: kept {perturbations['kept']} of {perturbations['total']} (dropped: {dropped})",
        f"wells: {wells['perturbation_wells_kept']} of {wells['perturbation_wells']} perturbation wells, "
        f"{wells['control_wells_kept']} of {wells['control_wells']} controls, {wells['no_label']} without a label "
        f"dropped; {wells['written']} written",
    ])


@dataclass(frozen=True)
class CurationRun:
    """What `run_curation` did: the decisions and the files written (`well_list`, `table`, `summary`)."""

    result: CurationResult
    paths: dict[str, Path]


def run_curation(embeddings: str | os.PathLike, metadata: str | os.PathLike, out: str | os.PathLike,
                 options: CurationOptions | None = None, show_progress: bool = True) -> CurationRun:
    """`phenom curate`: curate the wells of an embeddings file (official layout) joined with its metadata CSV, and
    write the well list, the per-perturbation table and the summary into `out` (see `write_curation`)."""
    options = options or CurationOptions()
    options.check()
    table = read_embeddings(embeddings)
    joined = join_metadata(table, read_metadata(metadata), str(embeddings))
    result = curate(table.features, joined, options, show_progress=show_progress)
    result.summary.update(embeddings=str(embeddings), metadata=str(metadata))
    return CurationRun(result=result, paths=write_curation(result, out))


__all__ = [
    "DROP_REASONS",
    "DEFAULT_P_THRESHOLD",
    "DEFAULT_MIN_EXPERIMENTS",
    "DEFAULT_MIN_WELLS",
    "DEFAULT_CONTROL_FRACTION",
    "CurationOptions",
    "CurationResult",
    "well_perturbations",
    "sample_controls",
    "curate",
    "write_curation",
    "format_summary",
    "CurationRun",
    "run_curation",
]

"""Aggregation of well embeddings to perturbations (paper.md §4a step 1, §4c; EFAAR `aggregate`).

Perturbation labels follow the RxRx3-core metadata: a CRISPR well's gene is the `treatment` before `_guide_`
(`RPLP2_guide_4` -> `RPLP2`; a treatment without a guide suffix is the gene itself); a compound well's perturbation
is its `treatment` at its `concentration`; a treatment containing `_control` (`EMPTY_control`, `CRISPR_control`) is
a control and keeps its name. The map has one row per (perturbation type, perturbation, concentration), the mean or
median of its wells, as the RxRx3-core benchmark notebook groups them; `PerturbationMap.gene_rows()` is the gene
map the known-relationship benchmark reads (controls excluded).

Metadata columns read: `treatment` (required), `perturbation_type` (CRISPR when absent), `concentration` (none when
absent).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

AGGREGATIONS = ("mean", "median")
GUIDE_MARK = "_guide_"
CONTROL_MARK = "_control"
CRISPR = "CRISPR"
COMPOUND = "COMPOUND"


def _column(metadata: pd.DataFrame, name: str) -> pd.Series:
    if name not in metadata.columns:
        raise ValueError(f"the metadata has no '{name}' column (columns: {list(metadata.columns)})")
    return metadata[name]


def is_control(metadata: pd.DataFrame) -> np.ndarray:
    """`[num_wells]` bool: the treatment names a control (contains `_control`)."""
    return _column(metadata, "treatment").astype(str).str.contains(CONTROL_MARK, regex=False).to_numpy()


def perturbation_types(metadata: pd.DataFrame) -> np.ndarray:
    """`[num_wells]` perturbation types (`CRISPR` for every well when the column is absent)."""
    if "perturbation_type" not in metadata.columns:
        return np.full(len(metadata), CRISPR, dtype=object)
    return metadata["perturbation_type"].astype(str).to_numpy(dtype=object)


def perturbation_labels(metadata: pd.DataFrame) -> np.ndarray:
    """`[num_wells]` labels: the gene of a CRISPR guide, else the treatment (compounds and controls)."""
    treatment = _column(metadata, "treatment")
    if treatment.isna().any():
        rows = metadata.index[treatment.isna()][:5].tolist()
        raise ValueError(f"{int(treatment.isna().sum())} wells have no treatment (rows {rows})")
    treatment = treatment.astype(str)
    labels = treatment.str.split(GUIDE_MARK, n=1, regex=False).str[0]
    guides = (perturbation_types(metadata) == CRISPR) & ~is_control(metadata)
    return np.where(guides, labels, treatment).astype(object)


@dataclass
class PerturbationMap:
    """Aggregated embeddings, one row per (perturbation type, perturbation, concentration).

    Args:
        labels: `[num_rows]` perturbation names (genes, compounds, controls).
        perturbation_types: `[num_rows]` `CRISPR`, `COMPOUND`, ...
        concentrations: `[num_rows]` float, µM for compounds, NaN otherwise.
        features: `[num_rows, num_features]` float64 aggregated embeddings.
        num_wells: `[num_rows]` wells aggregated into each row.
    """

    labels: np.ndarray
    perturbation_types: np.ndarray
    concentrations: np.ndarray
    features: np.ndarray
    num_wells: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def is_control(self) -> np.ndarray:
        return np.array([CONTROL_MARK in label for label in self.labels], dtype=bool)

    def select(self, mask: np.ndarray) -> PerturbationMap:
        return PerturbationMap(self.labels[mask], self.perturbation_types[mask], self.concentrations[mask],
                               self.features[mask], self.num_wells[mask])

    def metadata(self) -> pd.DataFrame:
        """One row per map row: `perturbation`, `perturbation_type`, `concentration`, `num_wells`."""
        return pd.DataFrame({"perturbation": self.labels, "perturbation_type": self.perturbation_types,
                             "concentration": self.concentrations, "num_wells": self.num_wells})

    def gene_rows(self) -> PerturbationMap:
        """The gene map: CRISPR rows that are not controls, one per gene."""
        return self.select((self.perturbation_types == CRISPR) & ~self.is_control)


def aggregate(features: np.ndarray, metadata: pd.DataFrame, method: str = "mean") -> PerturbationMap:
    """Aggregate `[num_wells, num_features]` well embeddings (rows aligned with `metadata`) to a map."""
    if method not in AGGREGATIONS:
        raise ValueError(f"unknown aggregation {method!r}; choose one of {', '.join(AGGREGATIONS)}")
    features = np.asarray(features, dtype=np.float64)
    if len(features) != len(metadata):
        raise ValueError(f"{len(features)} embedding rows but {len(metadata)} metadata rows")
    if "concentration" in metadata.columns:
        concentrations = pd.to_numeric(metadata["concentration"], errors="coerce").to_numpy(dtype=np.float64)
    else:
        concentrations = np.full(len(metadata), np.nan)
    keys = pd.DataFrame({"type": perturbation_types(metadata), "label": perturbation_labels(metadata),
                         "concentration": concentrations})
    groups = keys.groupby(["type", "label", "concentration"], dropna=False, sort=True)
    codes = groups.ngroup().to_numpy()
    frame = pd.DataFrame(features)
    aggregated = frame.groupby(codes, sort=True).agg(method).to_numpy(dtype=np.float64)
    first_rows = keys.iloc[np.unique(codes, return_index=True)[1]]  # codes are 0 .. num_rows - 1
    return PerturbationMap(
        labels=first_rows["label"].to_numpy(dtype=object),
        perturbation_types=first_rows["type"].to_numpy(dtype=object),
        concentrations=first_rows["concentration"].to_numpy(dtype=np.float64),
        features=aggregated,
        num_wells=np.bincount(codes, minlength=len(aggregated)),
    )


__all__ = [
    "AGGREGATIONS",
    "GUIDE_MARK",
    "CONTROL_MARK",
    "CRISPR",
    "COMPOUND",
    "is_control",
    "perturbation_types",
    "perturbation_labels",
    "PerturbationMap",
    "aggregate",
]

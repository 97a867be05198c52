"""Aggregation of well embeddings to perturbations (paper.md §4a step 1, §4c; EFAAR `aggregate`).

What a well is (its perturbation label, type, concentration, whether it is a control) comes from one `WellDesign`
(`eval/perturbations.py`). The map has one row per (perturbation type, perturbation, concentration), the mean or
median of its wells, as the RxRx3-core benchmark notebook groups them; `PerturbationMap.gene_rows()` is the gene map
the known-relationship benchmark reads (gene rows that are not controls).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .perturbations import COMPOUND, GENE, WellDesign

AGGREGATIONS = ("mean", "median")


@dataclass
class PerturbationMap:
    """Aggregated embeddings, one row per (perturbation type, perturbation, concentration).

    Args:
        labels: `[num_rows]` perturbation names (genes, compounds, controls).
        perturbation_types: `[num_rows]` the metadata's type text (`CRISPR`, `COMPOUND`, ...).
        concentrations: `[num_rows]` float, µM for compounds, NaN otherwise.
        features: `[num_rows, num_features]` float64 aggregated embeddings.
        num_wells: `[num_rows]` wells aggregated into each row.
        modalities: `[num_rows]` `gene`, `compound` or `other` (`eval.perturbations`).
        is_control: `[num_rows]` bool, a control row (never scored).
    """

    labels: np.ndarray
    perturbation_types: np.ndarray
    concentrations: np.ndarray
    features: np.ndarray
    num_wells: np.ndarray
    modalities: np.ndarray
    is_control: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def select(self, mask: np.ndarray) -> PerturbationMap:
        return PerturbationMap(self.labels[mask], self.perturbation_types[mask], self.concentrations[mask],
                               self.features[mask], self.num_wells[mask], self.modalities[mask], self.is_control[mask])

    def metadata(self) -> pd.DataFrame:
        """One row per map row: `perturbation`, `perturbation_type`, `concentration`, `num_wells`, `modality`,
        `is_control`."""
        return pd.DataFrame({"perturbation": self.labels, "perturbation_type": self.perturbation_types,
                             "concentration": self.concentrations, "num_wells": self.num_wells,
                             "modality": self.modalities, "is_control": self.is_control})

    def gene_rows(self) -> PerturbationMap:
        """The gene map: gene rows that are not controls, one per gene."""
        return self.select((self.modalities == GENE) & ~self.is_control)

    def compound_rows(self) -> PerturbationMap:
        """Compound rows that are not controls (one per compound and concentration)."""
        return self.select((self.modalities == COMPOUND) & ~self.is_control)


def map_rows(design: WellDesign) -> tuple[np.ndarray, np.ndarray]:
    """`(codes [num_wells], first [num_rows])`: each well's map row (rows sorted by type, label, concentration) and
    the first well of each row."""
    keys = pd.DataFrame({"type": design.perturbation_type, "label": design.perturbation,
                         "concentration": design.concentration})
    codes = keys.groupby(["type", "label", "concentration"], dropna=False, sort=True).ngroup().to_numpy()
    return codes, np.unique(codes, return_index=True)[1]  # codes are 0 .. num_rows - 1


def aggregate(features: np.ndarray, design: WellDesign, method: str = "mean") -> PerturbationMap:
    """Aggregate `[num_wells, num_features]` well embeddings (rows aligned with `design`) to a map."""
    if method not in AGGREGATIONS:
        raise ValueError(f"unknown aggregation {method!r}; choose one of {', '.join(AGGREGATIONS)}")
    features = np.asarray(features, dtype=np.float64)
    if len(features) != len(design):
        raise ValueError(f"{len(features)} embedding rows but {len(design)} metadata rows")
    codes, first = map_rows(design)
    aggregated = pd.DataFrame(features).groupby(codes, sort=True).agg(method).to_numpy(dtype=np.float64)
    return PerturbationMap(
        labels=design.perturbation[first],
        perturbation_types=design.perturbation_type[first],
        concentrations=design.concentration[first],
        features=aggregated,
        num_wells=np.bincount(codes, minlength=len(aggregated)),
        modalities=design.modality[first],
        is_control=design.is_control[first],
    )


__all__ = ["AGGREGATIONS", "PerturbationMap", "aggregate", "map_rows"]

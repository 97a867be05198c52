"""Plate layout and batch effects of a synthetic dataset: which well holds what, and how each plate is off.

Layout follows RxRx3-core (paper.md §7.1): gene experiments `gene-NNN` hold CRISPR wells (`<GENE>_guide_<k>`) and
`EMPTY_control` wells (gene `EMPTY_control`); compound experiments `compound-NNN` hold compound wells at the eight
RxRx3-core concentrations plus `EMPTY_control` and `CRISPR_control` wells (gene blank), as in the real metadata.
Plates are 1536-well (rows A..AF, columns 01..48). In each gene experiment a gene's wells share one plate, so plate
effects confound gene means unless they are corrected per plate (as in real screens, where a plate holds a subset
of the library, the same subset in every experiment).

Batch effects are drawn per experiment and per plate (`PlateEffects`): focus blur, illumination fall-off, stain
signal-to-noise, cell density and size, and a "culture state" shift in phenotype space shared by the plate's wells.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

import numpy as np

from phenom_data import RXRX3_CORE_CONCENTRATIONS
from phenom_data.synth.biology import BiologyPlan
from phenom_data.synth.config import SynthConfig
from phenom_data.synth.render import PHENOTYPE_AXES, PlateEffects

PLATE_ROWS = tuple(string.ascii_uppercase) + tuple(f"A{letter}" for letter in "ABCDEF")  # A..Z, AA..AF
PLATE_COLUMNS = 48
ADDRESSES = tuple(f"{row}{column:02d}" for row in PLATE_ROWS for column in range(1, PLATE_COLUMNS + 1))
CULTURE_SHIFT = 1.0  # size of a plate's phenotype-space shift, relative to phenotype_scale (batch_strength 1)


@dataclass(frozen=True)
class WellSpec:
    """One well: its metadata row (RxRx3-core columns) and what to render.

    `phenotype` [len(PHENOTYPE_AXES)] is the perturbation's planted effect plus the plate's culture shift;
    `index` is the well's position in the dataset (it seeds the well's own generator).
    """

    index: int
    experiment_name: str
    plate: int
    address: str
    gene: str
    treatment: str
    smiles: str
    concentration: str
    perturbation_type: str
    phenotype: np.ndarray

    @property
    def well_id(self) -> str:
        return f"{self.experiment_name}_{self.plate}_{self.address}"

    @property
    def key_prefix(self) -> str:
        """`{experiment}/Plate{plate}/{address}_s1`: a channel's `__key__` adds `_{channel}`."""
        return f"{self.experiment_name}/Plate{self.plate}/{self.address}_s1"


@dataclass
class Layout:
    wells: list[WellSpec]
    plate_effects: dict[tuple[str, int], PlateEffects]
    culture_shift: dict[tuple[str, int], np.ndarray]


def format_concentration(value: float) -> str:
    """Concentrations as the RxRx3-core metadata writes them (`0.0025`, `1.0`, `10.0`)."""
    return repr(float(value))


def _draw_plate_effects(config: SynthConfig, experiment_index: int, plate: int) -> tuple[PlateEffects, np.ndarray]:
    strength = config.batch_strength
    experiment_rng = np.random.default_rng([config.seed, 1, experiment_index])
    blur_base = 1.0 + strength * experiment_rng.uniform(-0.4, 0.6)
    gain_base = np.exp(strength * experiment_rng.normal(0.0, 0.3, 6))
    density_base = np.exp(strength * experiment_rng.normal(0.0, 0.2))
    cell_scale = float(np.exp(strength * experiment_rng.normal(0.0, 0.07)))
    rng = np.random.default_rng([config.seed, 1, experiment_index, plate])
    blur = np.maximum(blur_base + strength * (rng.uniform(-0.4, 0.4) + rng.uniform(-0.15, 0.15, 6)), 0.4)
    illumination = np.minimum(strength * rng.uniform(0.0, 1.2) * rng.uniform(0.5, 1.0, 6), 1.5)
    effects = PlateEffects(
        blur=tuple(float(x) for x in blur),
        illumination=tuple(float(x) for x in illumination),
        illumination_center=tuple(float(x) for x in rng.uniform(0.2, 0.8, 2)),
        gain=tuple(float(x) for x in gain_base * np.exp(strength * rng.normal(0.0, 0.2, 6))),
        background=tuple(float(x) for x in rng.uniform(2.0, 10.0, 6)),
        density=float(density_base * np.exp(strength * rng.normal(0.0, 0.2))),
        cell_scale=cell_scale,
    )
    shift = rng.standard_normal(len(PHENOTYPE_AXES))
    shift *= strength * CULTURE_SHIFT * config.phenotype_scale / np.linalg.norm(shift)
    return effects, shift


def _place(rng: np.random.Generator, entries: list[dict], experiment: str, plate: int) -> list[dict]:
    if len(entries) > len(ADDRESSES):
        raise ValueError(f"{experiment} plate {plate} needs {len(entries)} wells but a plate has {len(ADDRESSES)}; "
                         "use more plates")
    slots = np.sort(rng.choice(len(ADDRESSES), len(entries), replace=False))
    order = rng.permutation(len(entries))
    placed = [dict(entries[i], experiment_name=experiment, plate=plate, address=ADDRESSES[slot])
              for slot, i in zip(slots, order, strict=True)]
    return placed  # address order, as a plate is imaged


def build_layout(config: SynthConfig, plan: BiologyPlan) -> Layout:
    """Every well of the dataset in order (experiment, plate, address), with its plate's effects."""
    zero = np.zeros(len(PHENOTYPE_AXES))
    rows: list[dict] = []
    plate_effects, culture_shift = {}, {}
    experiments = [(f"gene-{k + 1:03d}", "CRISPR") for k in range(config.experiments)]
    experiments += [(f"compound-{k + 1:03d}", "COMPOUND") for k in range(config.compound_experiments)]
    # The library's plate layout: plate k of every gene experiment holds the same genes (addresses reshuffled).
    library_order = [plan.genes[i] for i in np.random.default_rng([config.seed, 3]).permutation(len(plan.genes))]
    for experiment_index, (experiment, kind) in enumerate(experiments):
        rng = np.random.default_rng([config.seed, 4, experiment_index])
        per_plate: list[list[dict]] = [[] for _ in range(config.plates)]
        if kind == "CRISPR":
            for position, gene in enumerate(library_order):
                for guide in range(config.guides):
                    entry = dict(gene=gene, treatment=f"{gene}_guide_{guide + 1}", smiles="", concentration="",
                                 phenotype=plan.guide_phenotypes[gene][guide])
                    per_plate[position % config.plates] += [entry] * config.replicates
            controls = [dict(gene="EMPTY_control", treatment="EMPTY_control", smiles="", concentration="",
                             phenotype=zero)] * config.controls_per_plate
        else:
            entries = [dict(gene="", treatment=compound.name, smiles=compound.smiles,
                            concentration=format_concentration(concentration),
                            phenotype=plan.compound_phenotype(compound, concentration))
                       for compound in plan.compounds for concentration in RXRX3_CORE_CONCENTRATIONS
                       for _ in range(config.compound_replicates)]
            for position, i in enumerate(rng.permutation(len(entries))):
                per_plate[position % config.plates].append(entries[i])
            controls = [dict(gene="", treatment=name, smiles="", concentration="", phenotype=zero)
                        for name in ("EMPTY_control", "CRISPR_control") for _ in range(config.controls_per_plate)]
        for plate_index, entries in enumerate(per_plate):
            plate = plate_index + 1
            effects, shift = _draw_plate_effects(config, experiment_index, plate)
            plate_effects[(experiment, plate)] = effects
            culture_shift[(experiment, plate)] = shift
            for row in _place(rng, entries + controls, experiment, plate):
                rows.append(dict(row, perturbation_type=kind, phenotype=row["phenotype"] + shift))
    wells = [WellSpec(index=index, **row) for index, row in enumerate(rows)]
    return Layout(wells, plate_effects, culture_shift)


__all__ = ["ADDRESSES", "RXRX3_CORE_CONCENTRATIONS", "Layout", "WellSpec", "build_layout", "format_concentration"]

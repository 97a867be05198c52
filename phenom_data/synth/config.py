"""Sizes and knobs of a synthetic RxRx-like dataset (`SynthConfig`) and its named presets (`SIZES`).

A config fixes everything that shapes the data; with the seed it fixes every byte written. The presets:
`tiny` (a handful of genes and wells, for fast tests), `small` (the demo default: issue 7's >= 100 genes, about 40
in >= 8 CORUM complexes, >= 10 compounds, >= 25 further genes of the compound-gene table, >= 3 experiments) and
`medium` (>= 3 experiments and >= 20 wells per gene, for probing on held-out experiments and curation).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

IMAGE_SIZES = (256, 512)


@dataclass(frozen=True)
class SynthConfig:
    """What to generate. Counts are per dataset unless a field says otherwise.

    >>> SynthConfig.from_size("small", seed=3).num_genes
    120

    Fields:
        seed: the generator seed; the same seed and config give the same bytes in every file.
        image_size: side of each channel image in px: 256 (one model view per well) or 512 (four tiles, as in
            RxRx3-core). Pixel size is fixed, so 512 px fields hold four times the cells.
        num_genes: genes in the map (CRISPR knock-outs).
        num_complexes, genes_per_complex: CORUM complexes planted as shared phenotype components, and how many of
            each complex's genes are in the map; no other gene of the map has a CORUM partner in the map.
        num_compounds: compounds from the compound-gene table whose active targets (<= 1000 nM) are all in the map.
        max_compound_actives: most active targets a chosen compound may have.
        num_interaction_genes: further genes of the compound-gene table in the map (negatives for the
            compound-gene benchmark).
        null_fraction: fraction of the genes that neither sit in a planted complex nor are a chosen compound's
            target that get no phenotype at all (a knock-out that looks like a control).
        phenotype_scale: typical norm of a gene's phenotype vector (axis units, see `PHENOTYPE_AXES`).
        guides: CRISPR guides per gene (`<GENE>_guide_<k>`, k = 1..guides).
        replicates: wells per guide in each gene experiment.
        experiments: gene experiments (`gene-001`, ...); every gene is in every gene experiment.
        compound_experiments: compound experiments (`compound-001`, ...); every compound at every concentration
            is in every compound experiment.
        compound_replicates: wells per compound and concentration in each compound experiment.
        plates: plates per experiment; a gene's wells of one experiment all sit on one plate.
        controls_per_plate: `EMPTY_control` wells per plate (compound plates also get as many `CRISPR_control`).
        batch_strength: scales every batch effect (0 turns them off; 1 is the default strength).
        jp2_compression: JPEG-2000 compression ratio of each channel image (1 = lossless).
        rows_per_shard: image rows (one channel of one well each) per parquet shard; not a multiple of 6 by
            default, so some wells straddle two shards, as they may on the Hub.
    """

    seed: int = 0
    image_size: int = 256
    num_genes: int = 120
    num_complexes: int = 8
    genes_per_complex: int = 5
    num_compounds: int = 12
    max_compound_actives: int = 3
    num_interaction_genes: int = 25
    null_fraction: float = 0.3
    phenotype_scale: float = 2.5
    guides: int = 2
    replicates: int = 1
    experiments: int = 3
    compound_experiments: int = 1
    compound_replicates: int = 2
    plates: int = 3
    controls_per_plate: int = 16
    batch_strength: float = 1.0
    jp2_compression: float = 10.0
    rows_per_shard: int = 4000

    def __post_init__(self):
        if self.image_size not in IMAGE_SIZES:
            raise ValueError(f"image_size must be one of {IMAGE_SIZES} (model views are 256 px), "
                             f"got {self.image_size}")
        positive = ("num_genes", "genes_per_complex", "max_compound_actives", "guides", "replicates", "experiments",
                    "compound_replicates", "plates", "controls_per_plate", "rows_per_shard")
        for name in positive:
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("num_complexes", "num_compounds", "num_interaction_genes", "compound_experiments"):
            if int(getattr(self, name)) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.num_complexes and self.genes_per_complex < 2:
            raise ValueError(f"genes_per_complex must be >= 2 to plant a complex, got {self.genes_per_complex}")
        if self.num_compounds and not self.compound_experiments:
            raise ValueError("num_compounds > 0 needs compound_experiments >= 1")
        if not 0.0 <= self.null_fraction <= 1.0:
            raise ValueError(f"null_fraction must be in [0, 1], got {self.null_fraction}")
        if self.phenotype_scale <= 0 or self.batch_strength < 0 or self.jp2_compression < 1:
            raise ValueError("phenotype_scale must be > 0, batch_strength >= 0 and jp2_compression >= 1")

    @classmethod
    def from_size(cls, size: str = "small", **overrides) -> SynthConfig:
        """The preset `size` (`SIZES`) with `overrides` (field name -> value; None values are ignored)."""
        if size not in SIZES:
            raise ValueError(f"unknown size {size!r}; sizes: {', '.join(SIZES)}")
        unknown = set(overrides) - {field.name for field in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown SynthConfig fields: {', '.join(sorted(unknown))}")
        values = {**SIZES[size], **{key: value for key, value in overrides.items() if value is not None}}
        return cls(**values)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


SIZES: dict[str, dict] = {
    "tiny": dict(
        num_genes=16, num_complexes=2, genes_per_complex=3, num_compounds=2, num_interaction_genes=4, guides=1,
        replicates=1, experiments=2, compound_experiments=1, compound_replicates=1, plates=1, controls_per_plate=4,
    ),
    "small": dict(),
    "medium": dict(
        num_genes=150, num_complexes=10, num_compounds=16, num_interaction_genes=30, guides=3, replicates=2,
        experiments=4, compound_experiments=2, compound_replicates=2, plates=4, controls_per_plate=24,
    ),
}

__all__ = ["IMAGE_SIZES", "SIZES", "SynthConfig"]

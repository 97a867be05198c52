"""A JUMP-CP-shaped screen for the eval tests: `Metadata_*` columns, CRISPR plates with the no-guide and
non-targeting controls, compound plates with DMSO, JUMP's `crispr.csv` table of gene symbols, and well embeddings
with planted biology and plate effects.

As in JUMP-CP's cpg0016, a gene is one CRISPR perturbation (`Metadata_JCP2022`, its symbol in `crispr.csv`) with
one well on each CRISPR plate; a compound has one well on each compound plate. Genes of a few CORUM complexes share
their complex's direction; half the compounds have a phenotype; every plate adds its own offset and per-feature gain
to all its wells, controls included. There is no `well_id` column: it is `{Source}_{Plate}_{Well}`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from eval_data import complex_genes

from eval.embeddings_file import write_embeddings
from eval.recall import load_relationships
from phenom_data import ANNOTATIONS_DIR

DMSO, NO_GUIDE, NON_TARGETING = "JCP2022_033924", "JCP2022_800001", "JCP2022_800002"


@dataclass
class JumpScreen:
    """`metadata` (JUMP columns, no `well_id`), `crispr` (JUMP's crispr.csv columns), `features`
    `[num_wells, hidden_size]` float32 aligned with `metadata`, the gene symbols and compound ids screened."""

    metadata: pd.DataFrame
    crispr: pd.DataFrame
    features: np.ndarray
    genes: list[str]
    compounds: list[str]

    @property
    def well_ids(self) -> list[str]:
        columns = ["Metadata_Source", "Metadata_Plate", "Metadata_Well"]
        return self.metadata[columns].astype(str).agg("_".join, axis=1).tolist()

    def write(self, folder) -> tuple:
        """`(embeddings.parquet, metadata.csv, crispr.csv)` in `folder`."""
        paths = folder / "embeddings.parquet", folder / "metadata.csv", folder / "crispr.csv"
        write_embeddings(paths[0], self.well_ids, self.features, provenance={"model": "planted", "dataset": "jump"})
        self.metadata.to_csv(paths[1], index=False)
        self.crispr.to_csv(paths[2], index=False)
        return paths


def jump_screen(crispr_plates: int = 4, compound_plates: int = 3, num_complexes: int = 5, num_unrelated: int = 20,
                num_compounds: int = 16, controls_per_plate: int = 8, dmso_per_plate: int = 12,
                hidden_size: int = 32, plate_strength: float = 3.0, noise: float = 0.5, seed: int = 0) -> JumpScreen:
    rng = np.random.default_rng(seed)
    complexes = complex_genes(num_complexes)
    corum_genes = set(load_relationships(ANNOTATIONS_DIR, "CORUM").ravel())
    unrelated = sorted(set(load_relationships(ANNOTATIONS_DIR, "StringDB").ravel()) - corum_genes)[:num_unrelated]
    directions = {name: rng.normal(size=hidden_size) for name in complexes}
    gene_vectors = {gene: directions[name] + 0.5 * rng.normal(size=hidden_size)
                    for name, members in complexes.items() for gene in members}
    gene_vectors.update({gene: rng.normal(size=hidden_size) for gene in unrelated})
    genes = list(gene_vectors)
    gene_ids = {gene: f"JCP2022_8{index + 10:05d}" for index, gene in enumerate(genes)}
    compounds = [f"JCP2022_0{index + 10:05d}" for index in range(num_compounds)]
    compound_vectors = {name: (1.5 * rng.normal(size=hidden_size) if index % 2 == 0 else np.zeros(hidden_size))
                        for index, name in enumerate(compounds)}

    rows, features = [], []

    def plate_wells(plate: str, plate_type: str, source: str, content: list[tuple[str, np.ndarray]]):
        offset = plate_strength * rng.normal(size=hidden_size)
        gain = np.exp(0.3 * rng.normal(size=hidden_size))
        order = rng.permutation(len(content))
        for index, position in enumerate(order):
            name, vector = content[position]
            well = f"{chr(ord('A') + index // 24)}{index % 24 + 1:02d}"
            rows.append({"Metadata_Source": source, "Metadata_Batch": f"{source}_batch1", "Metadata_Plate": plate,
                         "Metadata_Well": well, "Metadata_JCP2022": name, "Metadata_PlateType": plate_type})
            features.append(gain * (vector + offset) + noise * rng.normal(size=hidden_size))

    zero = np.zeros(hidden_size)
    for plate in range(crispr_plates):
        content = [(gene_ids[gene], gene_vectors[gene]) for gene in genes]
        content += [(NON_TARGETING, zero)] * controls_per_plate + [(NO_GUIDE, zero)] * (controls_per_plate // 2)
        plate_wells(f"CP{plate + 1:02d}", "CRISPR", "source_13", content)
    for plate in range(compound_plates):
        content = [(name, compound_vectors[name]) for name in compounds] + [(DMSO, zero)] * dmso_per_plate
        plate_wells(f"BR{plate + 1:02d}", "COMPOUND", "source_2", content)
    crispr = pd.DataFrame({"Metadata_JCP2022": [NO_GUIDE, NON_TARGETING, *gene_ids.values()],
                           "Metadata_NCBI_Gene_ID": ["", "", *[str(1000 + index) for index in range(len(genes))]],
                           "Metadata_Symbol": ["no-guide", "non-targeting", *gene_ids]})
    return JumpScreen(pd.DataFrame(rows), crispr, np.asarray(features, dtype=np.float32), genes, compounds)


__all__ = ["DMSO", "NON_TARGETING", "NO_GUIDE", "JumpScreen", "jump_screen"]

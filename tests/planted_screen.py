"""A test-sized screen of well embeddings with planted structure, in the RxRx3-core metadata schema, for the probe
and curation tests (until `phenom synth` data is used end to end).

Every gene is screened in every experiment (as RxRx1's siRNAs), a few wells per experiment, beside `EMPTY_control`
wells. A gene with a phenotype moves its wells along its own direction; a no-phenotype gene's wells look like
controls. Every experiment adds its own offset and per-feature gain to all its wells. Embeddings are given for
several blocks whose gene signal rises to a peak block and falls after it (the paper's intermediate best block).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from eval.embeddings_file import write_embeddings


@dataclass
class PlantedScreen:
    """`metadata` (one row per well), `features` `{block: [num_wells, hidden_size] float32}`, the genes with and
    without a phenotype, and the genes that fail the metadata filters (too few experiments or wells)."""

    metadata: pd.DataFrame
    features: dict[int, np.ndarray]
    phenotype_genes: list[str]
    no_phenotype_genes: list[str]
    rare_genes: dict[str, str]

    def write(self, directory, name: str = "planted") -> tuple[list, object]:
        """Per-block embeddings files `<name>_block<k>.parquet` and `metadata.csv` in `directory`."""
        paths = []
        for block, features in self.features.items():
            path = directory / f"{name}_block{block}.parquet"
            write_embeddings(path, self.metadata["well_id"], features,
                             provenance={"model": name, "dataset": "planted-screen", "block": block})
            paths.append(path)
        metadata_path = directory / "metadata.csv"
        self.metadata.to_csv(metadata_path, index=False)
        return paths, metadata_path


def planted_screen(num_experiments: int = 4, num_phenotype_genes: int = 8, num_no_phenotype_genes: int = 6,
                   wells_per_gene: int = 5, controls_per_experiment: int = 10, hidden_size: int = 16,
                   block_signal: tuple[float, ...] = (0.3, 1.2, 0.6), noise: float = 1.0,
                   batch_strength: float = 2.0, seed: int = 0) -> PlantedScreen:
    rng = np.random.default_rng(seed)
    phenotype = [f"GENE{index:02d}" for index in range(num_phenotype_genes)]
    no_phenotype = [f"NOPH{index:02d}" for index in range(num_no_phenotype_genes)]
    directions = {gene: 2.0 * rng.normal(size=hidden_size) for gene in phenotype}
    # A gene screened in too few experiments, and one with too few wells (both have a phenotype).
    rare = {"RARE_EXPERIMENTS": "too_few_experiments", "RARE_WELLS": "too_few_wells"}
    directions.update({gene: 2.0 * rng.normal(size=hidden_size) for gene in rare})
    rows, features = [], {block: [] for block in range(1, len(block_signal) + 1)}
    for experiment_index in range(num_experiments):
        experiment = f"gene-{experiment_index + 1:03d}"
        offset = batch_strength * rng.normal(size=hidden_size)
        gain = np.exp(0.3 * rng.normal(size=hidden_size))
        wells = [gene for gene in phenotype + no_phenotype for _ in range(wells_per_gene)]
        if experiment_index < 2:
            wells += ["RARE_EXPERIMENTS"] * 12
        wells += ["RARE_WELLS"] * 2
        wells += [None] * controls_per_experiment
        for index, gene in enumerate(wells):
            address = f"{chr(ord('A') + index // 24)}{index % 24 + 1:02d}"
            rows.append({"well_id": f"{experiment}_1_{address}", "experiment_name": experiment, "plate": 1,
                         "address": address, "gene": gene,
                         "treatment": f"{gene}_guide_1" if gene else "EMPTY_control", "SMILES": None,
                         "concentration": np.nan, "perturbation_type": "CRISPR", "cell_type": "HUVEC"})
            shared_noise = noise * rng.normal(size=hidden_size)
            direction = directions.get(gene, np.zeros(hidden_size))
            for block, signal in enumerate(block_signal, start=1):
                block_noise = 0.3 * noise * rng.normal(size=hidden_size)
                features[block].append(gain * (offset + signal * direction + shared_noise + block_noise))
    return PlantedScreen(
        metadata=pd.DataFrame(rows),
        features={block: np.asarray(values, dtype=np.float32) for block, values in features.items()},
        phenotype_genes=phenotype, no_phenotype_genes=no_phenotype, rare_genes=rare,
    )


__all__ = ["PlantedScreen", "planted_screen"]

"""The planted biology: which genes, complexes and compounds a synthetic dataset holds, and their phenotypes.

Everything comes from the bundled annotations (`phenom_data.ANNOTATIONS_DIR`): complexes from
`CORUM_clusters.tsv`, checked against the pair file `CORUM.txt` that the recall benchmark reads (paper.md §4a), and
compounds with their measured potencies from `compound_gene_interactions.csv` (paper.md §4c: active <= 1000 nM,
grey zone (1000, 10000] nM).

A phenotype is a vector over `PHENOTYPE_AXES`. Genes of one planted complex share a component
(`COMPLEX_SHARE` of the direction); other genes get a private direction, and `null_fraction` of the free genes none.
Guides of a gene scale its vector by an efficiency and add a small off-target part. A compound at concentration c
acts like knocking out each of its targets t in the map with Hill occupancy c / (c + potency_t) (one Hill slope),
plus a mild toxicity component at high doses.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from phenom_data import ANNOTATIONS_DIR
from phenom_data.synth.config import SynthConfig
from phenom_data.synth.render import PHENOTYPE_AXES

ACTIVE_NM = 1000.0  # targets at or below this potency are a compound's actives (the benchmark's threshold)
GREY_ZONE_NM = 10000.0  # (ACTIVE_NM, GREY_ZONE_NM] is excluded by the benchmark; such targets act weakly here
COMPLEX_SHARE = 0.85  # cosine between a complex gene's phenotype direction and its complex component
OFF_TARGET = 0.15  # relative size of a guide's own (off-target) phenotype part
TOXICITY = 0.6  # size of the toxicity component at full occupancy, relative to phenotype_scale
TOXICITY_AXES = {"cell_count": -1.0, "rounded_cells": 1.0, "cell_heterogeneity": 0.6, "nucleus_size": -0.4}


@dataclass(frozen=True)
class Annotations:
    """The annotation tables the plan draws from."""

    corum_partners: dict[str, frozenset[str]]  # gene -> its partners in CORUM.txt
    complexes: list[tuple[str, list[str]]]  # CORUM_clusters.tsv rows: (name, genes)
    compound_targets: dict[str, dict[str, float]]  # compound (treatment name) -> gene -> nM

    @classmethod
    def load(cls, directory: Path = ANNOTATIONS_DIR) -> Annotations:
        directory = Path(directory)
        partners: dict[str, set[str]] = {}
        with open(directory / "CORUM.txt", newline="") as handle:
            for row in csv.DictReader(handle):
                first, second = row["entity1"], row["entity2"]
                if first != second:
                    partners.setdefault(first, set()).add(second)
                    partners.setdefault(second, set()).add(first)
        complexes = []
        with open(directory / "CORUM_clusters.tsv") as handle:
            for line in handle:
                name, _, genes = line.rstrip("\n").partition("\t")
                complexes.append((name, list(dict.fromkeys(genes.split()))))
        targets: dict[str, dict[str, float]] = {}
        with open(directory / "compound_gene_interactions.csv", newline="") as handle:
            for row in csv.DictReader(handle):
                per_compound = targets.setdefault(row["treatment"], {})
                per_compound[row["gene_symbol"]] = min(float(row["nM_value"]), per_compound.get(row["gene_symbol"],
                                                                                                 np.inf))
        return cls({gene: frozenset(p) for gene, p in partners.items()}, complexes, targets)

    def partners(self, gene: str) -> frozenset[str]:
        return self.corum_partners.get(gene, frozenset())


@dataclass
class Compound:
    """A chosen compound: `targets` maps each gene of the table to its potency (nM)."""

    name: str
    smiles: str
    targets: dict[str, float]
    toxicity_uM: float  # concentration of half-maximal toxicity

    @property
    def active_targets(self) -> list[str]:
        return sorted(gene for gene, nM in self.targets.items() if nM <= ACTIVE_NM)


@dataclass
class BiologyPlan:
    """Genes, complexes, compounds and their phenotype vectors (each [len(PHENOTYPE_AXES)], float64)."""

    genes: list[str]
    roles: dict[str, str]  # gene -> complex | compound_target | interaction_table | other
    complexes: list[tuple[str, list[str]]]  # (CORUM complex name, genes of it in the map)
    complex_components: np.ndarray  # [num_complexes, axes], unit vectors
    gene_phenotypes: dict[str, np.ndarray]
    guide_phenotypes: dict[str, np.ndarray]  # gene -> [guides, axes]
    guide_efficiency: dict[str, np.ndarray]  # gene -> [guides]
    compounds: list[Compound]
    toxicity_direction: np.ndarray
    corum_pairs: list[tuple[str, str]] = field(default_factory=list)  # CORUM.txt pairs within the map

    def compound_phenotype(self, compound: Compound, concentration_uM: float) -> np.ndarray:
        """The phenotype of `compound` at `concentration_uM`: its in-map targets' knock-outs weighted by occupancy."""
        effect = np.zeros(len(PHENOTYPE_AXES))
        for gene, nM in compound.targets.items():
            if gene in self.gene_phenotypes and nM <= GREY_ZONE_NM:
                effect += occupancy(concentration_uM, nM / 1000.0) * self.gene_phenotypes[gene]
        return effect + occupancy(concentration_uM, compound.toxicity_uM) * self.toxicity_direction

    @property
    def genes_without_phenotype(self) -> list[str]:
        return [gene for gene in self.genes if not np.any(self.gene_phenotypes[gene])]


def occupancy(concentration_uM: float, potency_uM: float) -> float:
    """Hill occupancy c / (c + potency) with slope 1 (both in uM)."""
    return float(concentration_uM / (concentration_uM + potency_uM))


def _unit(rng: np.random.Generator) -> np.ndarray:
    vector = rng.standard_normal(len(PHENOTYPE_AXES))
    return vector / np.linalg.norm(vector)


def _isolated(gene: str, chosen: set[str], annotations: Annotations) -> bool:
    return not (annotations.partners(gene) & chosen)


def _pick_complexes(config: SynthConfig, annotations: Annotations, rng: np.random.Generator, chosen: set[str]):
    """`num_complexes` groups of `genes_per_complex` genes, each a CORUM clique with no CORUM edge to the rest."""
    picked = []
    order = rng.permutation(len(annotations.complexes))
    for index in order:
        if len(picked) == config.num_complexes:
            break
        name, members = annotations.complexes[index]
        free = [gene for gene in members if gene not in chosen and _isolated(gene, chosen, annotations)]
        if len(free) < config.genes_per_complex or len(members) > 4 * config.genes_per_complex:
            continue
        group = [free[i] for i in sorted(rng.choice(len(free), config.genes_per_complex, replace=False))]
        clique = all(b in annotations.partners(a) for i, a in enumerate(group) for b in group[i + 1:])
        if clique:
            picked.append((name, group))
            chosen.update(group)
    if len(picked) < config.num_complexes:
        raise ValueError(f"found only {len(picked)} CORUM complexes with {config.genes_per_complex} free genes; "
                         f"lower num_complexes or genes_per_complex")
    return picked


def _pick_compounds(config: SynthConfig, annotations: Annotations, rng: np.random.Generator, chosen: set[str],
                    phenotyped: set[str]) -> list[str]:
    """Compounds with 1..max_compound_actives actives, each already a phenotyped gene or CORUM-isolated."""
    names = sorted(annotations.compound_targets)
    picked = []
    for index in rng.permutation(len(names)):
        if len(picked) == config.num_compounds:
            break
        name = names[index]
        actives = sorted(g for g, nM in annotations.compound_targets[name].items() if nM <= ACTIVE_NM)
        if not 1 <= len(actives) <= config.max_compound_actives:
            continue
        new = [gene for gene in actives if gene not in chosen]
        if any(gene in chosen and gene not in phenotyped for gene in actives):
            continue
        if not all(_isolated(gene, chosen | (set(new) - {gene}), annotations) for gene in new):
            continue
        picked.append(name)
        chosen.update(new)
        phenotyped.update(actives)
    if len(picked) < config.num_compounds:
        raise ValueError(f"found only {len(picked)} compounds with 1..{config.max_compound_actives} actives that fit")
    return picked


def plan_biology(config: SynthConfig, annotations: Annotations | None = None) -> BiologyPlan:
    """Choose genes, complexes and compounds and draw their phenotypes, deterministically from `config.seed`."""
    annotations = annotations or Annotations.load()
    rng = np.random.default_rng([config.seed, 0])
    chosen: set[str] = set()
    roles: dict[str, str] = {}

    complexes = _pick_complexes(config, annotations, rng, chosen)
    for _, group in complexes:
        roles.update(dict.fromkeys(group, "complex"))
    phenotyped = set(chosen)
    compound_names = _pick_compounds(config, annotations, rng, chosen, phenotyped)
    for name in compound_names:
        for gene, nM in annotations.compound_targets[name].items():
            if nM <= ACTIVE_NM:
                roles.setdefault(gene, "compound_target")

    # Further genes of the compound-gene table: negatives for every chosen compound where possible.
    near_targets = {g for name in compound_names for g, nM in annotations.compound_targets[name].items()
                    if nM <= GREY_ZONE_NM}
    table_genes = sorted({g for targets in annotations.compound_targets.values() for g in targets})
    table_order = [table_genes[i] for i in rng.permutation(len(table_genes))]
    table_order.sort(key=lambda gene: gene in near_targets)  # stable: clean negatives first
    added = 0
    for gene in table_order:
        if added == config.num_interaction_genes:
            break
        if gene not in chosen and _isolated(gene, chosen, annotations):
            chosen.add(gene)
            roles[gene] = "interaction_table"
            added += 1
    if added < config.num_interaction_genes:
        raise ValueError(f"found only {added} further compound-gene table genes without a CORUM partner in the map")

    if len(chosen) > config.num_genes:
        raise ValueError(
            f"num_genes={config.num_genes} is too few: {config.num_complexes} complexes x {config.genes_per_complex} "
            f"genes, the {config.num_compounds} compounds' active targets and {config.num_interaction_genes} "
            f"compound-gene table genes already need {len(chosen)} genes")
    # Fill with CORUM genes that have no CORUM partner in the map (annotated, so they enter the recall null).
    universe = sorted({gene for _, members in annotations.complexes for gene in members})
    for index in rng.permutation(len(universe)):
        if len(chosen) == config.num_genes:
            break
        gene = universe[index]
        if gene not in chosen and _isolated(gene, chosen, annotations):
            chosen.add(gene)
            roles[gene] = "other"
    genes = sorted(chosen)

    # Phenotypes.
    scale = config.phenotype_scale
    components = np.stack([_unit(rng) for _ in complexes]) if complexes else np.zeros((0, len(PHENOTYPE_AXES)))
    membership = {gene: k for k, (_, group) in enumerate(complexes) for gene in group}
    free = [gene for gene in genes if gene not in phenotyped]
    num_null = int(round(config.null_fraction * len(free)))
    null = {free[i] for i in rng.permutation(len(free))[:num_null]}
    gene_phenotypes, guide_phenotypes, guide_efficiency = {}, {}, {}
    for gene in genes:
        strength = scale * rng.uniform(0.7, 1.3)
        direction = _unit(rng)
        if gene in membership:
            direction = COMPLEX_SHARE * components[membership[gene]] + np.sqrt(1 - COMPLEX_SHARE**2) * direction
            direction /= np.linalg.norm(direction)
        phenotype = np.zeros(len(PHENOTYPE_AXES)) if gene in null else strength * direction
        efficiency = rng.uniform(0.7, 1.0, config.guides)
        off_target = OFF_TARGET * scale * rng.standard_normal((config.guides, len(PHENOTYPE_AXES)))
        off_target /= np.sqrt(len(PHENOTYPE_AXES))
        gene_phenotypes[gene] = phenotype
        guide_efficiency[gene] = efficiency
        guide_phenotypes[gene] = efficiency[:, None] * phenotype[None, :] + (0.0 if gene in null else off_target)

    toxicity = np.zeros(len(PHENOTYPE_AXES))
    for axis, weight in TOXICITY_AXES.items():
        toxicity[PHENOTYPE_AXES.index(axis)] = weight
    toxicity *= TOXICITY * scale / np.linalg.norm(toxicity)
    compounds = [
        Compound(name=name, smiles=placeholder_smiles(name), targets=dict(sorted(annotations.compound_targets[name]
                 .items())), toxicity_uM=float(np.exp(rng.uniform(np.log(20.0), np.log(200.0)))))
        for name in compound_names
    ]
    gene_set = set(genes)
    pairs = sorted({tuple(sorted((a, b))) for a in genes for b in annotations.partners(a) if b in gene_set})
    return BiologyPlan(genes, {g: roles[g] for g in genes}, complexes, components, gene_phenotypes, guide_phenotypes,
                       guide_efficiency, compounds, toxicity, pairs)


def placeholder_smiles(name: str) -> str:
    """The SMILES column's value for a compound: a marked placeholder (no structure database is reachable offline)."""
    return f"PLACEHOLDER:{name}"


__all__ = ["ACTIVE_NM", "GREY_ZONE_NM", "Annotations", "BiologyPlan", "Compound", "occupancy", "placeholder_smiles",
           "plan_biology"]

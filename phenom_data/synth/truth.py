"""`ground_truth.json` and the dataset's `README.md`: what was planted, in a documented schema.

Schema `phenom-synth-ground-truth/1` (every vector is a list over `phenotype_axes`; 0 = unperturbed):

- `schema`, `generator` {package, version}, `size` (preset name), `config` (every `SynthConfig` field),
  `phenotype_axes` [names], `channels` [stain of channel 1..6].
- `genes`: {symbol: {`role` (complex | compound_target | interaction_table | other), `complex` (CORUM complex
  name or null), `has_phenotype`, `phenotype` [axes], `guides`: {`<GENE>_guide_<k>`: {`efficiency`, `phenotype`}}}}.
- `genes_without_phenotype`: [symbols] (their knock-outs look like controls).
- `complexes`: [{`name` (CORUM_clusters.tsv), `genes` [the complex's genes in the map], `component` [axes]}].
- `corum_pairs`: [[a, b]] every CORUM.txt pair with both genes in the map (exactly the planted complexes' pairs).
- `compounds`: {treatment name: {`smiles`, `smiles_is_placeholder`, `active_targets` [<= 1000 nM],
  `targets` {gene: {`nM`, `class` (active | grey_zone | inactive), `in_dataset`}}, `toxicity_uM`,
  `phenotype_by_concentration` {concentration as in the metadata: [axes]}}}; a compound acts through its
  in-dataset targets with nM <= 10000 by Hill occupancy c / (c + nM / 1000) plus toxicity c / (c + toxicity_uM).
- `thresholds_nM` {active, grey_zone}, `concentrations_uM` [the eight RxRx3-core concentrations].
- `batches`: {experiment: {`perturbation_type`, `plates`: {plate: {blur, illumination, illumination_center, gain,
  background, density, cell_scale, culture_shift [axes]}}}}.
- `counts`: wells, images, shards, genes, compounds, experiments, plates.
"""

from __future__ import annotations

import json
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

from phenom_data.synth.biology import ACTIVE_NM, GREY_ZONE_NM, BiologyPlan
from phenom_data.synth.config import SynthConfig
from phenom_data.synth.layout import RXRX3_CORE_CONCENTRATIONS, Layout, format_concentration
from phenom_data.synth.render import CHANNELS, PHENOTYPE_AXES
from phenom_data.synth.writer import METADATA_COLUMNS, METADATA_FILE

SCHEMA = "phenom-synth-ground-truth/1"


def _package_version() -> str:
    try:
        return version("phenom")
    except PackageNotFoundError:  # a source checkout that was never installed
        return "unknown"


def _vector(values: np.ndarray) -> list[float]:
    return [round(float(x), 6) for x in values]


def _target_class(nM: float) -> str:
    return "active" if nM <= ACTIVE_NM else "grey_zone" if nM <= GREY_ZONE_NM else "inactive"


def ground_truth(config: SynthConfig, size: str, plan: BiologyPlan, layout: Layout, num_shards: int) -> dict:
    """The `ground_truth.json` payload (schema in this module's docstring)."""
    complex_of = {gene: name for name, group in plan.complexes for gene in group}
    genes = {
        gene: {
            "role": plan.roles[gene],
            "complex": complex_of.get(gene),
            "has_phenotype": bool(np.any(plan.gene_phenotypes[gene])),
            "phenotype": _vector(plan.gene_phenotypes[gene]),
            "guides": {
                f"{gene}_guide_{k + 1}": {"efficiency": round(float(plan.guide_efficiency[gene][k]), 6),
                                          "phenotype": _vector(plan.guide_phenotypes[gene][k])}
                for k in range(config.guides)
            },
        }
        for gene in plan.genes
    }
    in_map = set(plan.genes)
    compounds = {
        compound.name: {
            "smiles": compound.smiles,
            "smiles_is_placeholder": True,
            "active_targets": compound.active_targets,
            "targets": {gene: {"nM": nM, "class": _target_class(nM), "in_dataset": gene in in_map}
                        for gene, nM in compound.targets.items()},
            "toxicity_uM": round(compound.toxicity_uM, 6),
            "phenotype_by_concentration": {format_concentration(c): _vector(plan.compound_phenotype(compound, c))
                                           for c in RXRX3_CORE_CONCENTRATIONS},
        }
        for compound in plan.compounds
    }
    batches: dict[str, dict] = {}
    for (experiment, plate), effects in layout.plate_effects.items():
        entry = batches.setdefault(experiment, {"perturbation_type": "CRISPR" if experiment.startswith("gene")
                                                else "COMPOUND", "plates": {}})
        entry["plates"][str(plate)] = {
            "blur": _vector(effects.blur), "illumination": _vector(effects.illumination),
            "illumination_center": _vector(effects.illumination_center), "gain": _vector(effects.gain),
            "background": _vector(effects.background), "density": round(effects.density, 6),
            "cell_scale": round(effects.cell_scale, 6),
            "culture_shift": _vector(layout.culture_shift[(experiment, plate)]),
        }
    return {
        "schema": SCHEMA,
        "generator": {"package": "phenom", "module": "phenom_data.synth", "version": _package_version()},
        "size": size,
        "config": config.to_dict(),
        "phenotype_axes": list(PHENOTYPE_AXES),
        "channels": list(CHANNELS),
        "genes": genes,
        "genes_without_phenotype": plan.genes_without_phenotype,
        "complexes": [{"name": name, "genes": group, "component": _vector(component)}
                      for (name, group), component in zip(plan.complexes, plan.complex_components, strict=True)],
        "corum_pairs": [list(pair) for pair in plan.corum_pairs],
        "compounds": compounds,
        "thresholds_nM": {"active": ACTIVE_NM, "grey_zone": GREY_ZONE_NM},
        "concentrations_uM": list(RXRX3_CORE_CONCENTRATIONS),
        "batches": batches,
        "counts": {
            "wells": len(layout.wells), "images": 6 * len(layout.wells), "shards": num_shards,
            "genes": len(plan.genes), "compounds": len(plan.compounds), "experiments": len(batches),
            "plates": len(layout.plate_effects),
        },
    }


def load_ground_truth(dataset_dir: str | Path) -> dict:
    """Read `ground_truth.json` of a generated dataset, checking its schema tag."""
    path = Path(dataset_dir) / "ground_truth.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: is {dataset_dir} a dataset written by `phenom synth`?")
    payload = json.loads(path.read_text())
    if payload.get("schema") != SCHEMA:
        raise ValueError(f"{path} has schema {payload.get('schema')!r}; this code reads {SCHEMA!r}")
    return payload


def dataset_readme(truth: dict) -> str:
    """The dataset directory's README.md (a Hub dataset card whose YAML points `datasets` at the shards)."""
    counts, config = truth["counts"], truth["config"]
    axes = ", ".join(truth["phenotype_axes"])
    channels = "\n".join(f"{k}. {name}" for k, name in enumerate(truth["channels"], start=1))
    return f"""---
configs:
- config_name: default
  data_files:
  - split: train
    path: data/train-*
license: other
tags:
- synthetic
- cell-painting
- microscopy
---

# Synthetic RxRx-like Cell Painting dataset (phenom synth)

Generated by `phenom synth` (Phenom {truth["generator"]["version"]}), size `{truth["size"]}`, seed
{config["seed"]}. The images are drawn by a program, not taken from cells: every file is in the layout and schema of
Recursion's RxRx3-core on the Hugging Face Hub, so code written for RxRx3-core reads it unchanged, and the biology
planted in it is written down in `ground_truth.json`, so benchmarks have a known right answer.

## Contents

| | |
| --- | --- |
| wells | {counts["wells"]} ({counts["images"]} channel images of {config["image_size"]} x {config["image_size"]} px) |
| experiments | {counts["experiments"]} ({config["experiments"]} gene, {config["compound_experiments"]} compound), \
{config["plates"]} plates each |
| genes | {counts["genes"]}, {config["guides"]} guides each, {config["replicates"]} well(s) per guide and gene \
experiment |
| compounds | {counts["compounds"]} at the eight RxRx3-core concentrations, {config["compound_replicates"]} well(s) \
each per compound experiment |
| controls | {config["controls_per_plate"]} `EMPTY_control` per plate; compound plates as many `CRISPR_control` |

- `data/train-000NN-of-000MM.parquet` ({counts["shards"]} shards): `__key__` (string,
  `{{experiment}}/Plate{{plate}}/{{address}}_s1_{{channel}}`) and `jp2` (`Image`: one 8-bit JPEG-2000 channel image
  per row, six consecutive rows per well; a well may straddle two shards).
- `{METADATA_FILE}`: one row per well with exactly the RxRx3-core columns `{",".join(METADATA_COLUMNS)}`.
- `ground_truth.json`: genes with their phenotype vectors, guides, CORUM complexes and pairs, compounds with their
  targets and potencies, plate batch effects (schema `{truth["schema"]}`, documented in
  `phenom_data/synth/truth.py`).

Channels (the Recursion Cell Painting order of RxRx1/RxRx3):
{channels}

## What is planted

- Each perturbation moves the cells along named phenotype axes ({axes}): sizes, shapes, counts, textures, spots
  and co-localization, which survive the per-image, per-channel standardization of Phenom models (a gain or
  offset per channel would not).
- Genes of one CORUM complex share a phenotype component; no other gene pair of the map is a CORUM pair. Guides of
  a gene agree up to an efficiency and a small off-target part. `genes_without_phenotype` look like controls.
- A compound acts like knocking out its targets that are in the map (active <= 1000 nM; grey-zone targets up to
  10000 nM act weakly), by Hill occupancy over the eight concentrations, plus a mild toxicity at high doses.
- Batch effects per experiment and plate: focus blur, illumination fall-off, stain signal-to-noise, cell density
  and size, and a shift of every well's phenotype on the plate. In gene experiments a gene's wells share one plate,
  so per-plate (or per-experiment on controls) correction matters.

## Caveats

- **SMILES are placeholders** (`PLACEHOLDER:<compound name>`): no structure database is reachable where the
  generator runs, and none is invented. Compound names and potencies are real entries of the EFAAR
  `compound_gene_interactions.csv`.
- Gene symbols, complexes and compounds come from the annotation files bundled with Phenom
  (`phenom_data/annotations/`); CORUM-derived content is CC-BY-NC 4.0 and the compound-gene table aggregates
  ChEMBL, BindingDB and other sources: research use only (see the LICENSE and README there). The images and
  metadata themselves are synthetic.
"""


__all__ = ["SCHEMA", "dataset_readme", "ground_truth", "load_ground_truth"]

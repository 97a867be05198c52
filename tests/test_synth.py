"""`phenom synth`: the RxRx3-core schema and layout, the planted biology (checked against the bundled annotations and
visible after per-image per-channel standardization), determinism, resume, and errors on bad input."""

import csv
import hashlib
import io
import json
import re

import numpy as np
import pyarrow.parquet as pq
import pytest
from filelock import FileLock
from PIL import Image
from scipy import ndimage

from phenom_data import ANNOTATIONS_DIR
from phenom_data.synth import (
    METADATA_COLUMNS,
    PHENOTYPE_AXES,
    RXRX3_CORE_CONCENTRATIONS,
    SynthConfig,
    generate,
    image_features,
    load_ground_truth,
)
from phenom_data.synth.biology import Annotations, occupancy, plan_biology
from phenom_data.synth.layout import ADDRESSES, build_layout
from phenom_data.synth.render import PlateEffects, render_well

KEY_PATTERN = re.compile(r"^(?P<experiment>(gene|compound)-\d{3})/Plate(?P<plate>\d+)/(?P<address>[A-Z]{1,2}\d{2})_s1_"
                         r"(?P<channel>[1-6])$")
JP2_SIGNATURE = b"\x00\x00\x00\x0cjP  \r\n\x87\n"
# The signal test runs on a reduced `small` to fit the suite's time budget: the same 8 CORUM complexes of 5 genes and
# 3 gene experiments of 3 plates, but 40 (not 80) genes without a CORUM partner, one guide, no compound experiment
# (294 wells instead of 1,152). The closing note of issue 7 gives the numbers for the full `small`.
SIGNAL_CONFIG = dict(size="small", num_genes=80, guides=1, num_compounds=0, compound_experiments=0,
                     controls_per_plate=6)


def _cached_dataset(tmp_path_factory, name, **kwargs):
    """Generate a dataset once per test session, shared by the xdist workers through a file lock."""
    root = tmp_path_factory.getbasetemp().parent / "synth-datasets"
    root.mkdir(exist_ok=True)
    with FileLock(str(root / f"{name}.lock")):
        return generate(root / name, progress=False, workers=1, **kwargs)


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    return _cached_dataset(tmp_path_factory, "tiny-seed0", size="tiny", seed=0, rows_per_shard=100)


@pytest.fixture(scope="session")
def signal_dataset(tmp_path_factory):
    return _cached_dataset(tmp_path_factory, "signal-seed0", seed=0, **SIGNAL_CONFIG)


def _read_metadata(path):
    with open(path / "metadata_rxrx3_core.csv", newline="") as handle:
        reader = csv.DictReader(handle)
        return reader.fieldnames, list(reader)


def _read_images(path):
    """{__key__: jp2 bytes} over every shard, in shard and row order."""
    images = {}
    for shard in sorted((path / "data").glob("*.parquet")):
        table = pq.read_table(shard).to_pydict()
        for key, image in zip(table["__key__"], table["jp2"], strict=True):
            images[key] = image["bytes"]
    return images


def _digests(path):
    return {str(file.relative_to(path)): hashlib.sha256(file.read_bytes()).hexdigest()
            for file in sorted(path.rglob("*")) if file.is_file() and ".lock" not in file.name}


# Schema and layout ---------------------------------------------------------------------------------------------


def test_shards_have_the_rxrx3_core_image_schema(tiny_dataset):
    from datasets import Features

    shards = sorted((tiny_dataset / "data").glob("*.parquet"))
    assert len(shards) > 1  # rows_per_shard=100: several shards, wells straddle them
    for index, shard in enumerate(shards):
        assert shard.name == f"train-{index:05d}-of-{len(shards):05d}.parquet"
        schema = pq.read_schema(shard)
        assert schema.names == ["__key__", "jp2"]
        assert str(schema.field("__key__").type) == "string"
        assert str(schema.field("jp2").type) == "struct<bytes: binary, path: string>"
        assert Features.from_arrow_schema(schema) == image_features()


def test_keys_and_images_are_rxrx3_core_channels(tiny_dataset):
    images = _read_images(tiny_dataset)
    keys = list(images)
    assert all(KEY_PATTERN.match(key) for key in keys)
    # Six consecutive rows per well, channels 1..6 in order.
    assert len(keys) % 6 == 0
    for start in range(0, len(keys), 6):
        prefixes = {key.rsplit("_", 1)[0] for key in keys[start:start + 6]}
        assert len(prefixes) == 1
        assert [key.rsplit("_", 1)[1] for key in keys[start:start + 6]] == list("123456")
    for data in list(images.values())[:12]:
        assert data.startswith(JP2_SIGNATURE)
        image = Image.open(io.BytesIO(data))
        assert image.format == "JPEG2000" and image.mode == "L" and image.size == (256, 256)
        assert np.asarray(image).std() > 1  # cells, not a blank field


def test_metadata_has_exactly_the_rxrx3_core_columns_and_values(tiny_dataset):
    columns, rows = _read_metadata(tiny_dataset)
    assert tuple(columns) == METADATA_COLUMNS
    truth = load_ground_truth(tiny_dataset)
    concentrations = {repr(c) for c in RXRX3_CORE_CONCENTRATIONS}
    assert concentrations == {"0.0025", "0.01", "0.025", "0.1", "0.25", "1.0", "2.5", "10.0"}
    for row in rows:
        assert row["well_id"] == f"{row['experiment_name']}_{row['plate']}_{row['address']}"
        assert row["address"] in ADDRESSES and 1 <= int(row["plate"]) <= 48
        assert row["cell_type"] == "HUVEC"
        if row["experiment_name"].startswith("gene-"):
            assert row["perturbation_type"] == "CRISPR" and row["SMILES"] == row["concentration"] == ""
            if row["gene"] == "EMPTY_control":
                assert row["treatment"] == "EMPTY_control"
            else:
                assert row["gene"] in truth["genes"]
                assert re.fullmatch(rf"{re.escape(row['gene'])}_guide_\d+", row["treatment"])
        else:
            assert row["perturbation_type"] == "COMPOUND" and row["gene"] == ""
            if row["treatment"] in ("EMPTY_control", "CRISPR_control"):
                assert row["SMILES"] == row["concentration"] == ""
            else:
                assert row["treatment"] in truth["compounds"]
                assert row["SMILES"] == truth["compounds"][row["treatment"]]["smiles"] != ""
                assert row["concentration"] in concentrations
    # Controls in every plate: EMPTY_control on gene plates, EMPTY_control and CRISPR_control on compound plates.
    plates = {(row["experiment_name"], row["plate"]) for row in rows}
    for experiment, plate in plates:
        treatments = {row["treatment"] for row in rows if (row["experiment_name"], row["plate"]) == (experiment,
                                                                                                    plate)}
        expected = {"EMPTY_control"} if experiment.startswith("gene-") else {"EMPTY_control", "CRISPR_control"}
        assert expected <= treatments
    # Metadata and images describe the same wells, each once.
    well_ids = [row["well_id"] for row in rows]
    assert len(set(well_ids)) == len(well_ids)
    image_wells = {re.sub(r"^(.*)/Plate(\d+)/(\w+)_s1_\d$", r"\1_\2_\3", key) for key in _read_images(tiny_dataset)}
    assert image_wells == set(well_ids)


def test_datasets_loads_the_directory_the_hub_way(tiny_dataset):
    from datasets import Image as ImageFeature
    from datasets import load_dataset

    stream = load_dataset(str(tiny_dataset), split="train", streaming=True)
    assert isinstance(stream.features["jp2"], ImageFeature)
    row = next(iter(stream))
    assert KEY_PATTERN.match(row["__key__"]) and row["jp2"].size == (256, 256)
    readme = (tiny_dataset / "README.md").read_text()
    assert "PLACEHOLDER" in readme and "ground_truth.json" in readme


def test_the_rxrx3_core_reader_loads_it_through_the_hub_code_path(tiny_dataset):
    from phenom_data import RxRx3CoreWells

    _, rows = _read_metadata(tiny_dataset)
    images = _read_images(tiny_dataset)
    wells = list(RxRx3CoreWells(str(tiny_dataset)))
    assert sorted(well.well_id for well in wells) == sorted(row["well_id"] for row in rows)
    for well in wells[:5]:
        experiment, plate, address = well.well_id.split("_")
        expected = np.stack([np.asarray(Image.open(io.BytesIO(images[f"{experiment}/Plate{plate}/{address}_s1_{c}"])))
                             for c in range(1, 7)])
        assert np.array_equal(well.image, expected)
        assert well.metadata["experiment_name"] == experiment
    # Two ranks split the wells (which straddle shards here) exactly once between them.
    parts = [{well.well_id for well in RxRx3CoreWells(str(tiny_dataset), rank=rank, world_size=2)}
             for rank in range(2)]
    assert not parts[0] & parts[1] and parts[0] | parts[1] == {well.well_id for well in wells}


def test_a_synthetic_well_feeds_the_image_processor(tiny_dataset):
    from modeling_phenom import PhenomImageProcessor

    images = _read_images(tiny_dataset)
    prefix = next(iter(images)).rsplit("_", 1)[0]
    well = np.stack([np.asarray(Image.open(io.BytesIO(images[f"{prefix}_{c}"]))) for c in range(1, 7)])
    assert PhenomImageProcessor()(well)["pixel_values"].shape == (1, 6, 256, 256)
    # 512 px fields (RxRx3-core size) hold four times the area and tile into four views.
    effects = PlateEffects(blur=(1.0,) * 6, illumination=(0.2,) * 6, illumination_center=(0.5, 0.5), gain=(1.0,) * 6,
                           background=(5.0,) * 6, density=1.0, cell_scale=1.0)
    large = render_well(np.zeros(len(PHENOTYPE_AXES)), effects, 512, np.random.default_rng(0))
    assert large.shape == (6, 512, 512) and large.dtype == np.uint8
    assert PhenomImageProcessor()(large)["pixel_values"].shape == (4, 6, 256, 256)


# Planted biology ------------------------------------------------------------------------------------------------


def _cosine(a, b):
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_small_plan_meets_the_issue_sizes_and_matches_the_annotations():
    annotations = Annotations.load()
    config = SynthConfig.from_size("small")
    plan = plan_biology(config, annotations)
    genes = set(plan.genes)
    assert len(genes) >= 100
    complex_genes = {gene for _, group in plan.complexes for gene in group}
    assert len(plan.complexes) >= 8 and 35 <= len(complex_genes) <= 45
    # The planted complexes are exactly the CORUM.txt pairs inside the map: every other gene has no partner.
    planted_pairs = {tuple(sorted((a, b))) for _, group in plan.complexes for a in group for b in group if a < b}
    corum_pairs = {tuple(sorted((a, b))) for a in genes for b in annotations.partners(a) if b in genes}
    assert planted_pairs == corum_pairs == set(plan.corum_pairs)
    with open(ANNOTATIONS_DIR / "compound_gene_interactions.csv", newline="") as handle:
        table = list(csv.DictReader(handle))
    potency = {(row["treatment"], row["gene_symbol"]): float(row["nM_value"]) for row in table}
    table_genes = {row["gene_symbol"] for row in table}
    assert len(plan.compounds) >= 10
    for compound in plan.compounds:
        actives = compound.active_targets
        assert actives and all(potency[(compound.name, gene)] <= 1000 for gene in actives)
        assert set(actives) <= genes and all(np.any(plan.gene_phenotypes[gene]) for gene in actives)
        # Enough negatives for the compound-gene benchmark: table genes that are neither active nor grey zone.
        near = {gene for gene, nM in compound.targets.items() if nM <= 10000}
        assert len((table_genes & genes) - near) >= max(2 * len(actives), 20)
    all_actives = {gene for compound in plan.compounds for gene in compound.active_targets}
    assert len((table_genes & genes) - all_actives) >= 25
    assert plan.genes_without_phenotype and not set(plan.genes_without_phenotype) & (complex_genes | all_actives)


def test_guides_agree_and_compounds_act_like_their_targets_with_dose():
    plan = plan_biology(SynthConfig.from_size("small", guides=3))
    for gene in plan.genes:
        if np.any(plan.gene_phenotypes[gene]):
            assert all(_cosine(guide, plan.gene_phenotypes[gene]) > 0.8 for guide in plan.guide_phenotypes[gene])
        else:
            assert not np.any(plan.guide_phenotypes[gene])
    for compound in plan.compounds:
        # Dose: every target's occupancy grows over the eight concentrations, and so does the effect overall.
        for nM in compound.targets.values():
            assert all(np.diff([occupancy(c, nM / 1000) for c in RXRX3_CORE_CONCENTRATIONS]) > 0)
        lowest, highest = (np.linalg.norm(plan.compound_phenotype(compound, c)) for c in (0.0025, 10.0))
        assert highest > lowest
        target_sum = sum(plan.gene_phenotypes[gene] for gene in compound.active_targets)
        assert _cosine(plan.compound_phenotype(compound, 10.0), target_sum) > 0.7


def test_medium_supports_probing_and_curation():
    config = SynthConfig.from_size("medium")
    layout = build_layout(config, plan_biology(config))
    wells_per_gene, experiments_per_gene = {}, {}
    for well in layout.wells:
        if well.perturbation_type == "CRISPR" and well.gene != "EMPTY_control":
            wells_per_gene[well.gene] = wells_per_gene.get(well.gene, 0) + 1
            experiments_per_gene.setdefault(well.gene, set()).add(well.experiment_name)
    assert min(wells_per_gene.values()) >= 20 and min(map(len, experiments_per_gene.values())) >= 3


def _corum_recall(vectors, genes, pairs, lower=0.05, upper=0.95):
    """EFAAR known-relationship recall: null = all pairwise cosines of the gene map; a pair is recalled when its
    cosine is in the bottom `lower` or top `1 - upper` of the null."""
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    similarity = unit @ unit.T
    null = np.sort(similarity[np.triu_indices(len(genes), 1)])
    index = {gene: i for i, gene in enumerate(genes)}
    query = np.array([similarity[index[a], index[b]] for a, b in pairs])
    left = np.searchsorted(null, query, side="left") / len(null)
    right = np.searchsorted(null, query, side="right") / len(null)
    return float(np.mean((right <= lower) | (left >= upper)))


def test_ground_truth_phenotypes_recall_corum_on_small():
    plan = plan_biology(SynthConfig.from_size("small"))
    vectors = np.stack([plan.gene_phenotypes[gene] for gene in plan.genes])
    assert _corum_recall(vectors, plan.genes, plan.corum_pairs) >= 0.5


def _standardized_features(stack):
    """Hand-crafted features of one well [6, H, W] uint8 after per-image per-channel standardization (as the model
    does): intensity-distribution quantiles, tails and moments, texture energy at three scales, and the
    co-localization (correlation) of every channel pair. No model."""
    z = stack.astype(np.float32)
    z = (z - z.mean(axis=(1, 2), keepdims=True)) / (z.std(axis=(1, 2), keepdims=True) + 1e-6)
    sample = z[:, ::3, ::3].reshape(6, -1)
    quantiles = np.quantile(sample, [0.5, 0.9, 0.99], axis=1).T
    tails = np.stack([(sample > 1).mean(1), (sample > 3).mean(1), (sample**3).mean(1), np.log((sample**4).mean(1))], 1)
    fine = ndimage.gaussian_filter(z, (0, 1, 1), truncate=3)
    coarse = ndimage.gaussian_filter(fine, (0, 2.5, 2.5), truncate=3)
    texture = np.log(np.stack([((z - fine) ** 2).mean((1, 2)), ((fine - coarse) ** 2).mean((1, 2)),
                               (coarse**2).mean((1, 2))], 1))
    flat = z.reshape(6, -1)
    colocalization = (flat @ flat.T / flat.shape[1])[np.triu_indices(6, 1)]
    return np.concatenate([quantiles.ravel(), tails.ravel(), texture.ravel(), colocalization])


def _gene_map(rows, features, center_per_plate):
    features = (features - features.mean(0)) / (features.std(0) + 1e-9)
    if center_per_plate:
        plates = np.array([f"{row['experiment_name']}_{row['plate']}" for row in rows])
        for plate in np.unique(plates):
            features[plates == plate] -= features[plates == plate].mean(0)
    gene_of = np.array([row["gene"] for row in rows])
    genes = sorted(set(gene_of) - {"EMPTY_control"})
    return genes, np.stack([features[gene_of == gene].mean(0) for gene in genes])


def test_planted_biology_is_visible_after_standardization_and_plate_centering(signal_dataset):
    _, rows = _read_metadata(signal_dataset)
    images = _read_images(signal_dataset)
    features = np.stack([
        _standardized_features(np.stack([
            np.asarray(Image.open(io.BytesIO(images[f"{row['experiment_name']}/Plate{row['plate']}/{row['address']}"
                                                     f"_s1_{c}"])))
            for c in range(1, 7)]))
        for row in rows
    ])
    pairs = load_ground_truth(signal_dataset)["corum_pairs"]
    genes, centered = _gene_map(rows, features, center_per_plate=True)
    _, uncentered = _gene_map(rows, features, center_per_plate=False)
    recall_centered = _corum_recall(centered, genes, pairs)
    recall_uncentered = _corum_recall(uncentered, genes, pairs)
    print(f"hand-crafted CORUM recall 5/95: per-plate centered {recall_centered:.3f}, "
          f"uncentered {recall_uncentered:.3f}")
    assert recall_centered >= 0.2  # random is about 0.10
    assert recall_uncentered < recall_centered  # the batch effect is real
    # Uncorrected features are confounded by batch: the plate explains most of the control wells' variance.
    controls = [i for i, row in enumerate(rows) if row["treatment"] == "EMPTY_control"]
    plates = np.array([f"{rows[i]['experiment_name']}_{rows[i]['plate']}" for i in controls])
    control_features = features[controls]
    control_features = (control_features - control_features.mean(0)) / (control_features.std(0) + 1e-9)
    within = sum(((control_features[plates == p] - control_features[plates == p].mean(0)) ** 2).sum()
                 for p in np.unique(plates))
    assert 1 - within / (control_features**2).sum() > 0.5


# Determinism, resume, errors -------------------------------------------------------------------------------------


def test_same_seed_same_bytes_whatever_the_workers_and_another_seed_differs(tiny_dataset, tmp_path):
    again = generate(tmp_path / "again", size="tiny", seed=0, rows_per_shard=100, workers=2, progress=False)
    assert _digests(again) == _digests(tiny_dataset)
    other = generate(tmp_path / "other", size="tiny", seed=1, experiments=1, workers=1, progress=False)
    assert load_ground_truth(other)["genes"] != load_ground_truth(tiny_dataset)["genes"]
    assert set(_read_images(other).values()).isdisjoint(_read_images(tiny_dataset).values())


def test_an_interrupted_run_resumes_to_the_same_bytes(tiny_dataset, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(tiny_dataset, copy)
    expected = _digests(copy)
    # Interrupted: the ground truth (written last) and the metadata are missing, and so is one shard.
    config = load_ground_truth(copy)["config"]
    (copy / "ground_truth.json").unlink()
    (copy / "metadata_rxrx3_core.csv").unlink()
    (copy / ".synth_in_progress.json").write_text(json.dumps({"config": config}))
    shard = sorted((copy / "data").glob("*.parquet"))[1]
    shard.unlink()
    generate(copy, size="tiny", seed=0, rows_per_shard=100, workers=1, progress=False)
    assert _digests(copy) == expected


def test_bad_input_is_refused_with_a_clear_error(tiny_dataset, tmp_path):
    with pytest.raises(ValueError, match="image_size must be one of"):
        SynthConfig(image_size=300)
    with pytest.raises(ValueError, match="unknown size 'huge'"):
        SynthConfig.from_size("huge")
    with pytest.raises(ValueError, match="unknown SynthConfig fields: colour"):
        SynthConfig.from_size("tiny", colour="red")
    with pytest.raises(ValueError, match="guides must be >= 1"):
        SynthConfig.from_size("tiny", guides=0)
    with pytest.raises(ValueError, match="num_genes=10 is too few"):
        plan_biology(SynthConfig.from_size("small", num_genes=10))
    with pytest.raises(FileExistsError, match="another config"):
        generate(tiny_dataset, size="tiny", seed=5, progress=False)
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty"):
        generate(tmp_path, size="tiny", progress=False)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_phenom_synth_command(tmp_path, capsys):
    from phenom.cli import main

    assert main(["synth", "--out", str(tmp_path / "cli"), "--size", "tiny", "--seed", "3", "--experiments", "1",
                 "--compounds", "0", "--compound-experiments", "0", "--no-progress"]) == 0
    truth = load_ground_truth(tmp_path / "cli")
    assert truth["config"]["seed"] == 3 and truth["config"]["experiments"] == 1 and not truth["compounds"]
    assert "wrote" in capsys.readouterr().out
    with pytest.raises(SystemExit) as error:
        main(["synth", "--out", str(tmp_path / "bad"), "--image-size", "300"])
    assert error.value.code == 2
    assert "invalid choice: 300" in capsys.readouterr().err


def test_workers_below_one_is_refused_before_any_work(tmp_path):
    with pytest.raises(ValueError, match="workers must be >= 1, got 0"):
        generate(tmp_path / "none", size="tiny", workers=0, progress=False)
    assert not (tmp_path / "none").exists()

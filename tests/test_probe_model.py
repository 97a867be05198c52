"""`phenom probe --model --data` end to end: `phenom embed --blocks all` on a local dataset (RxRx3-core's Hub layout
with JPEG-2000 shards, and RxRx1's release layout with PNG sites), then the probe of every block of a saved tiny
model on images whose texture depends on the gene, held-out experiments scored."""

import io
import json

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import small_config
from PIL import Image

from eval import probe
from modeling_phenom import PhenomImageProcessor, PhenomModel
from phenom.commands import probe as probe_command
from phenom_data import rxrx3_core

SIZE = 256  # one view per well
PATCH = 32
GENES = ("PSMA1", "RPLP0", "TP53")
EXPERIMENTS = ("gene-001", "gene-002", "gene-003")
WELLS_PER_GENE = 2


def channel_image(gene: str | None, seed, channel: int) -> np.ndarray:
    """Noise, plus (for a gene, not a control) a gene-specific tile repeated with the patch period: the mean of the
    patch tokens of a random-init model then differs between genes (a texture of another period would average out)."""
    rng = np.random.default_rng(seed)
    image = rng.normal(0, 1, (SIZE, SIZE))
    if gene is not None:
        tile = np.random.default_rng([GENES.index(gene), channel]).normal(0, 1, (PATCH, PATCH))
        image += 1.5 * np.tile(tile, (SIZE // PATCH, SIZE // PATCH))
    return np.clip(128 + 30 * image, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("tiny_model")
    torch.manual_seed(0)
    PhenomModel(small_config(patch_size=PATCH)).save_pretrained(directory)
    PhenomImageProcessor().save_pretrained(directory)  # one 256 px view per well (the config's image_size is 32)
    return directory


@pytest.fixture(scope="module")
def rxrx3_core_dataset(tmp_path_factory):
    directory = tmp_path_factory.mktemp("rxrx3_core_like")
    keys, images, metadata = [], [], []
    for experiment in EXPERIMENTS:
        treatments = [gene for gene in GENES for _ in range(WELLS_PER_GENE)] + [None]
        for index, gene in enumerate(treatments):
            address = f"A{index + 1:02d}"
            well_id = f"{experiment}_1_{address}"
            for channel in range(1, 7):
                buffer = io.BytesIO()
                Image.fromarray(channel_image(gene, [sum(map(ord, well_id)), channel], channel)).save(
                    buffer, format="JPEG2000")
                keys.append(rxrx3_core.rxrx3_core_key(experiment, 1, address, channel))
                images.append(buffer.getvalue())
            metadata.append({"well_id": well_id, "experiment_name": experiment, "plate": 1, "address": address,
                             "gene": gene, "treatment": f"{gene}_guide_1" if gene else "EMPTY_control",
                             "SMILES": None, "concentration": None, "perturbation_type": "CRISPR",
                             "cell_type": "HUVEC"})
    rxrx3_core.write_rxrx3_core_shard(directory / rxrx3_core.shard_filename(0, 1), keys, images, row_group_size=24)
    pd.DataFrame(metadata).to_csv(directory / rxrx3_core.METADATA_FILENAME, index=False)
    return directory


def test_probe_embeds_every_block_once_and_predicts_the_gene_on_held_out_experiments(model_dir, rxrx3_core_dataset,
                                                                                      tmp_path, capsys):
    out = tmp_path / "probe"
    run = probe.probe(out, model=model_dir, data=rxrx3_core_dataset, task="gene", device="cpu", batch_size=4,
                      show_progress=False)
    files = sorted((out / "embeddings").glob("embeddings_block*.parquet"))
    assert [path.name for path in files] == [f"embeddings_block{block}.parquet" for block in (1, 2, 3)]
    assert run.files == dict(zip((1, 2, 3), files, strict=True)) and run.results_path == out / "results.json"
    results = json.loads((out / "results.json").read_text())
    chance = 1 / len(GENES)
    assert results["model"] == str(model_dir) and results["dataset"] == str(rxrx3_core_dataset)
    assert set(results["metrics"]) == {f"probe_balanced_accuracy_block{block}" for block in (1, 2, 3)} | {
        "probe_best_block"}
    assert all(results["metrics"][f"probe_balanced_accuracy_block{block}"] > chance for block in (1, 2, 3))
    assert results["counts"]["unlabeled_wells"] == len(EXPERIMENTS)  # controls have no gene
    assert (out / "probe_balanced_accuracy.png").is_file()
    # A second run (the command) reuses the embeddings of the same model and data instead of embedding again.
    capsys.readouterr()
    argv = ["--model", str(model_dir), "--data", str(rxrx3_core_dataset), "--task", "gene", "--out", str(out),
            "--device", "cpu", "--batch-size", "4"]
    assert probe_command.main(argv) == 0
    assert "reusing the embeddings" in capsys.readouterr().err


@pytest.fixture(scope="module")
def rxrx1_release(tmp_path_factory):
    """RxRx1 layout: 3 experiments (cell types) x 3 siRNAs x 1 well x 2 sites of 6 PNG channels."""
    root = tmp_path_factory.mktemp("rxrx1_like")
    rows = []
    for experiment in ("HEPG2-01", "HUVEC-01", "RPE-01"):
        for index, gene in enumerate(GENES):
            well = f"B{index + 2:02d}"
            for site in (1, 2):
                site_id = f"{experiment}_1_{well}_{site}"
                rows.append({"site_id": site_id, "well_id": f"{experiment}_1_{well}", "cell_type": experiment[:-3],
                             "dataset": "train", "experiment": experiment, "plate": 1, "well": well, "site": site,
                             "well_type": "treatment", "sirna": f"s_{gene}", "sirna_id": GENES.index(gene)})
                folder = root / "images" / experiment / "Plate1"
                folder.mkdir(parents=True, exist_ok=True)
                for channel in range(1, 7):
                    image = channel_image(gene, [len(rows), channel], channel)
                    Image.fromarray(image).save(folder / f"{well}_s{site}_w{channel}.png")
    pd.DataFrame(rows).to_csv(root / "metadata.csv", index=False)
    return root


def test_probe_reads_rxrx1_sites_through_phenom_embed_and_averages_them_into_wells(model_dir, rxrx1_release,
                                                                                   tmp_path):
    out = tmp_path / "probe"
    probe.probe(out, model=model_dir, data=rxrx1_release, task="sirna", device="cpu", batch_size=4, plots=False,
                show_progress=False)
    results = json.loads((out / "results.json").read_text())
    assert results["counts"]["train_wells"] + results["counts"]["test_wells"] == 9  # 18 sites, 9 wells
    assert results["counts"]["classes"] == 3 and results["counts"]["test_experiments"] == 1
    assert results["metrics"]["probe_balanced_accuracy_block3"] > 1 / 3


def test_probe_reads_a_load_data_csv_with_the_users_metadata(model_dir, tmp_path):
    from phenom_data.load_data import write_load_data

    images, rows = {}, []
    for plate in EXPERIMENTS:
        for index, gene in enumerate(gene for gene in GENES for _ in range(WELLS_PER_GENE)):
            well = f"B{index + 1:02d}"
            images[plate, well, "1"] = {channel: channel_image(gene, [sum(map(ord, plate + well)), number], number)
                                        for number, channel in enumerate(("DNA", "RNA"), start=1)}
            rows.append({"well_id": f"{plate}_{well}", "experiment_name": plate, "gene": gene})
    csv = write_load_data(tmp_path / "plates", images)
    pd.DataFrame(rows).to_csv(tmp_path / "labels.csv", index=False)
    out = tmp_path / "probe"
    probe.probe(out, model=model_dir, data=csv, metadata=tmp_path / "labels.csv", task="gene", device="cpu",
                plots=False, show_progress=False)
    results = json.loads((out / "results.json").read_text())
    assert results["counts"]["train_wells"] + results["counts"]["test_wells"] == 18
    assert results["metrics"]["probe_balanced_accuracy_block3"] > 1 / 3

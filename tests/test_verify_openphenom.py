"""`phenom verify-openphenom`: offline failure before heavy work; the whole run on a local Hub cache; comparison logic.

The end-to-end test builds a Hugging Face cache in the Hub's layout (`models--.../snapshots/<commit>/`,
`datasets--.../snapshots/<commit>/data/train-00000-of-00035.parquet`, `refs/main`) holding a tiny Phenom model,
an RxRx3-core-style shard made from the real sample well in tests/fixtures/rxrx3_sample, a metadata CSV and a
"published" embeddings parquet computed here by the documented recipe, written out independently (tiles cut with
numpy slicing, the model called directly); then runs the command with HF_HUB_OFFLINE=1.
"""

import io
import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from conftest import FIXTURES, REPO_ROOT, small_config
from PIL import Image

from eval.verify_openphenom import (
    DATASET_REPO,
    METADATA_FILE,
    MODEL_REPO,
    PUBLISHED_FILE,
    VerificationUnavailable,
    compare_embeddings,
    read_shard_wells,
    shard_file,
    verify_openphenom,
)
from phenom.commands.verify_openphenom import main

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def snapshot(cache, repo_id, repo_type):
    folder = cache / f"{repo_type}s--{repo_id.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True, exist_ok=True)
    (folder / "refs" / "main").write_text(COMMIT)
    path = folder / "snapshots" / COMMIT
    path.mkdir(parents=True, exist_ok=True)
    return path


def jp2_bytes(channel: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(channel).save(buffer, format="JPEG2000", irreversible=False)  # lossless
    return buffer.getvalue()


def sample_wells():
    """Three 6-channel 512 px wells from the real sample: as is, flipped, and with channels rotated."""
    channels = np.stack([np.asarray(Image.open(FIXTURES / "rxrx3_sample" / f"AA41_s1_{i}.jp2")) for i in range(1, 7)])
    return {
        "gene-001/Plate1/AA41": channels,
        "gene-001/Plate1/B02": channels[:, ::-1].copy(),
        "compound-002/Plate3/C03": np.roll(channels, 2, axis=0),
    }


def write_shard(path, wells, struct=True):
    keys, images = [], []
    for well, channels in wells.items():
        for number in range(6):
            keys.append(f"{well}_s1_{number + 1}")
            images.append(jp2_bytes(channels[number]))
    keys += ["gene-009/Plate2/D04_s1_1", "not a key"]  # an incomplete well and a bad key
    images += [images[0], images[0]]
    order = np.random.default_rng(0).permutation(len(keys))  # rows need not come six by six
    keys, images = [keys[i] for i in order], [images[i] for i in order]
    if struct:  # the datasets Image feature as stored on the Hub
        column = pa.array([{"bytes": image, "path": None} for image in images],
                          type=pa.struct([("bytes", pa.binary()), ("path", pa.string())]))
    else:
        column = pa.array(images, type=pa.binary())
    pq.write_table(pa.table({"__key__": keys, "jp2": column}), path)


def reference_embeddings(model, wells):
    """The recipe by hand: four 256 px tiles by slicing, pooler_output, mean over the tiles."""
    rows = {}
    for key, channels in wells.items():
        tiles = np.stack([channels[:, y : y + 256, x : x + 256] for y in (0, 256) for x in (0, 256)])
        with torch.no_grad():
            pooled = model(pixel_values=torch.from_numpy(tiles)).pooler_output
        experiment, plate, address = key.split("/")
        rows[f"{experiment}_{plate.removeprefix('Plate')}_{address}"] = pooled.mean(dim=0).numpy()
    return rows


@pytest.fixture(scope="module")
def hub_cache(tmp_path_factory):
    from modeling_phenom import PhenomModel

    cache = tmp_path_factory.mktemp("hub_cache")
    torch.manual_seed(0)
    model = PhenomModel(small_config(image_size=256, patch_size=64)).eval()
    model.save_pretrained(snapshot(cache, MODEL_REPO, "model"))
    dataset = snapshot(cache, DATASET_REPO, "dataset")
    (dataset / "data").mkdir()
    wells = sample_wells()
    write_shard(dataset / shard_file(0), wells)
    published = reference_embeddings(model, wells)
    table = pd.DataFrame.from_dict(published, orient="index")
    table.columns = [f"feature_{index}" for index in range(table.shape[1])]
    table.index.name = "well_id"
    table.reset_index().to_parquet(dataset / PUBLISHED_FILE, index=False)
    metadata = pd.DataFrame({
        "well_id": list(published), "experiment_name": ["gene-001", "gene-001", "compound-002"],
        "treatment": ["EMPTY_control", "PLK1_guide_1", "EMPTY_control"],
    })
    metadata.to_csv(dataset / METADATA_FILE, index=False)
    return cache


def test_whole_run_on_a_local_hub_cache_agrees_with_the_recipe(hub_cache, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["--cache-dir", str(hub_cache), "--out", str(out), "--wells", "8", "--batch-size", "2",
                 "--device", "cpu"], prog="phenom verify-openphenom")
    printed = capsys.readouterr().out
    assert code == 0, printed
    report = json.loads((out / "report.json").read_text())
    assert report["wells_compared"] == 3 and report["wells_missing_from_published"] == 0
    assert report["raw"]["min"] > 0.99999
    assert report["reader"]["yielded"] == 3
    assert report["reader"]["skipped"] == {"missing_channel": 1} and report["reader"]["bad_rows"] == {"bad_key": 1}
    assert report["aligned"]["wells"] == 0 and "raise --wells" in report["aligned"]["reason"]
    ours = pd.read_parquet(out / "ours.parquet")
    assert set(ours["well_id"]) == {"gene-001_1_AA41", "gene-001_1_B02", "compound-002_3_C03"}
    assert "raw cosine: median" in printed


def test_offline_without_the_files_fails_before_any_heavy_import(tmp_path):
    script = (
        "import sys\nfrom phenom.commands.verify_openphenom import main\n"
        f"code = main(['--cache-dir', {str(tmp_path)!r}], prog='phenom verify-openphenom')\n"
        "print('exit', code, 'torch imported:', 'torch' in sys.modules)\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert "exit 2 torch imported: False" in result.stdout, result.stdout + result.stderr
    assert "needs network access to the Hugging Face Hub" in result.stderr
    assert f"{PUBLISHED_FILE}" in result.stderr and "model.safetensors" in result.stderr


def test_offline_without_the_files_is_a_user_error_naming_them(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(VerificationUnavailable, match=f"needs network access.*{PUBLISHED_FILE}") as raised:
        verify_openphenom(cache_dir=str(tmp_path), out=tmp_path / "out")
    assert isinstance(raised.value, OSError)  # a user error: one line and exit code 2 from the command
    assert not (tmp_path / "out").exists()
    with pytest.raises(ValueError, match="--wells must be at least 1"):
        verify_openphenom(wells=0, cache_dir=str(tmp_path))


def test_shard_reader_assembles_wells_in_any_row_order_and_plain_binary_images(tmp_path):
    wells = sample_wells()
    (tmp_path / "data").mkdir()
    write_shard(tmp_path / shard_file(3), wells, struct=False)
    read = read_shard_wells(tmp_path, shard_file(3), max_wells=2)
    assert len(read.well_ids) == 2 and read.images.shape == (2, 6, 512, 512) and read.images.dtype == np.uint8
    for well_id, images in zip(read.well_ids, read.images, strict=True):
        experiment, plate, address = well_id.split("_")
        assert np.array_equal(images, wells[f"{experiment}/Plate{plate}/{address}"])
    with pytest.raises(ValueError, match="shard index"):
        shard_file(35)


def embedding_tables(seed=0, wells_per_experiment=60, dimensions=6):
    rng = np.random.default_rng(seed)
    ids = [f"exp{e}_1_W{i}" for e in range(2) for i in range(wells_per_experiment)]
    ours = pd.DataFrame(rng.standard_normal((len(ids), dimensions)), index=ids)
    metadata = pd.DataFrame({
        "well_id": ids, "experiment_name": [well.split("_")[0] for well in ids],
        "treatment": ["EMPTY_control" if index % 3 == 0 else "X" for index in range(len(ids))],
    })
    return ours, metadata, rng


def test_identical_tables_agree_and_affine_maps_per_experiment_are_found():
    ours, metadata, rng = embedding_tables()
    same = compare_embeddings(ours, ours.copy(), metadata)
    assert same["raw"]["min"] == pytest.approx(1.0) and same["aligned"]["min"] == pytest.approx(1.0)
    published = ours.copy()
    for experiment in ("exp0", "exp1"):  # a different affine map per experiment, as a per-batch correction makes
        rows = (metadata["experiment_name"] == experiment).to_numpy()
        published.loc[rows] = ours.loc[rows].to_numpy() @ rng.standard_normal((6, 6)) + rng.standard_normal(6)
    moved = compare_embeddings(ours, published, metadata)
    assert moved["raw"]["median"] < 0.9
    assert moved["aligned"]["min"] > 0.999999 and moved["aligned"]["wells"] == 120


def test_centered_and_scaled_controls_are_recognized():
    ours, metadata, _ = embedding_tables(wells_per_experiment=300)
    published = ours.copy()
    for experiment in ("exp0", "exp1"):
        rows = (metadata["experiment_name"] == experiment).to_numpy()
        controls = rows & (metadata["treatment"] == "EMPTY_control").to_numpy()
        centre, scale = ours[controls].mean(), ours[controls].std(ddof=0)
        published.loc[rows] = ((ours.loc[rows] - centre) / scale).to_numpy()
    report = compare_embeddings(ours, published, metadata)
    assert report["published_controls"]["experiments"] == 2
    assert report["published_controls"]["mean_abs_feature_mean"] == pytest.approx(0.0, abs=1e-9)
    assert report["published_controls"]["mean_feature_std"] == pytest.approx(1.0)
    raw_only = compare_embeddings(ours * 3 + 5, ours)
    assert "published_controls" not in raw_only and raw_only["raw"]["median"] < 0.99


def test_comparison_errors_name_the_problem():
    ours, _, _ = embedding_tables()
    with pytest.raises(ValueError, match="6 features, the published ones 5"):
        compare_embeddings(ours, ours.iloc[:, :5])
    with pytest.raises(ValueError, match="none of our wells"):
        compare_embeddings(ours, ours.set_axis([f"other{i}" for i in range(len(ours))]))

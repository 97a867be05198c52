"""`eval.embed.embed` (`phenom embed`) end to end on a local dataset in RxRx3-core's Hub layout (real JPEG-2000
parquet shards read by `phenom_data.RxRx3CoreWells`) with a saved tiny model: every block in one pass, an interrupted
run resumed without a well lost or repeated, two `accelerate launch -m phenom embed` processes merged into the same
files, then `phenom eval` on them. The command line (`phenom.commands.embed.main`) is exercised where its exit code
and one-line errors are what is proved."""

import io
import json
import os
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import REPO_ROOT, small_config
from PIL import Image

from eval import embed, evaluate
from eval.embeddings_file import read_embeddings
from modeling_phenom import PhenomImageProcessor, PhenomModel
from phenom.commands import embed as embed_command
from phenom_data import WellDataset, rxrx3_core

SIZE = 256  # one view per well keeps the forward passes small
EXPERIMENTS = ("gene-001", "gene-002")
GENES = ("PSMA1", "PSMA2", "RPLP0")


def wells():
    """(experiment, plate, address, treatment): 3 genes x 1 guide + 2 controls per experiment."""
    rows = []
    for experiment in EXPERIMENTS:
        treatments = [f"{gene}_guide_1" for gene in GENES] + ["EMPTY_control"] * 2
        rows += [(experiment, 1, f"A{index + 1:02d}", treatment) for index, treatment in enumerate(treatments)]
    return rows


def channel_image(well_id, channel):
    rng = np.random.default_rng([sum(map(ord, well_id)), channel])
    return rng.integers(0, 256, (SIZE, SIZE), dtype=np.uint8)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    directory = tmp_path_factory.mktemp("rxrx3_core_like")
    keys, images, metadata = [], [], []
    for experiment, plate, address, treatment in wells():
        well_id = f"{experiment}_{plate}_{address}"
        for channel in range(1, 7):
            buffer = io.BytesIO()
            Image.fromarray(channel_image(well_id, channel)).save(buffer, format="JPEG2000")
            keys.append(rxrx3_core.rxrx3_core_key(experiment, plate, address, channel))
            images.append(buffer.getvalue())
        metadata.append({"well_id": well_id, "experiment_name": experiment, "plate": plate, "address": address,
                         "gene": treatment.split("_guide_")[0], "treatment": treatment, "SMILES": None,
                         "concentration": None, "perturbation_type": "CRISPR", "cell_type": "HUVEC"})
    half = len(keys) // 2 + 3  # a well straddles the two shards
    for index, (start, stop) in enumerate([(0, half), (half, len(keys))]):
        rxrx3_core.write_rxrx3_core_shard(directory / rxrx3_core.shard_filename(index, 2), keys[start:stop],
                                          images[start:stop], row_group_size=12)
    pd.DataFrame(metadata).to_csv(directory / rxrx3_core.METADATA_FILENAME, index=False)
    return directory


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("tiny_model")
    torch.manual_seed(0)
    PhenomModel(small_config(patch_size=16)).save_pretrained(directory)
    PhenomImageProcessor().save_pretrained(directory)  # 256 px views (the config's own image_size is 32)
    return directory


def run_embed(model_dir, dataset, out, **options) -> embed.EmbedResult:
    return embed.embed(model_dir, dataset, out, device="cpu", batch_size=2, part_wells=2, show_progress=False,
                       **options)


def run_embed_command(model_dir, dataset, out, *extra) -> int:
    return embed_command.main(["--model", str(model_dir), "--data", str(dataset), "--out", str(out), "--device",
                               "cpu", "--batch-size", "2", "--part-wells", "2", *extra], prog="phenom embed")


@pytest.fixture(scope="module")
def single_run(model_dir, dataset, tmp_path_factory):
    """One uninterrupted single-process run of every block: `<dir>/tiny_block{1,2,3}.parquet`."""
    directory = tmp_path_factory.mktemp("single_run")
    result = run_embed(model_dir, dataset, directory / "tiny.parquet", blocks="all")
    assert result.outputs == {block: directory / f"tiny_block{block}.parquet" for block in (1, 2, 3)}
    assert result.blocks == (1, 2, 3) and result.wells == 10 and result.resumed_wells == 0
    return directory


def test_embed_writes_every_block_in_the_official_layout_with_well_means(model_dir, single_run):
    tmp_path = single_run
    well_ids = sorted(f"{experiment}_{plate}_{address}" for experiment, plate, address, _ in wells())
    model = PhenomModel.from_pretrained(model_dir).eval()
    processor = PhenomImageProcessor()
    for block in (1, 2, 3):
        table = read_embeddings(tmp_path / f"tiny_block{block}.parquet")
        assert list(table.well_ids) == well_ids and table.features.shape == (10, 32)
        assert table.provenance["block"] == block and table.provenance["model"] == str(model_dir)
        image = np.stack([channel_image(well_ids[3], channel) for channel in range(1, 7)])
        with torch.inference_mode():
            views = torch.from_numpy(processor.tiles(image))
            expected = model.get_block_embeddings(views, blocks=[block])[block].mean(dim=0)
        np.testing.assert_allclose(table.features[3], expected.numpy(), rtol=1e-5, atol=1e-5)
    assert not (tmp_path / "tiny.parquet.parts").exists()


def test_an_interrupted_embed_resumes_and_equals_an_uninterrupted_run(model_dir, dataset, single_run, tmp_path,
                                                                     monkeypatch, capsys):
    original_iter = WellDataset.__iter__

    def dies_after_five_wells(self):
        for count, sample in enumerate(original_iter(self)):
            if count == 5:
                raise RuntimeError("process killed")
            yield sample

    monkeypatch.setattr(WellDataset, "__iter__", dies_after_five_wells)
    with pytest.raises(RuntimeError, match="process killed"):
        run_embed(model_dir, dataset, tmp_path / "resumed.parquet")
    assert len(list((tmp_path / "resumed.parquet.parts").glob("part-*.parquet"))) == 2  # 4 wells written
    monkeypatch.setattr(WellDataset, "__iter__", original_iter)
    decoded = []
    original_decode = rxrx3_core.decode_image
    monkeypatch.setattr(rxrx3_core, "decode_image", lambda data: decoded.append(1) or original_decode(data))
    assert run_embed_command(model_dir, dataset, tmp_path / "resumed.parquet") == 0  # its progress notes on stderr
    assert "resuming: 4 wells already embedded" in capsys.readouterr().err
    assert len(decoded) == 6 * 6  # only the 6 unfinished wells' channels are decoded, none of the finished ones
    fresh, resumed = read_embeddings(single_run / "tiny_block3.parquet"), read_embeddings(tmp_path / "resumed.parquet")
    assert list(resumed.well_ids) == list(fresh.well_ids) and len(set(resumed.well_ids)) == 10
    np.testing.assert_allclose(resumed.features, fresh.features, rtol=1e-5, atol=1e-6)


def test_existing_output_is_not_overwritten_silently(model_dir, dataset, tmp_path, capsys):
    (tmp_path / "tiny.parquet").write_bytes(b"")
    with pytest.raises(FileExistsError, match="already exist"):
        run_embed(model_dir, dataset, tmp_path / "tiny.parquet")
    assert run_embed_command(model_dir, dataset, tmp_path / "tiny.parquet") == 2
    assert "already exist" in capsys.readouterr().err


def test_two_accelerate_processes_give_the_same_files_as_one_and_phenom_eval_reads_them(model_dir, dataset,
                                                                                         single_run, tmp_path):
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "phenom", "embed",
               "--model", str(model_dir), "--data", str(dataset), "--out", str(tmp_path / "multi.parquet"),
               "--blocks", "2,3", "--device", "cpu", "--batch-size", "2", "--part-wells", "2"]
    result = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "rank 0: embedded" in result.stderr and "rank 1: embedded" in result.stderr
    for block in (2, 3):
        single = read_embeddings(single_run / f"tiny_block{block}.parquet")
        multi = read_embeddings(tmp_path / f"multi_block{block}.parquet")
        assert list(multi.well_ids) == list(single.well_ids)
        np.testing.assert_allclose(multi.features, single.features, rtol=1e-5, atol=1e-6)
    blocks = [str(tmp_path / f"multi_block{block}.parquet") for block in (2, 3)]
    evaluate.evaluate(blocks, dataset / "metadata_rxrx3_core.csv", tmp_path / "eval",
                      evaluate.EvalOptions(plots=False))
    results = json.loads((tmp_path / "eval" / "block3" / "results.json").read_text())
    assert results["block"] == 3 and results["counts"]["map_genes"] == 3


def test_embed_uses_the_view_size_saved_with_the_model(dataset, tmp_path):
    # A model trained on 64 px crops (its processor says so) must embed 64 px views: the interior 2 x 2 of a 256 px
    # well's 4 x 4 grid, not one 256 px view with 16 times its training token count.
    model_dir = tmp_path / "model64"
    torch.manual_seed(0)
    PhenomModel(small_config(patch_size=16, image_size=64)).save_pretrained(model_dir)
    PhenomImageProcessor(crop_size=64).save_pretrained(model_dir)
    run_embed(model_dir, dataset, tmp_path / "e.parquet")
    table = read_embeddings(tmp_path / "e.parquet")
    well_id = table.well_ids[0]
    image = np.stack([channel_image(well_id, channel) for channel in range(1, 7)])
    views = np.stack([image[:, top:top + 64, left:left + 64] for top in (64, 128) for left in (64, 128)])
    model = PhenomModel.from_pretrained(model_dir).eval()
    with torch.inference_mode():
        expected = model.get_block_embeddings(torch.from_numpy(views), blocks="last")[model.num_blocks].mean(dim=0)
    np.testing.assert_allclose(table.features[0], expected.numpy(), rtol=1e-5, atol=1e-5)


def test_per_channel_embeddings_are_each_channels_token_mean_side_by_side(model_dir, dataset, tmp_path):
    # The released `predict(..., return_channelwise_embeddings=True)` layout: [C * hidden_size], channel-major.
    run_embed(model_dir, dataset, tmp_path / "pc.parquet", per_channel=True)
    table = read_embeddings(tmp_path / "pc.parquet")
    assert table.features.shape == (10, 6 * 32) and table.provenance["pooling"] == "per-channel token means"
    well_id = table.well_ids[2]
    image = np.stack([channel_image(well_id, channel) for channel in range(1, 7)])
    model = PhenomModel.from_pretrained(model_dir).eval()
    with torch.inference_mode():
        views = torch.from_numpy(PhenomImageProcessor().tiles(image))
        tokens = model(pixel_values=views).last_hidden_state[:, 1:]
    expected = tokens.reshape(len(views), 6, -1, 32).mean(dim=2).reshape(len(views), -1).mean(dim=0)
    np.testing.assert_allclose(table.features[2], expected.numpy(), rtol=1e-5, atol=1e-5)


def test_per_channel_needs_a_channel_agnostic_model(dataset, tmp_path, capsys):
    model_dir = tmp_path / "standard"
    standard = small_config(patch_size=16, channel_agnostic=False, decoder_type="standard")
    PhenomModel(standard).save_pretrained(model_dir)
    with pytest.raises(ValueError, match="--per-channel needs a channel-agnostic model"):
        run_embed(model_dir, dataset, tmp_path / "e.parquet", per_channel=True)
    assert run_embed_command(model_dir, dataset, tmp_path / "e.parquet", "--per-channel") == 2
    assert "channel-agnostic" in capsys.readouterr().err
    assert not (tmp_path / "e.parquet").exists()


def test_dtype_auto_runs_bf16_only_where_the_cpu_has_it_natively_and_records_the_choice(model_dir, dataset,
                                                                                        single_run, tmp_path):
    from eval.precision import cpu_flags

    native = bool({"avx512_bf16", "amx_bf16"} & cpu_flags())
    result = run_embed(model_dir, dataset, tmp_path / "auto.parquet", blocks="all", dtype="auto")
    assert result.precision == ("bfloat16" if native else "float32")
    auto = read_embeddings(tmp_path / "auto_block3.parquet")
    precision = auto.provenance["precision"]
    assert precision["requested"] == "auto" and precision["dtype"] == ("bfloat16" if native else "float32")
    assert ("avx512_bf16" in precision["reason"] or "amx_bf16" in precision["reason"]) == native
    reference = read_embeddings(single_run / "tiny_block3.parquet")
    assert read_embeddings(single_run / "tiny_block3.parquet").provenance["precision"]["dtype"] == "float32"
    if native:  # bf16 really ran: close to float32, not equal
        cosine = (auto.features * reference.features).sum(1) / (
            np.linalg.norm(auto.features, axis=1) * np.linalg.norm(reference.features, axis=1))
        assert cosine.min() > 0.999 and not np.array_equal(auto.features, reference.features)
    else:
        np.testing.assert_array_equal(auto.features, reference.features)


def test_a_run_is_not_resumed_in_another_dtype(model_dir, dataset, tmp_path, monkeypatch, capsys):
    # Stop a bf16 run after its first two parts (the third batch's well means never come back).
    means, calls = embed.well_means, []

    def stopping_well_means(*args):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("process killed")
        return means(*args)

    monkeypatch.setattr(embed, "well_means", stopping_well_means)
    with pytest.raises(RuntimeError, match="process killed"):
        run_embed(model_dir, dataset, tmp_path / "mixed.parquet", dtype="bfloat16")
    assert len(list((tmp_path / "mixed.parquet.parts").glob("part-*.parquet"))) == 2
    monkeypatch.setattr(embed, "well_means", means)
    capsys.readouterr()
    assert run_embed_command(model_dir, dataset, tmp_path / "mixed.parquet", "--dtype", "float32") == 2
    assert re.search(r"other settings \(.*dtype: was \W?bfloat16\W?, now \W?float32", capsys.readouterr().err)


def test_fidelity_metric_deltas_keep_a_benchmark_that_one_precision_skipped():
    from types import SimpleNamespace

    from bench.bf16_fidelity import largest_delta, metric_deltas

    def results(**metrics):  # the two fields of EvalResults that metric_deltas reads
        return SimpleNamespace(metrics=metrics, metrics_std={})

    # map_consistency ran on the float32 embeddings only (no active perturbation in the other two): no KeyError.
    deltas = metric_deltas(results(recall=0.5, map_consistency_mean=0.2), results(recall=0.51), results(recall=0.49))
    assert deltas["map_consistency_mean"] == {"float32": 0.2, "bfloat16": None, "delta": None, "noise_delta": None,
                                              "seed_std": None}
    assert deltas["recall"]["delta"] == pytest.approx(0.01) and deltas["recall"]["noise_delta"] == pytest.approx(-0.01)
    assert largest_delta(deltas, "delta") == {"metric": "recall", "delta": pytest.approx(0.01)}


def test_bf16_fidelity_bench_compares_every_well_and_every_metric_of_both_precisions(model_dir, dataset, tmp_path):
    def fidelity(out, *extra):
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
        command = [sys.executable, "-m", "bench.bf16_fidelity", "--model", f"tiny={model_dir}", "--data", str(dataset),
                   "--work", str(tmp_path / "work"), "--batch-size", "4", "--out", str(out), *extra]
        result = subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT, env=env, timeout=600)
        assert result.returncode == 0, result.stderr[-4000:]
        return json.loads(out.read_text()), result

    report, result = fidelity(tmp_path / "fidelity.json")
    assert set(report["results"]) == {"tiny, token mean", "tiny, per-channel"}
    for entry in report["results"].values():
        assert {dtype: record["dtype"] for dtype, record in entry["precision_recorded"].items()} == {
            "float32": "float32", "bfloat16": "bfloat16"}
        wells = entry["wells"]
        assert wells["wells"] == 10 and 0.99 < wells["cosine_min"] <= 1.0 + 1e-9
        assert -1 <= wells["centered_cosine_min"] <= wells["centered_cosine_median"] <= 1.0 + 1e-9
        assert {"recall_CORUM_0.05_0.95", "replicate_consistency_ks"} <= set(entry["metrics"])
        for values in entry["metrics"].values():
            assert values["delta"] == values["bfloat16"] - values["float32"]
            assert "noise_delta" in values
        assert entry["largest_matched_noise_delta"]["metric"] in entry["metrics"]
        largest = entry["largest_metric_delta"]
        deltas = [values["delta"] for values in entry["metrics"].values()]
        assert abs(largest["delta"]) == max(abs(delta) for delta in deltas if delta is not None)
        assert entry["within_tolerance"] == (
            None not in deltas and abs(largest["delta"]) <= report["tolerance"] == 0.005)
    assert report["bf16_may_be_default"] == all(entry["within_tolerance"] for entry in report["results"].values())
    assert "largest |delta|" in result.stdout
    # Again on the files of the first run: the same comparison, nothing embedded.
    reused, _ = fidelity(tmp_path / "reused.json", "--reuse-embeddings")
    for label, entry in reused["results"].items():
        assert entry["embed_seconds"] == {"float32": None, "bfloat16": None}
        assert entry["wells"] == report["results"][label]["wells"]
        assert entry["metrics"] == report["results"][label]["metrics"]

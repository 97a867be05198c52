"""`phenom trim`: the trimmed model loads through AutoModel and its pooled output equals block k's pooled embedding of
the full model to 1e-6; it keeps the image processor config and the license; the compute saved is the FLOP count of
the blocks it drops (checked against a hand count, and the paper's 38-of-48 MAE-G/8 trim)."""

import json
from dataclasses import asdict

import pytest
import torch
from conftest import random_pixels, small_config
from transformers import AutoImageProcessor, AutoModel

from eval import trim
from modeling_phenom import PhenomConfig, PhenomImageProcessor, PhenomModel
from phenom.commands import trim as trim_command

NUM_BLOCKS = 4


@pytest.fixture(scope="module")
def full_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("full")
    torch.manual_seed(0)
    PhenomModel(small_config(num_hidden_layers=NUM_BLOCKS)).save_pretrained(directory)
    PhenomImageProcessor().save_pretrained(directory)
    (directory / "LICENSE").write_text("Recursion non-commercial license (test copy)\n")
    return directory


@pytest.mark.parametrize("blocks", [1, 2, 3])
def test_trimmed_model_equals_the_full_models_block_k_embedding(full_dir, tmp_path, blocks):
    out = tmp_path / f"trim{blocks}"
    report = trim.trim(str(full_dir), blocks, out)
    assert report.blocks_kept == blocks and report.encoder_flops_trimmed < report.encoder_flops_full
    trimmed = AutoModel.from_pretrained(out).eval()
    full = AutoModel.from_pretrained(full_dir).eval()
    assert isinstance(trimmed, PhenomModel) and trimmed.config.trim_encoder_blocks == blocks
    assert trimmed.num_blocks == blocks and trimmed.config.num_hidden_layers == NUM_BLOCKS
    pixels = random_pixels(3, 6, 32, seed=blocks)
    with torch.inference_mode():
        pooled = trimmed(pixels).pooler_output
        expected = full.get_block_embeddings(pixels, blocks=[blocks])[blocks]
        from_hidden_states = full(pixels, output_hidden_states=True).hidden_states[blocks][:, 1:].mean(dim=1)
    torch.testing.assert_close(pooled, expected, rtol=0, atol=1e-6)
    torch.testing.assert_close(pooled, from_hidden_states, rtol=0, atol=1e-6)


def test_trim_keeps_the_image_processor_config_and_license_and_writes_a_report(full_dir, tmp_path):
    out = tmp_path / "trim2"
    returned = trim.trim(str(full_dir), 2, out, verify=True)
    for name in ("preprocessor_config.json", "LICENSE"):
        assert (out / name).read_bytes() == (full_dir / name).read_bytes()
    assert isinstance(AutoImageProcessor.from_pretrained(out), PhenomImageProcessor)
    report = json.loads((out / trim.REPORT_NAME).read_text())
    assert report == json.loads(json.dumps(asdict(returned)))  # the file is the returned report
    assert report["blocks_kept"] == 2 and report["blocks_full"] == NUM_BLOCKS
    assert report["max_abs_difference"] <= 1e-6
    full, trimmed = PhenomModel.from_pretrained(full_dir), PhenomModel.from_pretrained(out)
    assert report["parameters_full"] == sum(p.numel() for p in full.parameters())
    assert report["parameters_trimmed"] == sum(p.numel() for p in trimmed.parameters())
    assert report["file_bytes_trimmed"] < (full_dir / "model.safetensors").stat().st_size
    assert not list(tmp_path.glob(".trim2.tmp-*"))  # assembled under a temporary name, then renamed


def hand_encoder_flops(config, blocks):
    """Matmul FLOPs (2 per multiply-add) of one view: patch projection, then per block the qkv, attention output and
    MLP projections and the two attention products (scores and weighted values)."""
    hidden, inner = config.hidden_size, config.intermediate_size
    patches = (config.image_size // config.patch_size) ** 2
    channels = config.num_channels
    tokens = 1 + channels * patches if config.channel_agnostic else 1 + patches
    patch_projection = 2 * channels * patches * config.patch_size**2 * hidden
    per_block = 2 * tokens * (3 * hidden * hidden + hidden * hidden + 2 * hidden * inner) + 2 * 2 * tokens**2 * hidden
    return patch_projection + blocks * per_block


def test_compute_saved_is_the_flop_count_of_the_dropped_blocks(full_dir):
    config = small_config(num_hidden_layers=NUM_BLOCKS)
    for blocks in (1, 2, NUM_BLOCKS):
        flops, shape = trim.encoder_flops(config, num_blocks=blocks)
        assert flops == hand_encoder_flops(config, blocks) and shape == [1, 6, 32, 32]
    # The paper's trimmed MAE-G/8 keeps 38 of 48 blocks: about 79% of the encoder FLOPs (paper.md §3).
    g8 = PhenomConfig.from_preset("g8")
    embedding_flops, block_flops, _ = trim.encoder_flops_per_block(g8)
    ratio = (embedding_flops + sum(block_flops[:38])) / (embedding_flops + sum(block_flops))
    assert ratio == pytest.approx(hand_encoder_flops(g8, 38) / hand_encoder_flops(g8, 48), rel=1e-12)
    assert 0.79 < ratio < 0.80


def test_bad_trim_requests_are_clear_errors(full_dir, tmp_path, capsys):
    with pytest.raises(ValueError, match=r"--blocks must be in 1\.\.4"):
        trim.trim(str(full_dir), 0, tmp_path / "a")
    trim.trim(str(full_dir), 2, tmp_path / "b")
    with pytest.raises(ValueError, match=r"--blocks must be in 1\.\.2"):  # a trimmed model is only trimmed further
        trim.trim(str(tmp_path / "b"), 3, tmp_path / "c")
    trim.trim(str(tmp_path / "b"), 1, tmp_path / "c")
    assert AutoModel.from_pretrained(tmp_path / "c").num_blocks == 1
    with pytest.raises(FileExistsError, match="already exists; pass --overwrite"):
        trim.trim(str(full_dir), 2, tmp_path / "b")
    assert not (tmp_path / "a").exists()
    # The command: exit code 2 and the message on one line; the report printed on success.
    assert trim_command.main(["--model", str(full_dir), "--blocks", "0", "--out", str(tmp_path / "a")],
                             prog="phenom trim") == 2
    assert capsys.readouterr().err.splitlines()[-1].startswith("phenom trim: error: --blocks must be in 1..4")
    assert trim_command.main(["--model", str(full_dir), "--blocks", "1", "--out", str(tmp_path / "d")]) == 0
    assert f"kept blocks 1..1 of {NUM_BLOCKS}" in capsys.readouterr().out

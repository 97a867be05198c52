"""The released OpenPhenom model through the Auto classes, offline, reproduces every tensor of the reference fixture
(`tests/fixtures/openphenom_tiny`, made by running the Hub code) at atol = rtol = 1e-5; mask, ids_restore exactly."""

import os
import subprocess
import sys

import pytest
import torch
from conftest import REPO_ROOT
from openphenom_layout import TINY, WEIGHT_FILES, hub_cache, hub_directory
from safetensors.torch import load_file
from transformers import AutoConfig, AutoModel, AutoModelForMaskedImageModeling

from modeling_phenom import OpenPhenomConfig, OpenPhenomForMaskedImageModeling, OpenPhenomModel, PhenomModel
from modeling_phenom.modeling_phenom import patchify

EXPECTED = load_file(TINY / "expected.safetensors")
INPUTS = load_file(TINY / "inputs.safetensors")
EXACT = {"mae_mask", "mae_ind_restore"}


def reproduce_fixture(source, **load_kwargs) -> dict[str, torch.Tensor]:
    """Every tensor of expected.safetensors, computed by the models the Auto classes load from `source`."""
    pixels, noise = INPUTS["pixels"], INPUTS["mask_noise"]
    encoder = AutoModel.from_pretrained(source, **load_kwargs).eval()
    mim = AutoModelForMaskedImageModeling.from_pretrained(source, **load_kwargs).eval()
    fourier = AutoModelForMaskedImageModeling.from_pretrained(source, fourier_loss_weight=0.01, **load_kwargs).eval()
    unmasked_fourier = AutoModelForMaskedImageModeling.from_pretrained(
        source, fourier_loss_weight=0.01, mask_fourier_loss=False, **load_kwargs
    ).eval()
    out = {}
    with torch.no_grad():
        encoded = encoder(pixels, output_hidden_states=True)
        out["normalized_pixels"] = encoder.standardize(pixels)
        out["tokens_with_pos"] = encoded.hidden_states[0]
        for block in range(1, len(encoded.hidden_states)):
            out[f"hidden_states.{block - 1}"] = encoded.hidden_states[block]  # the fixture counts hooks from 0
        out["last_hidden_state"] = encoded.last_hidden_state
        out["embeddings"] = encoded.pooler_output
        out["encoder_pooled_fc_norm"] = encoded.normalized_pooler_output
        out["embeddings_channelwise"] = encoder.get_channelwise_embeddings(pixels)
        for name, key in (("embeddings_3ch", "pixels_3ch"), ("embeddings_maxch", "pixels_maxch")):
            out[name] = encoder(INPUTS[key]).pooler_output
            out[f"{name}_channelwise"] = encoder.get_channelwise_embeddings(INPUTS[key])
        masked = mim(pixels, noise=noise, mask_ratio=0.75)
        out["mae_latent"] = masked.latent
        out["mae_reconstruction"] = masked.reconstruction
        out["mae_mask"] = masked.mask
        out["mae_ind_restore"] = masked.ids_restore
        out["mae_target_flattened"] = patchify(mim.phenom.standardize(pixels), 16, channel_agnostic=True)
        out["mae_loss"] = masked.loss
        with_fourier = fourier(pixels, noise=noise, mask_ratio=0.75)
        out["mae_loss_total_fourier"] = with_fourier.loss
        out["mae_fourier_loss"] = with_fourier.fourier_loss
        out["mae_loss_total_fourier_unmasked_floss"] = unmasked_fourier(pixels, noise=noise, mask_ratio=0.75).loss
        released = mim(pixels, noise=noise)  # the released config's mask_ratio 0: all tokens, still shuffled
        assert released.loss is None  # the reference returns 0/0 = NaN here
        out["mae0_latent"] = released.latent
        out["mae0_reconstruction"] = released.reconstruction
    return out


@pytest.fixture(scope="module", params=WEIGHT_FILES)
def reproduced(request, tmp_path_factory):
    source = hub_directory(tmp_path_factory.mktemp("OpenPhenom"), weight_file=request.param)
    return reproduce_fixture(str(source))


@pytest.mark.parametrize("key", sorted(EXPECTED))
def test_fixture_tensor_is_reproduced_through_the_auto_classes(reproduced, key):
    assert set(reproduced) == set(EXPECTED)
    actual, expected = reproduced[key], EXPECTED[key]
    if key in EXACT:
        assert actual.dtype == torch.int64 if key == "mae_ind_restore" else actual.dtype == torch.float32
        assert torch.equal(actual, expected)
    else:
        torch.testing.assert_close(actual, expected, atol=1e-5, rtol=1e-5)


def test_auto_classes_give_the_legacy_encoder_and_mim_model_with_empty_loading_reports(tmp_path):
    source = hub_directory(tmp_path / "OpenPhenom")
    config = AutoConfig.from_pretrained(source)
    assert isinstance(config, OpenPhenomConfig)
    assert (config.legacy_bias_routing, config.decoder_layer_norm_eps, config.fourier_loss_mode) == (
        True, 1e-5, "reference"
    )
    sizes = (config.hidden_size, config.num_channels, config.decoder_hidden_size, config.mask_ratio)
    assert sizes == (64, 11, 32, 0.0)
    encoder, info = AutoModel.from_pretrained(source, output_loading_info=True)
    assert isinstance(encoder, OpenPhenomModel) and not any(info.values()), info
    mim, info = AutoModelForMaskedImageModeling.from_pretrained(source, output_loading_info=True)
    assert isinstance(mim, OpenPhenomForMaskedImageModeling) and not any(info.values()), info


def test_trimmed_legacy_encoder_gives_the_reference_block_output(tmp_path):
    source = hub_directory(tmp_path / "OpenPhenom")
    trimmed = AutoModel.from_pretrained(source, trim_encoder_blocks=2).eval()
    assert trimmed.num_blocks == 2
    with torch.no_grad():
        pooled = trimmed(INPUTS["pixels"]).pooler_output
    torch.testing.assert_close(pooled, EXPECTED["hidden_states.1"][:, 1:].mean(1), atol=1e-5, rtol=1e-5)


def test_save_pretrained_of_the_legacy_model_writes_a_native_phenom_directory(tmp_path):
    legacy = AutoModel.from_pretrained(hub_directory(tmp_path / "OpenPhenom")).eval()
    legacy.save_pretrained(tmp_path / "native")
    native = AutoModel.from_pretrained(tmp_path / "native").eval()
    assert type(native) is PhenomModel and native.config.model_type == "phenom"
    assert native.config.architectures == ["PhenomModel"] and native.config.legacy_bias_routing
    with torch.no_grad():
        embeddings = native(INPUTS["pixels"]).pooler_output
    torch.testing.assert_close(embeddings, EXPECTED["embeddings"], atol=1e-5, rtol=1e-5)


def test_hub_repo_id_loads_offline_from_the_hf_cache_with_revisions(tmp_path):
    cache = tmp_path / "hub"
    main_commit, other_commit = "a" * 40, "b" * 40
    released_files = {name: TINY / name for name in ("config.json", "model.safetensors")}
    hub_cache(cache, "recursionpharma/OpenPhenom", released_files, main_commit)
    # a second revision whose weights differ (the fixture's CLS token shifted by one)
    shifted = load_file(TINY / "weights_flat.safetensors")
    shifted["encoder.vit_backbone.cls_token"] += 1
    from safetensors.torch import save_file

    save_file(shifted, tmp_path / "shifted.safetensors")
    hub_cache(cache, "recursionpharma/OpenPhenom",
              {"config.json": TINY / "config.json", "model.safetensors": tmp_path / "shifted.safetensors"},
              other_commit, branch=None)
    main = AutoModel.from_pretrained("recursionpharma/OpenPhenom", cache_dir=cache)
    other = AutoModel.from_pretrained("recursionpharma/OpenPhenom", cache_dir=cache, revision=other_commit)
    torch.testing.assert_close(other.embeddings.cls_token, main.embeddings.cls_token + 1)
    with torch.no_grad():
        torch.testing.assert_close(main.eval()(INPUTS["pixels"]).pooler_output, EXPECTED["embeddings"],
                                   atol=1e-5, rtol=1e-5)
    assert main.config.name_or_path == "recursionpharma/OpenPhenom"
    with pytest.raises(OSError):
        AutoModel.from_pretrained("recursionpharma/OpenPhenom", cache_dir=cache, revision="c" * 40)


def test_plain_from_pretrained_of_the_repo_id_works_offline_from_the_default_cache(tmp_path):
    # The first thing a user types, in a fresh process whose HF cache holds the repo and with the Hub unreachable.
    cache = tmp_path / "hub"
    released_files = {name: TINY / name for name in ("config.json", "model.safetensors")}
    hub_cache(cache, "recursionpharma/OpenPhenom", released_files, "d" * 40)
    script = (
        "import torch, modeling_phenom\n"
        "from safetensors.torch import load_file\n"
        "from transformers import AutoModel\n"
        "model = AutoModel.from_pretrained('recursionpharma/OpenPhenom').eval()\n"
        f"inputs, expected = load_file({str(TINY / 'inputs.safetensors')!r}), "
        f"load_file({str(TINY / 'expected.safetensors')!r})\n"
        "with torch.no_grad():\n"
        "    embeddings = model(inputs['pixels']).pooler_output\n"
        "torch.testing.assert_close(embeddings, expected['embeddings'], atol=1e-5, rtol=1e-5)\n"
        "print(type(model).__name__)\n"
    )
    env = {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "OpenPhenomModel"

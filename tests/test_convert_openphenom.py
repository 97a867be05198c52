"""OpenPhenom compatibility beyond the fixture: the config translation and key map for any member of the family,
the checked weight reader (formats, bad files, malicious pickles), Hub-layout loading and `phenom convert`."""

import copy
import json
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import FIXTURES, REPO_ROOT
from openphenom_layout import TINY, hub_directory, save_released_format, write_hub_config
from safetensors import safe_open
from safetensors.torch import load_file
from transformers import AutoImageProcessor, AutoModel, AutoModelForMaskedImageModeling

from modeling_phenom import OpenPhenomConfig, PhenomConfig, PhenomForMaskedImageModeling, PhenomModel
from modeling_phenom.openphenom import (
    OpenPhenomWeightsError,
    openphenom_shapes,
    openphenom_to_phenom_state_dict,
    phenom_to_openphenom_state_dict,
    read_openphenom_weights,
    translate_openphenom_config,
)
from phenom.convert_writer import convert_openphenom

TINY_CONFIG = json.loads((TINY / "config.json").read_text())
INPUTS = load_file(TINY / "inputs.safetensors")
EXPECTED = load_file(TINY / "expected.safetensors")


def released_shapes(sizes: dict) -> dict[str, tuple]:
    """The released state dict layout, written out from openphenom.md §2.1 for the given sizes."""
    dim, mlp, grid_tokens = sizes["dim"], 4 * sizes["dim"], (sizes["img"] // sizes["patch"]) ** 2
    head = sizes["dim"] // sizes["heads"]
    width, modalities = sizes["dec_dim"], sizes["modalities"]
    vit = "encoder.vit_backbone."
    shapes = {
        vit + "cls_token": (1, 1, dim),
        vit + "pos_embed": (1, 1 + sizes["max_in_chans"] * grid_tokens, dim),
        vit + "patch_embed.proj.weight": (dim, 1, sizes["patch"], sizes["patch"]),
        vit + "patch_embed.proj.bias": (dim,),
        vit + "fc_norm.weight": (dim,),
        vit + "fc_norm.bias": (dim,),
        "decoder.mask_token": (1, 1, width),
        "decoder.placeholder": (1, 1, width),
        "decoder.pos_embeddings": (1, 1 + modalities * grid_tokens, width),
        "decoder.cross_attention.q.weight": (width, width),
        "decoder.cross_attention.kv.weight": (2 * width, width),
        "decoder.cross_attention.proj.weight": (width, width),
        "decoder.cross_attention.proj.bias": (width,),
        "decoder.mlp.fc1.weight": (4 * width, width),
        "decoder.mlp.fc1.bias": (4 * width,),
        "decoder.mlp.fc2.weight": (width, 4 * width),
        "decoder.mlp.fc2.bias": (width,),
        "encoder_decoder_proj.weight": (width, dim),
        "encoder_decoder_proj.bias": (width,),
        "decoder_pred.weight": (sizes["patch"] ** 2, width),
        "decoder_pred.bias": (sizes["patch"] ** 2,),
    }
    for name in ("context_norm", "query_norm", "out_norm"):
        shapes[f"decoder.{name}.weight"] = shapes[f"decoder.{name}.bias"] = (width,)
    for block in range(sizes["depth"]):
        prefix = f"{vit}blocks.{block}."
        shapes.update({
            prefix + "mlp_bias": (mlp,),
            prefix + "in_norm.weight": (dim,), prefix + "in_norm.bias": (dim,),
            prefix + "in_proj.weight": (mlp + 3 * dim, dim),
            prefix + "attn_out_proj.weight": (dim, dim), prefix + "attn_out_proj.bias": (dim,),
            prefix + "mlp_out_proj.weight": (dim, mlp), prefix + "mlp_out_proj.bias": (dim,),
        })
        if sizes.get("qk_norm", True):
            for name in ("q_norm", "k_norm"):
                shapes[prefix + f"{name}.weight"] = shapes[prefix + f"{name}.bias"] = (head,)
        if sizes.get("layer_scale", True):
            shapes[prefix + "ls.gamma"] = (dim,)
    for modality in range(modalities):
        shapes[f"decoder.modality_tokens.{modality}"] = (1, 1, width)
        for block in range(sizes["dec_depth"]):
            prefix = f"decoder.decoders.{modality}.{block}."
            shapes.update({
                prefix + "norm1.weight": (width,), prefix + "norm1.bias": (width,),
                prefix + "attn.qkv.weight": (3 * width, width), prefix + "attn.qkv.bias": (3 * width,),
                prefix + "attn.proj.weight": (width, width), prefix + "attn.proj.bias": (width,),
                prefix + "norm2.weight": (width,), prefix + "norm2.bias": (width,),
                prefix + "mlp.fc1.weight": (4 * width, width), prefix + "mlp.fc1.bias": (4 * width,),
                prefix + "mlp.fc2.weight": (width, 4 * width), prefix + "mlp.fc2.bias": (width,),
            })
    return shapes


def hub_config_for(sizes: dict) -> dict:
    """A Hub config.json of the family with the given sizes (as the tiny fixture's, other values)."""
    config = copy.deepcopy(TINY_CONFIG)
    backbone = config["encoder"]["vit_backbone"]["vit_backbone"]
    backbone.update(img_size=sizes["img"], patch_size=sizes["patch"], embed_dim=sizes["dim"], depth=sizes["depth"],
                    num_heads=sizes["heads"])
    if not sizes.get("qk_norm", True):
        backbone["qk_norm"] = False
    if not sizes.get("layer_scale", True):
        backbone["init_values"] = None
    config["encoder"]["max_in_chans"] = sizes["max_in_chans"]
    config["decoder"].update(embed_dim=sizes["dec_dim"], depth=sizes["dec_depth"], num_heads=sizes["dec_heads"],
                             num_modalities=sizes["modalities"],
                             tokens_per_modality=(sizes["img"] // sizes["patch"]) ** 2)
    config["fourier_loss"]["num_multimodal_modalities"] = sizes["modalities"]
    return config


TINY_SIZES = dict(img=64, patch=16, dim=64, depth=4, heads=4, max_in_chans=11, dec_dim=32, dec_depth=2, dec_heads=4,
                  modalities=6)
VARIANTS = {
    "fixture": TINY_SIZES,
    "patch8-deeper": dict(TINY_SIZES, img=32, patch=8, depth=5, dim=48, heads=3),
    "channels": dict(TINY_SIZES, max_in_chans=3, modalities=3, dec_dim=16, dec_depth=3, dec_heads=2),
    "wide-decoder": dict(TINY_SIZES, img=48, dec_dim=64, dec_depth=1, dec_heads=8, modalities=4, max_in_chans=16),
    "no-qknorm-no-layerscale": dict(TINY_SIZES, depth=2, qk_norm=False, layer_scale=False),
}


def random_legacy_state_dict(config, seed=0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {key: torch.randn(shape, generator=generator) for key, shape in openphenom_shapes(config).items()}


# ----------------------------------------------------------------------------- key map
def test_ca_s16_key_map_round_trips_against_the_released_key_list():
    released = json.loads((FIXTURES / "openphenom_vits16_keys.json").read_text())
    config = OpenPhenomConfig()  # no arguments: the released OpenPhenom-S/16
    assert {key: list(shape) for key, shape in openphenom_shapes(config).items()} == released
    assert len(released) == 765
    meta_legacy = {key: torch.empty(shape, device="meta") for key, shape in released.items()}
    native = openphenom_to_phenom_state_dict(meta_legacy)
    with torch.device("meta"):
        model = PhenomForMaskedImageModeling(config)
    assert {k: tuple(v.shape) for k, v in native.items()} == {k: tuple(v.shape) for k, v in model.state_dict().items()}
    back = phenom_to_openphenom_state_dict(native)
    assert {key: list(tensor.shape) for key, tensor in back.items()} == released
    with pytest.raises(KeyError, match=r"outside the OpenPhenom layout: \['encoder.vit_backbone.norm.weight'\]"):
        openphenom_to_phenom_state_dict({"encoder.vit_backbone.norm.weight": torch.zeros(1)})
    with pytest.raises(KeyError, match=r"without an OpenPhenom counterpart: \['phenom.pooler.weight'\]"):
        phenom_to_openphenom_state_dict({"phenom.pooler.weight": torch.zeros(1)})
    # --encoder-only keeps 22,459,776 of 178,045,568 values: 89.8 MB of float32 instead of 712.2 MB
    with torch.device("meta"):
        encoder = PhenomModel(config)
    assert sum(p.numel() for p in encoder.parameters()) * 4 == 89_839_104
    assert sum(p.numel() for p in model.parameters()) * 4 == 712_182_272


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_translation_and_key_map_follow_any_size_of_the_family(variant):
    sizes = VARIANTS[variant]
    config = OpenPhenomConfig(**hub_config_for(sizes))
    assert (config.image_size, config.patch_size, config.hidden_size, config.num_hidden_layers) == (
        sizes["img"], sizes["patch"], sizes["dim"], sizes["depth"]
    )
    assert (config.num_channels, config.decoder_hidden_size, config.decoder_num_modalities) == (
        sizes["max_in_chans"], sizes["dec_dim"], sizes["modalities"]
    )
    assert {key: tuple(shape) for key, shape in openphenom_shapes(config).items()} == released_shapes(sizes)
    legacy = random_legacy_state_dict(config)
    model = PhenomForMaskedImageModeling(config)
    model.load_state_dict(openphenom_to_phenom_state_dict(legacy), strict=True)
    back = phenom_to_openphenom_state_dict(model.state_dict())
    assert back.keys() == legacy.keys()
    for key in legacy:
        assert torch.equal(back[key], legacy[key]), key


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_position_tables_of_any_size_follow_the_sincos_formula(variant):
    # openphenom.md §3.3: a zero CLS row, then [sin(h w), cos(h w), sin(c w), cos(c w)] per patch, tiled per channel.
    sizes = VARIANTS[variant]
    model = PhenomForMaskedImageModeling(OpenPhenomConfig(**hub_config_for(sizes)))

    def formula(dim, copies):
        grid = sizes["img"] // sizes["patch"]
        omega = 1.0 / 10000 ** (np.arange(dim // 4) / (dim // 4))
        rows = [np.concatenate([np.sin(h * omega), np.cos(h * omega), np.sin(w * omega), np.cos(w * omega)])
                for h in range(grid) for w in range(grid)]
        return np.concatenate([np.zeros((1, dim)), np.tile(np.array(rows), (copies, 1))])[None]

    np.testing.assert_allclose(model.phenom.embeddings.position_embeddings.detach().numpy(),
                               formula(sizes["dim"], sizes["max_in_chans"]), atol=2e-6)
    np.testing.assert_allclose(model.decoder.position_embeddings.detach().numpy(),
                               formula(sizes["dec_dim"], sizes["modalities"]), atol=2e-6)


def test_tokens_are_channel_major_with_each_patch_embedded_and_positioned():
    sizes = VARIANTS["patch8-deeper"]
    model = PhenomModel(OpenPhenomConfig(**hub_config_for(sizes))).eval()
    pixels = torch.randint(0, 256, (1, 3, 32, 32), dtype=torch.uint8)
    with torch.no_grad():
        tokens = model.embed(pixels)[0]
        standardized = model.standardize(pixels)[0]
    projection = model.embeddings.patch_embeddings.projection
    positions = model.embeddings.position_embeddings[0]
    grid = 4
    for channel in range(3):
        for row in range(grid):
            for col in range(grid):
                patch = standardized[channel, row * 8 : (row + 1) * 8, col * 8 : (col + 1) * 8]
                expected = (projection.weight[:, 0] * patch).sum((1, 2)) + projection.bias
                expected = expected + positions[1 + row * grid + col]
                token = tokens[1 + channel * grid * grid + row * grid + col]
                torch.testing.assert_close(token, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(tokens[0], model.embeddings.cls_token[0, 0])


@pytest.mark.parametrize("variant", ["channels", "wide-decoder"])
def test_other_family_members_load_through_the_auto_classes_from_the_hub_layout(variant, tmp_path):
    sizes = VARIANTS[variant]
    hub_config = hub_config_for(sizes)
    write_hub_config(tmp_path, hub_config)
    legacy = random_legacy_state_dict(OpenPhenomConfig(**hub_config), seed=1)
    save_released_format(legacy, tmp_path / "model.safetensors")
    mim, info = AutoModelForMaskedImageModeling.from_pretrained(tmp_path, output_loading_info=True)
    assert not any(info.values()), info
    encoder, info = AutoModel.from_pretrained(tmp_path, output_loading_info=True)
    assert not any(info.values()), info
    for key, tensor in phenom_to_openphenom_state_dict(mim.state_dict()).items():
        assert torch.equal(tensor, legacy[key]), key
    pixels = torch.randint(0, 256, (2, sizes["modalities"], sizes["img"], sizes["img"]), dtype=torch.uint8)
    with torch.no_grad():
        out = mim.eval()(pixels, mask_ratio=0.5)
        encoded = encoder.eval()(pixels)
    tokens = sizes["modalities"] * (sizes["img"] // sizes["patch"]) ** 2
    assert out.reconstruction.shape == (2, tokens, sizes["patch"] ** 2) and torch.isfinite(out.loss)
    assert encoded.last_hidden_state.shape == (2, 1 + tokens, sizes["dim"])


# ----------------------------------------------------------------------------- config translation errors
@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda c: c["encoder"]["vit_backbone"]["vit_backbone"].update(_target_="vit.vit_huge_patch14_224"),
         "not a known backbone"),
        (lambda c: c["encoder"]["vit_backbone"]["vit_backbone"].update(global_pool="token"), "global_pool 'token'"),
        (lambda c: c["encoder"]["vit_backbone"]["vit_backbone"].update(dynamic_img_size=True),
         r"unsupported key\(s\) \['dynamic_img_size'\]"),
        (lambda c: c["encoder"].update(channel_agnostic=False), "channel_agnostic = False"),
        (lambda c: c["decoder"].update(_target_="mae_modules.MAEDecoder"), "decoder._target_"),
        (lambda c: c["decoder"].update(tokens_per_modality=256), "tokens_per_modality 256 does not match"),
        (lambda c: c["fourier_loss"].update(num_multimodal_modalities=5), "num_multimodal_modalities 5"),
        (lambda c: c.update(trim_encoder_blocks=2), "ignores trim_encoder_blocks"),
    ],
)
def test_hub_configs_outside_the_family_are_refused_by_name(edit, message):
    config = copy.deepcopy(TINY_CONFIG)
    edit(config)
    with pytest.raises(ValueError, match=message):
        translate_openphenom_config(config)


def test_translation_keeps_the_released_quirks_and_drops_unused_keys():
    native = translate_openphenom_config(TINY_CONFIG)
    assert native["legacy_bias_routing"] and native["fourier_loss_mode"] == "reference"
    assert native["decoder_layer_norm_eps"] == 1e-5  # the Hub code's eps, although config.json says 1e-6
    assert native["decoder_cross_attention_heads"] == 8 and native["mask_ratio"] == 0.0
    assert not {"auto_map", "optimizer", "lr_scheduler", "input_norm", "encoder", "decoder"} & set(native)
    assert OpenPhenomConfig().to_dict()["model_type"] == "phenom"


# ----------------------------------------------------------------------------- the checked weight reader
@pytest.fixture
def tiny_shapes():
    return openphenom_shapes(OpenPhenomConfig(**TINY_CONFIG))


@pytest.mark.parametrize("weight_file", ["model.safetensors", "weights_flat.safetensors"])
def test_both_released_formats_read_to_the_same_tensors(weight_file, tiny_shapes):
    state_dict = read_openphenom_weights(TINY / weight_file, tiny_shapes)
    reference = load_file(TINY / "weights_flat.safetensors")
    assert state_dict.keys() == reference.keys()
    assert all(torch.equal(state_dict[key], reference[key]) for key in reference)


def test_truncated_garbage_and_pointer_files_are_refused_with_the_file_name(tmp_path, tiny_shapes):
    cases = {
        "truncated_zip.safetensors": (TINY / "model.safetensors").read_bytes()[:50_000],
        "truncated_flat.safetensors": (TINY / "weights_flat.safetensors").read_bytes()[:50_000],
        "garbage.safetensors": bytes(range(256)) * 4,
        "empty.safetensors": b"",
        "pointer.safetensors": b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 712182272\n",
    }
    messages = {"truncated_zip": "could not be read safely as torch_zip", "truncated_flat": "could not be read safely",
                "garbage": "neither a safetensors file nor a torch zip", "empty": "neither a safetensors",
                "pointer": "Git LFS pointer"}
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(OpenPhenomWeightsError, match=messages[name.split(".")[0]]) as error:
            read_openphenom_weights(path, tiny_shapes)
        assert str(path) in str(error.value)
    with pytest.raises(OpenPhenomWeightsError, match="does not exist"):
        read_openphenom_weights(tmp_path / "absent.safetensors", tiny_shapes)


def test_missing_unexpected_and_misshapen_keys_are_named(tmp_path, tiny_shapes):
    state_dict = load_file(TINY / "weights_flat.safetensors")
    del state_dict["decoder.mask_token"]
    state_dict["encoder.vit_backbone.norm.weight"] = torch.ones(64)
    state_dict["decoder_pred.bias"] = torch.zeros(255)
    path = tmp_path / "model.safetensors"
    save_released_format(state_dict, path)
    with pytest.raises(OpenPhenomWeightsError) as error:
        read_openphenom_weights(path, tiny_shapes)
    message = str(error.value)
    assert str(path) in message
    assert "missing keys ['decoder.mask_token']" in message
    assert "unexpected keys ['encoder.vit_backbone.norm.weight']" in message
    assert "decoder_pred.bias: (255,) in the file, (256,) expected" in message


class CreateMarkerOnUnpickle:
    """Unpickling this object opens (creates) the marker file: arbitrary code a checkpoint must never run."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickles_holding_arbitrary_objects_are_refused_without_running_them(tmp_path, tiny_shapes):
    marker = tmp_path / "marker"
    zipped = tmp_path / "zip" / "model.safetensors"
    zipped.parent.mkdir()
    with open(zipped, "wb") as handle:  # the released container, with a payload beside the tensors
        torch.save({"state_dict": {"encoder.vit_backbone.cls_token": CreateMarkerOnUnpickle(marker)}}, handle)
    raw = tmp_path / "raw" / "model.safetensors"
    raw.parent.mkdir()
    raw.write_bytes(pickle.dumps({"state_dict": CreateMarkerOnUnpickle(marker)}))
    with pytest.raises(OpenPhenomWeightsError, match="could not be read safely") as error:
        read_openphenom_weights(zipped, tiny_shapes)
    assert str(zipped) in str(error.value)
    with pytest.raises(OpenPhenomWeightsError, match="neither a safetensors file nor a torch zip"):
        read_openphenom_weights(raw, tiny_shapes)
    write_hub_config(zipped.parent, TINY_CONFIG)
    with pytest.raises(OpenPhenomWeightsError):
        AutoModel.from_pretrained(zipped.parent)
    assert not marker.exists()
    # the test is not vacuous: an unrestricted load of the same file does create the marker
    with open(zipped, "rb") as handle:
        torch.load(handle, weights_only=False)
    assert marker.exists()


def test_a_pickle_of_something_else_than_a_state_dict_is_refused(tmp_path, tiny_shapes):
    path = tmp_path / "model.safetensors"
    with open(path, "wb") as handle:
        torch.save([torch.zeros(3)], handle)
    with pytest.raises(OpenPhenomWeightsError, match="holds list, not a state dict"):
        read_openphenom_weights(path, tiny_shapes)


def test_a_directory_without_weights_is_an_error_naming_the_file(tmp_path):
    write_hub_config(tmp_path, TINY_CONFIG)
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        AutoModel.from_pretrained(tmp_path)


# ----------------------------------------------------------------------------- phenom convert
@pytest.mark.parametrize("encoder_only", [False, True], ids=["full", "encoder-only"])
def test_convert_writes_a_native_lossless_directory_that_keeps_the_license(encoder_only, tmp_path):
    source = hub_directory(tmp_path / "OpenPhenom", license_text="Recursion Non-Commercial End User License ...\n")
    destination = convert_openphenom(source, tmp_path / "converted", encoder_only=encoder_only)
    files = sorted(path.name for path in destination.iterdir())
    assert files == ["LICENSE", "README.md", "config.json", "configuration_phenom.py", "image_processing_phenom.py",
                     "model.safetensors", "modeling_phenom.py", "pipeline_phenom.py", "preprocessor_config.json"]
    assert (destination / "LICENSE").read_text() == (source / "LICENSE").read_text()
    readme = (destination / "README.md").read_text()
    assert "license: other" in readme and "non-commercial use only" in readme
    assert json.loads((destination / "config.json").read_text())["model_type"] == "phenom"
    with safe_open(destination / "model.safetensors", framework="pt") as weights:  # a real safetensors file
        keys = set(weights.keys())
    assert any(key.startswith("decoder.") for key in keys) != encoder_only
    legacy = load_file(TINY / "weights_flat.safetensors")
    auto_class = AutoModel if encoder_only else AutoModelForMaskedImageModeling
    converted = auto_class.from_pretrained(destination).eval()
    assert type(converted) is (PhenomModel if encoder_only else PhenomForMaskedImageModeling)
    state_dict = converted.state_dict()
    if encoder_only:
        state_dict = {f"phenom.{key}": tensor for key, tensor in state_dict.items()}
    for key, tensor in phenom_to_openphenom_state_dict(state_dict).items():
        assert torch.equal(tensor, legacy[key]), key
    original = auto_class.from_pretrained(source).eval()
    pixels, noise = INPUTS["pixels"], INPUTS["mask_noise"]
    with torch.no_grad():
        if encoder_only:
            torch.testing.assert_close(converted(pixels).last_hidden_state, original(pixels).last_hidden_state,
                                       rtol=0, atol=0)
        else:
            expected = original(pixels, noise=noise, mask_ratio=0.75)
            actual = converted(pixels, noise=noise, mask_ratio=0.75)
            torch.testing.assert_close(actual.reconstruction, expected.reconstruction, rtol=0, atol=0)
            torch.testing.assert_close(actual.loss, expected.loss, rtol=0, atol=0)
    processor = AutoImageProcessor.from_pretrained(destination)
    assert processor(np.zeros((6, 128, 128), dtype=np.uint8))["pixel_values"].shape == (4, 6, 64, 64)


def test_convert_command_without_a_source_license_says_so_and_refuses_to_overwrite(tmp_path, capsys):
    source = hub_directory(tmp_path / "OpenPhenom", weight_file="weights_flat.safetensors")
    command = [sys.executable, "-m", "phenom", "convert", str(source), str(tmp_path / "out"), "--encoder-only"]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "encoder only" in result.stdout and "non-commercial" in result.stdout
    assert "had no license file" in (tmp_path / "out" / "README.md").read_text()
    encoder = AutoModel.from_pretrained(tmp_path / "out").eval()
    with torch.no_grad():
        torch.testing.assert_close(encoder(INPUTS["pixels"]).pooler_output, EXPECTED["embeddings"],
                                   atol=1e-5, rtol=1e-5)
    from phenom.cli import main

    assert main(command[3:]) == 2
    assert "exists; pass overwrite=True (--overwrite)" in capsys.readouterr().err
    assert main([*command[3:], "--overwrite"]) == 0
    assert not [path for path in tmp_path.iterdir() if path.name.startswith(".out.")]  # no staging left behind


def test_convert_native_config_translates_like_the_auto_config():
    native = PhenomConfig(**translate_openphenom_config(TINY_CONFIG))
    legacy = OpenPhenomConfig(**TINY_CONFIG)
    assert native.to_dict() == {**legacy.to_dict(), "model_type": "phenom"}


def test_import_modeling_phenom_loads_no_conversion_writer_or_command_line():
    # from_pretrained needs the legacy loading code only; the writer and its argparse live in the command layer.
    probe = ("import sys, modeling_phenom\n"
             "ours = {name: module for name, module in sys.modules.items() if name.split('.')[0] in "
             "('modeling_phenom', 'phenom')}\n"
             "print(sorted(name for name, module in ours.items() if hasattr(module, 'convert_openphenom') "
             "or hasattr(module, 'main') or hasattr(module, 'build_parser')))\n"
             "print(sorted(name for name in ours if name.split('.')[0] == 'phenom'))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO_ROOT,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split("\n")[:2] == ["[]", "[]"]

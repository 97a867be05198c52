"""PhenomConfig: presets, parameter counts of the paper's models, validation."""

import pytest
import torch
from transformers import AutoConfig

from modeling_phenom import PRESETS, PhenomConfig, PhenomModel


def count_parameters(config):
    with torch.device("meta"):
        model = PhenomModel(config)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_instantiates_on_meta(name):
    config = PhenomConfig.from_preset(name)
    trainable, total = count_parameters(config)
    assert trainable > 0 and total >= trainable


def test_a_preset_leaves_the_defaults_to_init():
    # What a preset does not name is PhenomConfig.__init__'s default (no second copy of the defaults).
    assert "mask_ratio" not in PRESETS["ca-s16"] and PhenomConfig.from_preset("ca-s16").mask_ratio == 0.75
    assert PhenomConfig.from_preset("l8").to_dict() == PhenomConfig(**PRESETS["l8"]).to_dict()


def test_ca_s16_encoder_has_openphenom_parameter_count():
    # openphenom.md §2.2: 22,459,776 encoder values, of which the frozen sin-cos table is 1,081,728.
    trainable, total = count_parameters(PhenomConfig.from_preset("ca-s16"))
    assert trainable == 21_378_048
    assert total == 22_459_776


def test_l8_and_g8_encoders_match_paper_sizes():
    l8_trainable, _ = count_parameters(PhenomConfig.from_preset("l8"))
    g8_trainable, _ = count_parameters(PhenomConfig.from_preset("g8"))
    assert 300e6 <= l8_trainable <= 307e6  # paper.md §1.1: ~303-307 M
    assert 1.83e9 <= g8_trainable <= 1.86e9  # paper.md §1.1: ~1.84-1.86 B


def test_g8_geometry_is_vit_g():
    config = PhenomConfig.from_preset("g8")
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads) == (1664, 48, 16)
    assert (config.intermediate_size, config.patch_size, config.decoder_type) == (8192, 8, "standard")
    assert (config.decoder_hidden_size, config.decoder_num_hidden_layers) == (512, 8)


def test_unknown_preset_lists_valid_ones():
    with pytest.raises(ValueError) as error:
        PhenomConfig.from_preset("vit-huge")
    for name in PRESETS:
        assert name in str(error.value)


def test_preset_overrides_apply():
    config = PhenomConfig.from_preset("ca-s16", num_hidden_layers=4, mask_ratio=0.5)
    assert config.num_hidden_layers == 4 and config.mask_ratio == 0.5 and config.hidden_size == 384


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(hidden_size=30, num_attention_heads=4), "divisible by num_attention_heads"),
        (dict(image_size=250, patch_size=16), "divisible by patch_size"),
        (dict(block_type="serial"), "block_type"),
        (dict(decoder_type="fancy"), "decoder_type"),
        (dict(attention_init="kaiming"), "attention_init"),
        (dict(mask_ratio=1.0), "mask_ratio"),
        (dict(fourier_loss_weight=1.0), "fourier_loss_weight"),
        (dict(drop_path_rate=-0.1), "drop_path_rate"),
        (dict(trim_encoder_blocks=13), "trim_encoder_blocks"),
        (dict(trim_encoder_blocks=0), "trim_encoder_blocks"),
        (dict(channel_agnostic=False, decoder_type="channel_agnostic"), "channel-agnostic encoder"),
        (dict(decoder_type="standard", channel_agnostic=False, fourier_loss_mode="reference"), "reference"),
        (dict(block_type="sequential", legacy_bias_routing=True), "legacy_bias_routing"),
        (dict(hidden_act="swishy"), "hidden_act"),
        (dict(hidden_size=0), "hidden_size"),
        (dict(pixel_scale=0.0), "pixel_scale"),
        (dict(hidden_size=42, num_attention_heads=2, intermediate_size=64), "multiple of 4"),
    ],
)
def test_invalid_values_raise_value_error(overrides, message):
    with pytest.raises(ValueError, match=message):
        PhenomConfig(**overrides)


def test_config_round_trips_through_auto_config(tmp_path):
    config = PhenomConfig.from_preset("tiny", trim_encoder_blocks=3)
    config.save_pretrained(tmp_path)
    reloaded = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(reloaded, PhenomConfig)
    assert reloaded.model_type == "phenom"
    ignored = {"_name_or_path"}
    assert {k: v for k, v in reloaded.to_dict().items() if k not in ignored} == {
        k: v for k, v in config.to_dict().items() if k not in ignored
    }

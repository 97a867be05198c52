"""Phenom's own versions of the transformers common model checks that apply to it (docs/design.md, "transformers'
common tests"): initialization of every parameter (fresh, and materialized from a checkpoint with missing keys),
save/load, unknown arguments, attention weights, channels-last memory, torch.export, gradient checkpointing."""

import math

import pytest
import torch
from conftest import random_pixels, small_config
from torch import nn

from modeling_phenom import PhenomConfig, PhenomForMaskedImageModeling, PhenomModel
from modeling_phenom.modeling_phenom import PhenomCrossAttention, PhenomLayerScale, PhenomParallelLayer, position_table

# Both encoders and both decoders, with every init option the config offers.
CONFIGS = {
    "channel_agnostic": dict(),
    "ca_xavier_tied_qk": dict(attention_init="xavier_uniform", decoder_qk_norm=True, decoder_tied_qk_init=True,
                              qkv_bias=True),
    "standard": dict(channel_agnostic=False, decoder_type="standard", block_type="sequential", qkv_bias=True,
                     layer_scale_init_value=None),
}
MODEL_CLASSES = [PhenomModel, PhenomForMaskedImageModeling]


def make(model_class, name, seed=0):
    torch.manual_seed(seed)
    return model_class(small_config(**CONFIGS[name])).eval()


def noise_for(model, batch_size=2):
    """Deterministic masking noise for a MIM model ({} for the encoder)."""
    if not isinstance(model, PhenomForMaskedImageModeling):
        return {}
    tokens = 16 * (6 if model.config.channel_agnostic else 1)
    return {"noise": torch.rand(batch_size, tokens, generator=torch.Generator().manual_seed(3))}


# ----------------------------------------------------------------------------- initialization
def assert_std(values: torch.Tensor, expected: float, name: str, tolerance: float = 0.2):
    std = values.float().std().item()
    assert abs(std / expected - 1) < tolerance, f"{name}: std {std:.4g}, expected {expected:.4g}"


def assert_follows_init_weights(model: nn.Module) -> None:
    """Every parameter holds what `_init_weights` documents for it (distributions checked by their std and range;
    seeds make this deterministic). A parameter no rule covers fails, so a new one cannot slip through unchecked."""
    config = model.config
    std = config.initializer_range
    checked = set()
    for module_name, module in model.named_modules():
        params = dict(module.named_parameters(recurse=False))
        prefix = f"{module_name}." if module_name else ""
        for leaf, value in params.items():
            name = prefix + leaf
            value = value.detach()
            assert torch.isfinite(value).all(), f"{name} is not finite"
            if leaf == "bias" or leaf in ("mlp_bias", "qkv_bias", "cls_modality_embedding"):
                assert torch.all(value == 0), f"{name} should be zero, max |x| = {value.abs().max():.3g}"
            elif isinstance(module, nn.LayerNorm):
                assert torch.all(value == 1), f"{name} should be one"
            elif isinstance(module, nn.Conv2d):
                # Xavier-uniform over the flattened patch: fan_in = in_channels * p * p, fan_out = hidden_size.
                fan_out, fan_in = value.shape[0], value[0].numel()
                bound = math.sqrt(6 / (fan_in + fan_out))
                assert value.abs().max() <= bound, name
                assert value.abs().max() > 0.9 * bound, name
                assert_std(value, bound / math.sqrt(3), name)
            elif isinstance(module, nn.Linear):
                xavier = getattr(module, "is_attention_input", False) and config.attention_init == "xavier_uniform"
                fan_out, fan_in = value.shape
                if name.endswith("cross_attention.key_value.weight") and config.decoder_tied_qk_init:
                    value = value[fan_out // 2 :]  # the key half is a copy of the query (checked below)
                if xavier:
                    assert value.abs().max() <= math.sqrt(6 / (fan_in + fan_out)), name
                    assert_std(value, math.sqrt(2 / (fan_in + fan_out)), name)
                else:
                    assert_std(value, std, name)
            elif isinstance(module, PhenomLayerScale):
                assert torch.all(value == config.layer_scale_init_value), name
            elif leaf == "position_embeddings":
                width = value.shape[-1]
                copies = (value.shape[1] - 1) // config.grid_size**2
                torch.testing.assert_close(value, position_table(config.grid_size, width, copies), rtol=0, atol=0)
            elif leaf in ("cls_token", "mask_token", "modality_embeddings"):
                assert_std(value, std, name, tolerance=0.6)  # few values: a loose check that N(0, std) was drawn
            else:
                raise AssertionError(f"no initialization rule for {name} ({type(module).__name__})")
            checked.add(name)
        if isinstance(module, PhenomCrossAttention) and config.decoder_tied_qk_init:
            width = module.query.weight.shape[0]
            assert torch.equal(module.key_value.weight[:width], module.query.weight), f"{module_name}: keys not tied"
    assert checked == {name for name, _ in model.named_parameters()}


def test_fresh_tiny_model_has_a_xavier_patch_projection_with_zero_bias():
    torch.manual_seed(0)
    projection = PhenomModel(PhenomConfig.from_preset("tiny")).embeddings.patch_embeddings.projection
    fan_in, fan_out = projection.weight[0].numel(), projection.weight.shape[0]
    assert torch.all(projection.bias == 0)
    # torch's default Conv2d init stays within 1/sqrt(fan_in) (0.031 here); the Xavier bound is 0.072.
    largest = projection.weight.abs().max().item()
    assert largest > 2 / math.sqrt(fan_in)
    assert largest <= math.sqrt(6 / (fan_in + fan_out))


@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("model_class", MODEL_CLASSES, ids=lambda cls: cls.__name__)
def test_every_parameter_of_a_fresh_model_follows_init_weights(model_class, name):
    assert_follows_init_weights(make(model_class, name))


@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("model_class", MODEL_CLASSES, ids=lambda cls: cls.__name__)
def test_every_parameter_materialized_from_an_empty_checkpoint_follows_init_weights(model_class, name):
    # Every tensor is missing: transformers allocates it with torch.empty and only `_init_weights` fills it.
    torch.manual_seed(0)
    model = model_class.from_pretrained(None, config=small_config(**CONFIGS[name]), state_dict={})
    assert_follows_init_weights(model)


@pytest.mark.parametrize("model_class", MODEL_CLASSES, ids=lambda cls: cls.__name__)
def test_missing_keys_are_initialized_and_loaded_keys_are_never_overwritten(model_class):
    original = make(model_class, "ca_xavier_tied_qk")
    state_dict = original.state_dict()
    missing = [key for key in state_dict if "patch_embeddings" in key or key.endswith("cls_token")]
    partial = {key: value for key, value in state_dict.items() if key not in missing}
    torch.manual_seed(1)
    loaded, info = model_class.from_pretrained(
        None, config=original.config, state_dict=partial, output_loading_info=True
    )
    assert sorted(info["missing_keys"]) == sorted(missing)
    for key, value in loaded.state_dict().items():
        if key not in missing:
            assert torch.equal(value, state_dict[key]), key
    assert_follows_init_weights(loaded)
    assert not torch.equal(loaded.get_input_embeddings().projection.weight,
                           original.get_input_embeddings().projection.weight)


@pytest.mark.parametrize("model_class", MODEL_CLASSES, ids=lambda cls: cls.__name__)
def test_parameters_frozen_at_construction_stay_frozen_after_from_pretrained(model_class, tmp_path):
    # transformers 5 loads every floating-point tensor as a new trainable parameter.
    model = make(model_class, "channel_agnostic")
    frozen = {name for name, parameter in model.named_parameters() if not parameter.requires_grad}
    assert "embeddings.position_embeddings" in {name.removeprefix("phenom.") for name in frozen}
    model.save_pretrained(tmp_path)
    loaded = model_class.from_pretrained(tmp_path)
    assert {name for name, parameter in loaded.named_parameters() if not parameter.requires_grad} == frozen
    loaded, _ = model_class.from_pretrained(tmp_path, output_loading_info=True)
    assert {name for name, parameter in loaded.named_parameters() if not parameter.requires_grad} == frozen


# ----------------------------------------------------------------------------- save / load, arguments
@pytest.mark.parametrize("name", ["channel_agnostic", "standard"])
@pytest.mark.parametrize("model_class", MODEL_CLASSES, ids=lambda cls: cls.__name__)
def test_save_load_round_trip_gives_identical_outputs(model_class, name, tmp_path):
    model = make(model_class, name)
    pixels = random_pixels()
    model.save_pretrained(tmp_path)
    loaded = model_class.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        expected = model(pixels, **noise_for(model)).to_tuple()
        actual = loaded(pixels, **noise_for(model)).to_tuple()
    for first, second in zip(expected, actual, strict=True):
        torch.testing.assert_close(first, second, rtol=0, atol=0)


@pytest.mark.parametrize("model_class", MODEL_CLASSES, ids=lambda cls: cls.__name__)
def test_unknown_keyword_arguments_raise_type_error(model_class):
    model = make(model_class, "channel_agnostic")
    with pytest.raises(TypeError, match="bogus"):
        model(random_pixels(), bogus=1)
    with pytest.raises(TypeError, match="output_hidden_state"):
        model(random_pixels(), output_hidden_state=True)  # misspelt: never silently ignored


# ----------------------------------------------------------------------------- attentions
@pytest.mark.parametrize("name", ["channel_agnostic", "standard"])
@pytest.mark.parametrize("model_class", MODEL_CLASSES, ids=lambda cls: cls.__name__)
def test_output_attentions_returns_each_blocks_softmax_weights(model_class, name):
    model = make(model_class, name)
    pixels = random_pixels()
    with torch.no_grad():
        plain = model(pixels, output_hidden_states=True, **noise_for(model))
        out = model(pixels, output_attentions=True, output_hidden_states=True, **noise_for(model))
    tokens = out.hidden_states[0].shape[1]  # 1 + all tokens (encoder) or 1 + kept tokens (MIM)
    assert plain.attentions is None
    assert len(out.attentions) == model.config.num_hidden_layers
    for block, weights in enumerate(out.attentions, start=1):
        assert weights.shape == (2, model.config.num_attention_heads, tokens, tokens)
        torch.testing.assert_close(weights.sum(-1), torch.ones(weights.shape[:-1]))
        # The explicit softmax path gives the same tokens as SDPA, up to rounding.
        torch.testing.assert_close(out.hidden_states[block], plain.hidden_states[block], rtol=1e-5, atol=1e-5)
    first = plain.last_hidden_state if model_class is PhenomModel else plain.reconstruction
    second = out.last_hidden_state if model_class is PhenomModel else out.reconstruction
    torch.testing.assert_close(first, second, rtol=1e-5, atol=1e-5)
    # Also from the config (transformers pairs it with attn_implementation="eager"), and last in the tuple output.
    from_config = model_class._from_config(model.config, attn_implementation="eager").eval()
    from_config.load_state_dict(model.state_dict())
    from_config.config.output_attentions = True
    with torch.no_grad():
        as_tuple = from_config(pixels, return_dict=False, **noise_for(model))
    assert len(as_tuple[-1]) == model.config.num_hidden_layers
    torch.testing.assert_close(as_tuple[-1][0], out.attentions[0])


def test_attention_weights_are_the_released_attention_of_the_first_block():
    # Block 1 of the parallel (released) block recomputed by hand: softmax(q k^T / sqrt(d)) of its qk-normed heads.
    model = make(PhenomModel, "channel_agnostic")
    layer = model.encoder.layers[0]
    assert isinstance(layer, PhenomParallelLayer)
    pixels = random_pixels()
    with torch.no_grad():
        out = model(pixels, output_attentions=True, output_hidden_states=True)
        tokens = out.hidden_states[0]
        projected = layer.in_norm(tokens) @ layer.in_proj.weight.T + layer.fused_bias()
        _, query, key, _ = projected.split(layer.split_sizes, dim=-1)
        heads, head_dim = model.config.num_attention_heads, model.config.head_dim
        query = layer.q_norm(query.view(2, -1, heads, head_dim).transpose(1, 2))
        key = layer.k_norm(key.view(2, -1, heads, head_dim).transpose(1, 2))
        expected = torch.softmax(query @ key.transpose(-1, -2) / math.sqrt(head_dim), dim=-1)
    torch.testing.assert_close(out.attentions[0], expected, rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------- memory format, export
@pytest.mark.parametrize("name", ["channel_agnostic", "standard"])
def test_channels_last_memory_format_gives_the_same_outputs(name):
    model = make(PhenomModel, name)
    pixels = random_pixels(size=32).float()
    channels_last = pixels.to(memory_format=torch.channels_last)
    assert not channels_last.is_contiguous()
    with torch.no_grad():
        torch.testing.assert_close(model(channels_last).last_hidden_state, model(pixels).last_hidden_state,
                                   rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32], ids=["uint8", "float32"])
def test_torch_export_matches_eager(dtype):
    model = make(PhenomModel, "channel_agnostic")
    exported = torch.export.export(model, (random_pixels().to(dtype),), strict=False)
    other = random_pixels(seed=1).to(dtype)
    with torch.no_grad():
        expected = model(other)
        actual = exported.module()(other)
    torch.testing.assert_close(actual.last_hidden_state, expected.last_hidden_state, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(actual.pooler_output, expected.pooler_output, rtol=1e-5, atol=1e-5)


def test_exported_float_program_keeps_the_input_checks():
    model = make(PhenomModel, "channel_agnostic")
    program = torch.export.export(model, (random_pixels().float(),), strict=False).module()
    for pixels, message in [
        (torch.full((2, 6, 32, 32), -1.0), "non-negative"),
        (torch.full((2, 6, 32, 32), float("nan")), "NaN or infinite"),
        (torch.full((2, 6, 32, 32), 0.5), "a maximum.*<= 1.0"),
        (torch.full((2, 6, 32, 32), 300.0), "exceed pixel_scale=255"),
    ]:
        with pytest.raises(RuntimeError, match=message):
            program(pixels)
        with pytest.raises(ValueError, match=message):  # eager: the same message, with the offending value
            model(pixels)


def test_torch_export_of_the_masked_image_model_with_noise():
    model = make(PhenomForMaskedImageModeling, "channel_agnostic")
    noise = noise_for(model)
    exported = torch.export.export(model, (random_pixels().float(),), noise, strict=False)
    other = random_pixels(seed=1).float()
    with torch.no_grad():
        expected = model(other, **noise)
        actual = exported.module()(other, **noise)
    torch.testing.assert_close(actual.loss, expected.loss, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(actual.reconstruction, expected.reconstruction, rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------- gradient checkpointing
@pytest.mark.parametrize("name", ["channel_agnostic", "standard"])
@pytest.mark.parametrize("model_class", MODEL_CLASSES, ids=lambda cls: cls.__name__)
def test_gradient_checkpointing_gives_the_same_outputs_and_gradients(model_class, name):
    pixels = random_pixels()
    results = []
    for checkpointing in (False, True):
        model = make(model_class, name).train()
        if checkpointing:
            model.activation_checkpointing_enable()
        out = model(pixels, **noise_for(model))
        if model_class is PhenomModel:
            loss = out.pooler_output.pow(2).sum() + out.normalized_pooler_output.pow(2).sum()
        else:
            loss = out.loss
        loss.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        results.append((loss.detach(), grads))
    (loss, grads), (checkpointed_loss, checkpointed_grads) = results
    torch.testing.assert_close(checkpointed_loss, loss, rtol=0, atol=0)
    assert grads.keys() == checkpointed_grads.keys()
    assert grads.keys() == {n for n, p in make(model_class, name).named_parameters() if p.requires_grad}
    for key in grads:
        torch.testing.assert_close(checkpointed_grads[key], grads[key], rtol=1e-5, atol=1e-7)


"""PhenomModel: outputs, block numbering, pooling, trimming, channel/size generality, gradients, bad input."""

import numpy as np
import pytest
import torch
from conftest import random_pixels, small_config
from safetensors import safe_open
from transformers import AutoModel, pipeline

from modeling_phenom import PhenomConfig, PhenomForMaskedImageModeling, PhenomImageProcessor, PhenomModel
from modeling_phenom.modeling_phenom import self_standardize, sincos_2d_position_embedding


def make_model(**overrides):
    torch.manual_seed(0)
    return PhenomModel(small_config(**overrides)).eval()


def test_forward_shapes_and_pooling_definitions():
    model = make_model()
    pixels = random_pixels()
    with torch.no_grad():
        out = model(pixels, output_hidden_states=True)
    tokens = 1 + 6 * 16
    assert out.last_hidden_state.shape == (2, tokens, 32)
    assert len(out.hidden_states) == model.config.num_hidden_layers + 1
    torch.testing.assert_close(out.hidden_states[-1], out.last_hidden_state)
    # pooler_output = mean of patch tokens, CLS excluded, no LayerNorm; the normalized one = fc_norm of it.
    torch.testing.assert_close(out.pooler_output, out.last_hidden_state[:, 1:].mean(1))
    torch.testing.assert_close(out.normalized_pooler_output, model.fc_norm(out.last_hidden_state[:, 1:].mean(1)))


def test_block_k_pooled_embedding_is_mean_of_hidden_state_k():
    model = make_model()
    pixels = random_pixels()
    with torch.no_grad():
        hidden_states = model(pixels, output_hidden_states=True).hidden_states
        per_block = model.get_block_embeddings(pixels, blocks="all")
    assert sorted(per_block) == [1, 2, 3]
    for block, embedding in per_block.items():
        torch.testing.assert_close(embedding, hidden_states[block][:, 1:].mean(1))


def test_channelwise_embeddings_are_per_channel_token_means():
    model = make_model()
    pixels = random_pixels(num_channels=3)
    with torch.no_grad():
        last = model(pixels).last_hidden_state
        channelwise = model.get_channelwise_embeddings(pixels)
    assert channelwise.shape == (2, 3 * 32)
    for channel in range(3):
        expected = last[:, 1 + channel * 16 : 1 + (channel + 1) * 16].mean(1)
        torch.testing.assert_close(channelwise[:, channel * 32 : (channel + 1) * 32], expected)


def test_blocks_are_numbered_from_one_and_validated():
    model = make_model()
    assert model.resolve_blocks("last") == [3]
    assert model.resolve_blocks([3, 1]) == [1, 3]
    with pytest.raises(ValueError, match="numbered from 1"):
        model.resolve_blocks([0])
    with pytest.raises(ValueError, match="numbered from 1"):
        model.resolve_blocks(4)


def test_auto_round_trip_writes_real_safetensors_and_gives_identical_outputs(tmp_path):
    model = make_model()
    model.save_pretrained(tmp_path)
    with safe_open(tmp_path / "model.safetensors", framework="pt") as weights:
        assert "embeddings.cls_token" in set(weights.keys())
    reloaded = AutoModel.from_pretrained(tmp_path).eval()
    assert isinstance(reloaded, PhenomModel)
    pixels = random_pixels()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(pixels).last_hidden_state, model(pixels).last_hidden_state, rtol=0, atol=0)


def test_trimming_to_k_blocks_gives_block_k_output(tmp_path):
    model = make_model()
    model.save_pretrained(tmp_path)
    trimmed, info = AutoModel.from_pretrained(tmp_path, trim_encoder_blocks=2, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    assert trimmed.num_blocks == 2
    pixels = random_pixels()
    with torch.no_grad():
        full = model.get_block_embeddings(pixels, blocks=[2])[2]
        out = trimmed.eval()(pixels, output_hidden_states=True)
    assert len(out.hidden_states) == 3
    torch.testing.assert_close(out.pooler_output, full, rtol=0, atol=1e-6)


@pytest.mark.parametrize("num_channels", [1, 3, 6, 8, 16])
def test_channel_agnostic_model_accepts_any_channel_count(num_channels):
    model = make_model()
    with torch.no_grad():
        out = model(random_pixels(num_channels=num_channels))
    assert out.last_hidden_state.shape == (2, 1 + num_channels * 16, 32)
    assert torch.isfinite(out.pooler_output).all()


@pytest.mark.parametrize("height, width", [(48, 48), (64, 32), (16, 40)])
def test_non_training_sizes_get_positions_of_their_real_grid(height, width):
    model = make_model()
    pixels = torch.randint(0, 256, (1, 2, height, width), dtype=torch.uint8)
    with torch.no_grad():
        tokens = model.embed(pixels)
        patches = model.embeddings.patch_embeddings(
self_standardize(pixels, 255.0))
    grid_h, grid_w = height // 8, width // 8
    positions = tokens[0, 1:] - patches[0]
    expected = sincos_2d_position_embedding(grid_h, grid_w, 32)
    for channel in range(2):
        torch.testing.assert_close(positions[channel * grid_h * grid_w : (channel + 1) * grid_h * grid_w], expected)


def test_sincos_table_matches_the_formula():
    # openphenom.md §3.3: [sin(h w_k), cos(h w_k), sin(w w_k), cos(w w_k)], w_k = 10000^(-k / (D/4)), row-major.
    dim, grid = 16, 3
    quarter = dim // 4
    omega = 1.0 / 10000 ** (np.arange(quarter) / quarter)
    rows = []
    for h in range(grid):
        for w in range(grid):
            rows.append(np.concatenate([np.sin(h * omega), np.cos(h * omega), np.sin(w * omega), np.cos(w * omega)]))
    np.testing.assert_allclose(sincos_2d_position_embedding(grid, grid, dim).numpy(), np.array(rows), atol=1e-6)
    model = make_model(num_channels=11)
    table = model.embeddings.position_embeddings[0]
    assert table.shape == (1 + 11 * 16, 32) and not model.embeddings.position_embeddings.requires_grad
    assert torch.all(table[0] == 0)
    torch.testing.assert_close(table[1 + 16 * 10 :], sincos_2d_position_embedding(4, 4, 32))


def test_gradients_of_both_pooled_outputs_reach_every_trainable_parameter():
    model = make_model(qkv_bias=True).train()
    with torch.no_grad():  # non-zero biases so that no gradient vanishes by symmetry of the zero init
        for layer in model.encoder.layers:
            layer.mlp_bias.normal_()
    out = model(random_pixels())
    (out.pooler_output.pow(2).sum() + out.normalized_pooler_output.pow(2).sum()).backward()
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        assert parameter.grad is not None, name
        assert torch.isfinite(parameter.grad).all(), name
        if name.endswith("k_norm.bias"):
            continue  # adding one vector to every key shifts each query's logits by a constant: zero gradient
        assert parameter.grad.abs().sum() > 0, name


def test_drop_path_only_acts_in_training():
    model = make_model(drop_path_rate=0.5)
    pixels = random_pixels(batch_size=8)
    with torch.no_grad():
        eval_out = model(pixels).pooler_output
        torch.manual_seed(1)
        train_out = model.train()(pixels).pooler_output
    assert not torch.allclose(eval_out, train_out)


def test_legacy_bias_routing_changes_outputs_and_fixed_routing_feeds_mlp_bias_to_mlp():
    fixed = make_model()
    legacy = make_model(legacy_bias_routing=True)
    legacy.load_state_dict(fixed.state_dict())
    with torch.no_grad():
        for layer in list(fixed.encoder.layers) + list(legacy.encoder.layers):
            layer.mlp_bias.fill_(0.5)
        bias = fixed.encoder.layers[0].fused_bias()
        legacy_bias = legacy.encoder.layers[0].fused_bias()
    # fixed: [mlp_bias | 0 q | 0 k | 0 v]; legacy: [0 (3D) | mlp_bias] although split MLP-first.
    assert torch.all(bias[:64] == 0.5) and torch.all(bias[64:] == 0)
    assert torch.all(legacy_bias[: 3 * 32] == 0) and torch.all(legacy_bias[3 * 32 :] == 0.5)
    pixels = random_pixels()
    with torch.no_grad():
        assert not torch.allclose(fixed(pixels).pooler_output, legacy(pixels).pooler_output)


def test_standard_model_with_sequential_blocks():
    model = make_model(channel_agnostic=False, decoder_type="standard", block_type="sequential", qkv_bias=True)
    assert model.embeddings.patch_embeddings.projection.in_channels == 6
    with torch.no_grad():
        out = model(random_pixels(), output_hidden_states=True)
    assert out.last_hidden_state.shape == (2, 1 + 16, 32)
    assert len(out.hidden_states) == 4


@pytest.mark.parametrize(
    "pixels, overrides, message",
    [
        (torch.zeros(6, 32, 32, dtype=torch.uint8), {}, "4 dimensions"),
        (torch.zeros(1, 5, 32, 32, dtype=torch.uint8), dict(channel_agnostic=False, decoder_type="standard"),
         "exactly 6 channels"),
        (torch.zeros(1, 6, 30, 32, dtype=torch.uint8), {}, "divisible by the patch size 8"),
        (torch.full((1, 6, 32, 32), float("nan")), {}, "NaN or infinite"),
        (torch.full((1, 6, 32, 32), float("inf")), {}, "NaN or infinite"),
        (torch.rand(1, 6, 32, 32), {}, "maximum of .* <= 1.0"),
        (torch.full((1, 6, 32, 32), 300.0), {}, "exceed pixel_scale"),
        (torch.full((1, 6, 32, 32), -1.0), {}, "non-negative"),
        (torch.zeros(1, 6, 32, 32, dtype=torch.int16), {}, "uint8"),
    ],
)
def test_bad_input_gets_a_clear_error(pixels, overrides, message):
    model = make_model(**overrides)
    with pytest.raises(ValueError, match=message):
        model(pixels)


def test_unit_scale_floats_are_accepted_with_pixel_scale_one():
    model = make_model(pixel_scale=1.0)
    pixels = random_pixels()
    with torch.no_grad():
        reference = make_model()(pixels).pooler_output
        unit = model(pixels.float() / 255.0).pooler_output
    torch.testing.assert_close(unit, reference, rtol=1e-4, atol=1e-4)


def test_image_feature_extraction_pipeline_returns_embeddings(tmp_path):
    model = make_model()
    model.save_pretrained(tmp_path)
    PhenomImageProcessor(crop_size=32).save_pretrained(tmp_path)
    extractor = pipeline("image-feature-extraction", model=str(tmp_path))
    from PIL import Image

    # A 3-band PIL image is a 3-channel well of one 32 px view (tests/test_pipeline_phenom.py: microscopy wells).
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8))
    pooled = extractor(image, pool=True, return_tensors=True)
    with torch.no_grad():
        expected = model(torch.from_numpy(np.array(image)).permute(2, 0, 1)[None]).pooler_output[0]
    torch.testing.assert_close(pooled, expected)


def test_decoder_qk_norm_adds_layernorms_only_to_decoder_attention_and_is_off_in_the_released_geometry():
    released = PhenomForMaskedImageModeling(PhenomConfig.from_preset("tiny"))
    assert isinstance(released.decoder.cross_attention.q_norm, torch.nn.Identity)
    assert not any("decoder" in name and "_norm.weight" in name and ("q_norm" in name or "k_norm" in name)
                   for name, _ in released.named_parameters())
    normed = PhenomForMaskedImageModeling(PhenomConfig.from_preset("tiny", decoder_qk_norm=True))
    head_dim = normed.config.decoder_hidden_size // normed.config.decoder_cross_attention_heads
    assert normed.decoder.cross_attention.q_norm.normalized_shape == (head_dim,)
    assert isinstance(normed.decoder.layers[0][0].attention.k_norm, torch.nn.LayerNorm)
    # The encoder is untouched: same parameter names and shapes as the released geometry.
    assert ({name: p.shape for name, p in normed.phenom.named_parameters()}
            == {name: p.shape for name, p in released.phenom.named_parameters()})
    outputs = normed(pixel_values=torch.randint(0, 256, (2, 6, 256, 256), dtype=torch.uint8))
    assert torch.isfinite(outputs.loss)


def test_xavier_attention_init_widens_only_the_attention_input_projections():
    torch.manual_seed(0)
    model = PhenomForMaskedImageModeling(PhenomConfig.from_preset("tiny", attention_init="xavier_uniform"))

    def xavier_std(weight):
        fan_out, fan_in = weight.shape
        return (6 / (fan_in + fan_out)) ** 0.5 / 3**0.5

    inputs = [model.phenom.encoder.layers[0].in_proj.weight, model.decoder.cross_attention.query.weight,
              model.decoder.cross_attention.key_value.weight, model.decoder.layers[0][0].attention.qkv.weight]
    for weight in inputs:
        assert abs(weight.std().item() / xavier_std(weight) - 1) < 0.05
    # Output projections and the pixel head keep the truncated normal (std 0.02): the first loss stays ~1.
    for weight in (model.phenom.encoder.layers[0].attn_out_proj.weight, model.decoder.cross_attention.proj.weight,
                   model.decoder.prediction.weight):
        assert abs(weight.std().item() - 0.02) < 0.002
    default = PhenomForMaskedImageModeling(PhenomConfig.from_preset("tiny"))
    assert abs(default.phenom.encoder.layers[0].in_proj.weight.std().item() - 0.02) < 0.002


def test_tied_qk_init_starts_cross_attention_keys_equal_to_queries_and_checkpoints_load_as_saved(tmp_path):
    torch.manual_seed(0)
    config = PhenomConfig.from_preset("tiny", decoder_qk_norm=True, decoder_tied_qk_init=True)
    model = PhenomForMaskedImageModeling(config)
    attention = model.decoder.cross_attention
    width = attention.query.weight.shape[0]
    assert torch.equal(attention.key_value.weight[:width], attention.query.weight)
    assert not torch.equal(attention.key_value.weight[width:], attention.query.weight)  # values stay independent
    assert attention.key_value.weight.data_ptr() != attention.query.weight.data_ptr()  # a copy, not shared storage
    # Same-position tokens attend to each other first: the query-key score matrix W_q W_k^T is positive semi-definite.
    scores = attention.query.weight.T @ attention.key_value.weight[:width]
    assert torch.linalg.eigvalsh((scores + scores.T) / 2).min() > -1e-5
    default = PhenomForMaskedImageModeling(PhenomConfig.from_preset("tiny"))
    assert not torch.equal(default.decoder.cross_attention.key_value.weight[:width],
                           default.decoder.cross_attention.query.weight)
    # A trained model (keys moved apart from queries) loads with its own keys, not re-tied ones.
    with torch.no_grad():
        attention.key_value.weight.add_(0.5)
    model.save_pretrained(tmp_path)
    loaded = PhenomForMaskedImageModeling.from_pretrained(tmp_path)
    torch.testing.assert_close(loaded.decoder.cross_attention.key_value.weight, attention.key_value.weight)


def test_per_channel_embeddings_are_refused_for_a_standard_model():
    # 96 patch tokens split evenly into 6 "channels", so without the check this would return a plausible wrong answer.
    config = small_config(image_size=32, patch_size=4, channel_agnostic=False, decoder_type="standard")
    model = PhenomModel(config).eval()
    pixels = torch.randint(0, 256, (1, 6, 32, 48), dtype=torch.uint8)  # 8 x 12 = 96 tokens
    with pytest.raises(ValueError, match="channel-agnostic"):
        model.get_block_embeddings(pixels, per_channel=True)
    with pytest.raises(ValueError, match="channel-agnostic"):
        model.get_channelwise_embeddings(pixels)
    assert model.get_block_embeddings(pixels, blocks="last")[model.num_blocks].shape == (1, 32)

"""PhenomForMaskedImageModeling: sizes, masking, both decoders, MSE + Fourier loss, Auto round trips, overfitting."""

import pytest
import torch
from conftest import random_pixels, small_config
from transformers import AutoModel, AutoModelForMaskedImageModeling, AutoModelForPreTraining

from modeling_phenom import PhenomConfig, PhenomForMaskedImageModeling, PhenomModel
from modeling_phenom.modeling_phenom import (
    fourier_token_error,
    patchify,
    random_masking,
    restore_token_order,
    self_standardize,
)

STANDARD = dict(channel_agnostic=False, decoder_type="standard")


def make_model(**overrides):
    torch.manual_seed(0)
    return PhenomForMaskedImageModeling(small_config(**overrides)).eval()


def count_parameters(module):
    trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in module.parameters())


def test_ca_s16_with_decoder_has_the_released_parameter_counts():
    # openphenom.md §2.2: 178,045,568 values, 176,176,384 trainable (the two sin-cos tables and the CLS placeholder
    # are frozen). Phenom also freezes the encoder's fc_norm head (768 values) in the MAE model: no loss reaches it.
    with torch.device("meta"):
        model = PhenomForMaskedImageModeling(PhenomConfig.from_preset("ca-s16"))
    assert count_parameters(model) == (176_176_384 - 768, 178_045_568)
    assert count_parameters(model.phenom.fc_norm) == (0, 768)
    # decoder (155,257,344) + encoder_decoder_proj (197,120) + decoder_pred (131,328)
    assert count_parameters(model.decoder)[1] == 155_585_792


def test_g8_with_its_standard_decoder_has_about_1_87_billion_parameters():
    with torch.device("meta"):
        model = PhenomForMaskedImageModeling(PhenomConfig.from_preset("g8"))
    trainable, total = count_parameters(model)
    assert 1.86e9 <= trainable <= total <= 1.88e9
    assert len(model.decoder.layers) == 8 and model.decoder.prediction.out_features == 8 * 8 * 6


@pytest.mark.parametrize("num_tokens, mask_ratio", [(96, 0.75), (96, 0.0), (50, 0.5), (7, 0.9), (1536, 0.75)])
def test_masking_keeps_int_share_and_ids_restore_inverts_the_shuffle(num_tokens, mask_ratio):
    generator = torch.Generator().manual_seed(num_tokens)
    tokens = torch.randn(3, num_tokens, 5, generator=generator)
    noise = torch.rand(3, num_tokens, generator=generator)
    kept, mask, ids_restore = random_masking(tokens, mask_ratio, noise)
    num_kept = int(num_tokens * (1 - mask_ratio))
    shuffle = torch.argsort(noise, dim=1)
    assert kept.shape == (3, num_kept, 5)
    # the kept tokens are the lowest-noise ones, in increasing-noise (shuffled) order
    torch.testing.assert_close(kept, torch.stack([tokens[b, shuffle[b, :num_kept]] for b in range(3)]), rtol=0, atol=0)
    assert torch.equal(torch.gather(shuffle, 1, ids_restore), torch.arange(num_tokens).expand(3, -1))
    assert torch.all(mask.sum(dim=1) == num_tokens - num_kept)
    removed = torch.ones(3, num_tokens)
    for b in range(3):
        removed[b, shuffle[b, :num_kept]] = 0
    assert torch.equal(mask, removed)
    # deterministic given the noise
    again = random_masking(tokens, mask_ratio, noise)
    assert all(torch.equal(first, second) for first, second in zip((kept, mask, ids_restore), again, strict=True))
    # un-shuffling with mask tokens puts every kept token back in place and a mask token everywhere else
    mask_token = torch.full((1, 1, 5), 7.0)
    restored = restore_token_order(kept, mask_token, ids_restore)
    expected = torch.where(mask[..., None].bool(), mask_token.expand(3, num_tokens, 5), tokens)
    torch.testing.assert_close(restored, expected, rtol=0, atol=0)


def test_noise_of_the_wrong_shape_is_refused():
    model = make_model()
    with pytest.raises(ValueError, match=r"noise must have shape \[batch, num_tokens\] = \[2, 96\]"):
        model(random_pixels(), noise=torch.rand(2, 16))


def test_forward_masks_with_the_given_noise_and_the_encoder_sees_only_kept_tokens():
    model = make_model()
    pixels = random_pixels()
    noise = torch.rand(2, 96, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        out = model(pixels, noise=noise, output_hidden_states=True)
        again = model(pixels, noise=noise)
        tokens = model.phenom.embed(pixels)
    keep = int(96 * 0.25)
    assert out.latent.shape == (2, 1 + keep, 32) and out.reconstruction.shape == (2, 96, 64)
    torch.testing.assert_close(out.reconstruction, again.reconstruction, rtol=0, atol=0)
    shuffle = torch.argsort(noise, dim=1)[:, :keep]
    expected_input = torch.cat([tokens[:, :1], torch.stack([tokens[b, 1:][shuffle[b]] for b in range(2)])], dim=1)
    torch.testing.assert_close(out.hidden_states[0], expected_input, rtol=0, atol=0)


def test_random_masks_differ_between_calls_without_noise():
    model = make_model()
    pixels = random_pixels()
    with torch.no_grad():
        assert not torch.equal(model(pixels).mask, model(pixels).mask)


def test_nothing_masked_gives_loss_none_and_a_full_reconstruction():
    model = make_model(fourier_loss_weight=0.5)
    with torch.no_grad():
        out = model(random_pixels(), mask_ratio=0.0)
    assert out.loss is None and out.reconstruction_loss is None and out.fourier_loss is None
    assert out.latent.shape == (2, 97, 32) and torch.all(out.mask == 0)
    assert torch.isfinite(out.reconstruction).all()
    terms = model.compute_loss(out.reconstruction, torch.zeros(2, 6, 32, 32), out.mask)
    assert terms.loss is None


@pytest.mark.parametrize("overrides", [{}, STANDARD], ids=["channel_agnostic", "standard"])
def test_perfect_reconstruction_has_zero_loss(overrides):
    model = make_model(fourier_loss_weight=0.3, **overrides)
    pixels = random_pixels()
    standardized = self_standardize(pixels, 255.0)
    target = patchify(standardized, 8, channel_agnostic=not overrides)
    mask = (torch.rand(target.shape[:2], generator=torch.Generator().manual_seed(0)) < 0.7).float()
    terms = model.compute_loss(target.clone(), standardized, mask)
    assert terms.loss.item() == 0 and terms.reconstruction_loss.item() == 0 and terms.fourier_loss.item() == 0
    noisy = model.compute_loss(target + 0.1, standardized, mask)
    assert noisy.loss.item() > 0


@pytest.mark.parametrize("overrides", [{}, STANDARD], ids=["channel_agnostic", "standard"])
def test_per_patch_fourier_term_of_constant_images_is_the_closed_form(overrides):
    # A constant p x p patch has one non-zero DFT coefficient, p*p*|a| at frequency 0; so the mean over the patch of
    # | |F(a)| - |F(b)| | is | |a| - |b| |. A constant image self-standardizes to 0, so the target is 0 everywhere.
    model = make_model(fourier_loss_weight=0.25, **overrides)
    channel_agnostic = not overrides
    constant = torch.full((2, 6, 32, 32), 93, dtype=torch.uint8)
    standardized = self_standardize(constant, 255.0)
    assert torch.all(standardized == 0)
    target = patchify(standardized, 8, channel_agnostic)
    levels = torch.linspace(-1.5, 2.0, target.shape[0] * target.shape[1]).reshape(target.shape[:2])
    reconstruction = levels[..., None].expand_as(target).contiguous()
    if not channel_agnostic:  # constant per channel patch: the level differs per channel, constant within each patch
        per_channel = torch.tensor([1.0, -2.0, 0.5, 3.0, -0.25, 1.25])
        reconstruction = (levels[..., None, None] * per_channel).expand(2, 16, 64, 6).reshape(target.shape)
    error = fourier_token_error(reconstruction, target, "per_patch", 8, 6, channel_agnostic)
    expected = reconstruction.reshape(2, target.shape[1], -1, 1 if channel_agnostic else 6)[:, :, 0].abs().mean(-1)
    torch.testing.assert_close(error, expected)
    mask = torch.ones(target.shape[:2])
    terms = model.compute_loss(reconstruction, standardized, mask)
    mse = reconstruction.pow(2).mean(-1).mean()
    torch.testing.assert_close(terms.reconstruction_loss, mse)
    torch.testing.assert_close(terms.fourier_loss, expected.mean())
    torch.testing.assert_close(terms.loss, 0.75 * mse + 0.25 * expected.mean())


def test_reference_fourier_reshape_is_per_patch_when_tokens_per_channel_equal_pixels_per_patch():
    # openphenom.md §3.8: T == P (a 4 x 4 grid of 4 x 4 patches) makes the memory reinterpretation a per-patch FFT.
    generator = torch.Generator().manual_seed(0)
    reconstruction, target = torch.randn(2, 2, 6 * 16, 16, generator=generator)
    reference = fourier_token_error(reconstruction, target, "reference", 4, 6, True)
    per_patch = fourier_token_error(reconstruction, target, "per_patch", 4, 6, True)
    torch.testing.assert_close(reference, per_patch)
    # ... and not otherwise (T = 16 tokens, P = 64 pixels)
    reconstruction, target = torch.randn(2, 2, 6 * 16, 64, generator=generator)
    assert not torch.allclose(
        fourier_token_error(reconstruction, target, "reference", 8, 6, True),
        fourier_token_error(reconstruction, target, "per_patch", 8, 6, True),
    )
    with pytest.raises(ValueError, match="square token grid"):
        fourier_token_error(torch.zeros(1, 6 * 8, 16), torch.zeros(1, 6 * 8, 16), "reference", 4, 6, True)


def test_fourier_term_averages_over_masked_tokens_only_when_asked():
    pixels = random_pixels()
    noise = torch.rand(2, 96, generator=torch.Generator().manual_seed(1))
    outputs = {}
    for masked in (True, False):
        model = make_model(fourier_loss_weight=0.5, mask_fourier_loss=masked)
        with torch.no_grad():
            outputs[masked] = model(pixels, noise=noise)
    reconstruction, mask = outputs[True].reconstruction, outputs[True].mask
    target = patchify(self_standardize(pixels, 255.0), 8, True)
    error = fourier_token_error(reconstruction, target, "per_patch", 8, 6, True)
    torch.testing.assert_close(outputs[True].fourier_loss, (error * mask).sum() / mask.sum())
    torch.testing.assert_close(outputs[False].fourier_loss, error.mean())
    torch.testing.assert_close(outputs[True].reconstruction_loss, outputs[False].reconstruction_loss)


@pytest.mark.parametrize("overrides", [{}, STANDARD], ids=["channel_agnostic", "standard"])
def test_gradients_reach_every_trainable_parameter_of_encoder_and_decoder(overrides):
    model = make_model(fourier_loss_weight=0.1, qkv_bias=True, **overrides).train()
    with torch.no_grad():  # non-zero biases so that no gradient vanishes by symmetry of the zero init
        for layer in model.phenom.encoder.layers:
            layer.mlp_bias.normal_()
    out = model(random_pixels(), mask_ratio=0.5)
    out.loss.backward()
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            assert parameter.grad is None, name
            continue
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name
        if name.endswith("k_norm.bias"):
            continue  # adding one vector to every key shifts each query's logits by a constant: zero gradient
        assert parameter.grad.abs().sum() > 0, name
    frozen = {name for name, parameter in model.named_parameters() if not parameter.requires_grad}
    # The sin-cos tables, and the encoder's pooling head, which is not on the MAE path (the model freezes it itself).
    expected_frozen = {"phenom.embeddings.position_embeddings", "decoder.position_embeddings",
                       "phenom.fc_norm.weight", "phenom.fc_norm.bias"}
    if not overrides:
        expected_frozen.add("decoder.cls_modality_embedding")
    assert frozen == expected_frozen


def test_channel_agnostic_decoder_needs_its_channel_count():
    model = make_model()
    with pytest.raises(ValueError, match="exactly decoder_num_modalities=6 channels"):
        model(random_pixels(num_channels=4))


def test_mask_ratio_argument_is_validated():
    with pytest.raises(ValueError, match=r"mask_ratio must be in \[0, 1\)"):
        make_model()(random_pixels(), mask_ratio=1.0)


@pytest.mark.parametrize("overrides", [{}, STANDARD], ids=["channel_agnostic", "standard"])
@pytest.mark.parametrize("height, width", [(32, 32), (48, 24)])
def test_reconstruction_to_images_inverts_patchify(overrides, height, width):
    model = make_model(**overrides)
    images = torch.randn(2, 6, height, width)
    tokens = patchify(images, 8, channel_agnostic=not overrides)
    image_size = None if height == width else (height, width)
    torch.testing.assert_close(model.reconstruction_to_images(tokens, image_size), images, rtol=0, atol=0)
    with torch.no_grad():
        out = model(torch.randint(0, 256, (2, 6, height, width), dtype=torch.uint8))
    assert model.reconstruction_to_images(out.reconstruction, (height, width)).shape == (2, 6, height, width)


def test_standard_decoder_reconstructs_all_channels_per_token_at_other_grids():
    model = make_model(**STANDARD)
    pixels = torch.randint(0, 256, (2, 6, 48, 40), dtype=torch.uint8)
    with torch.no_grad():
        out = model(pixels)
    assert out.reconstruction.shape == (2, 6 * 5, 8 * 8 * 6) and out.mask.shape == (2, 30)
    assert torch.isfinite(out.loss)


def test_auto_round_trip_and_encoder_from_the_mim_checkpoint(tmp_path):
    model = make_model(fourier_loss_weight=0.1)
    model.save_pretrained(tmp_path)
    pixels = random_pixels()
    noise = torch.rand(2, 96, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = model(pixels, noise=noise)
        for auto_class in (AutoModelForMaskedImageModeling, AutoModelForPreTraining):
            reloaded, info = auto_class.from_pretrained(tmp_path, output_loading_info=True)
            assert isinstance(reloaded, PhenomForMaskedImageModeling)
            assert not any(info.values()), info
            out = reloaded.eval()(pixels, noise=noise)
            for field in ("loss", "reconstruction_loss", "fourier_loss", "reconstruction", "latent"):
                torch.testing.assert_close(getattr(out, field), getattr(expected, field), rtol=0, atol=0)
        encoder, info = AutoModel.from_pretrained(tmp_path, output_loading_info=True)
        assert isinstance(encoder, PhenomModel)
        assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
        torch.testing.assert_close(
            encoder.eval()(pixels).last_hidden_state, model.phenom(pixels).last_hidden_state, rtol=0, atol=0
        )


def blob_pixels(batch_size=2, num_channels=6, size=32, seed=0):
    """uint8 images of four Gaussian spots per channel: structure that other patches and channels can predict."""
    generator = torch.Generator().manual_seed(seed)
    centers = torch.rand(batch_size, num_channels, 4, 2, generator=generator) * size
    radii = 2 + 4 * torch.rand(batch_size, num_channels, 4, 1, 1, generator=generator)
    coords = torch.arange(size, dtype=torch.float32)
    row_distance = (coords[:, None] - centers[..., 0, None, None]) ** 2
    col_distance = (coords[None, :] - centers[..., 1, None, None]) ** 2
    images = torch.exp(-(row_distance + col_distance) / (2 * radii**2)).sum(2)
    return (255 * images / images.amax(dim=(2, 3), keepdim=True)).to(torch.uint8)


@pytest.mark.parametrize("overrides", [{}, STANDARD], ids=["channel_agnostic", "standard"])
def test_tiny_model_overfits_one_batch(overrides):
    torch.manual_seed(0)
    config = small_config(fourier_loss_weight=0.01, decoder_hidden_size=32, decoder_intermediate_size=64, **overrides)
    model = PhenomForMaskedImageModeling(config).train()
    pixels = blob_pixels()
    noise = torch.rand(2, 96 if not overrides else 16, generator=torch.Generator().manual_seed(5))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)
    losses = []
    for _ in range(200):
        loss = model(pixels, noise=noise).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if losses[-1] < losses[0] / 5:
            break
    assert losses[-1] < losses[0] / 5, (losses[0], losses[-1], len(losses))

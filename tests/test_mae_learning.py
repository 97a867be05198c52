"""The MAE objective is learnable end to end: masked patches get predicted from the visible ones.

A loss that only falls because a random-init decoder learns to output zeros proves nothing about masking, un-shuffling
or the token order of the target; here the zero predictor's loss is 1.0 (self-standardized pixels), so a masked-token
MSE well below it can only come from information carried from visible tokens to masked ones.
"""

import torch
import torch.nn.functional as F

from modeling_phenom import PhenomConfig, PhenomForMaskedImageModeling
from train.optim import Lion, one_cycle_schedule, parameter_groups


def smooth_identical_channel_images(count: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """uint8 `[count, 6, size, size]`: bilinear upsampling of a random 2 x 2 grid, the same image in every channel, so
    a masked token is predictable from the same position in any visible channel and from its neighbours."""
    coarse = torch.rand(count, 1, 2, 2, generator=generator)
    images = F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=True)
    return (images.expand(count, 6, size, size) * 255).round().to(torch.uint8)


def train_on_smooth_images(steps: int, **overrides) -> list[float]:
    """Masked-patch MSE per step of a tiny CA MAE (16 px patches, 64 px images) trained with Lion + one-cycle."""
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    images = smooth_identical_channel_images(64, 64, generator)
    model = PhenomForMaskedImageModeling(PhenomConfig.from_preset("tiny", patch_size=16, **overrides))
    peak_lr = 1e-3
    optimizer = Lion(parameter_groups(model, 0.05), lr=peak_lr, betas=(0.9, 0.95))
    schedule = one_cycle_schedule(optimizer, peak_lr, steps)
    losses = []
    for _ in range(steps):
        batch = images[torch.randint(len(images), (32,), generator=generator)]
        outputs = model(pixel_values=batch)
        outputs.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        schedule.step()
        losses.append(outputs.reconstruction_loss.item())
    return losses


def test_tiny_channel_agnostic_mae_learns_to_predict_masked_patches():
    losses = train_on_smooth_images(150)
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert 0.9 < first < 1.1, f"a fresh model should score about the zero predictor's 1.0, got {first:.3f}"
    assert last < 0.8 * first, f"masked-patch MSE {first:.3f} -> {last:.3f}: nothing learned from visible tokens"


def test_decoder_qk_norm_lets_the_released_decoder_learn_in_40_steps_where_it_otherwise_cannot():
    # The CA decoder's cross-attention replaces its tokens (no residual): while its attention is uniform every masked
    # token gets the same input, whatever its position. With weights at std 0.02 the attention logits start near 0
    # and stay there for ~100 steps; normalized queries and keys start at logits of order 1 (docs/design.md).
    released = train_on_smooth_images(40)
    normed = train_on_smooth_images(40, decoder_qk_norm=True, attention_init="xavier_uniform")
    first = sum(released[:5]) / 5
    assert 0.9 < first < 1.1 and abs(sum(normed[:5]) / 5 - first) < 0.1, "both start at the zero predictor's 1.0"
    assert sum(released[-5:]) / 5 > 0.9 * first, "the released initialization was expected to need more steps"
    assert sum(normed[-5:]) / 5 < 0.75 * first, f"qk-norm decoder: {first:.3f} -> {sum(normed[-5:]) / 5:.3f}"

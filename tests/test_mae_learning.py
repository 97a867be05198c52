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


def test_tiny_channel_agnostic_mae_learns_to_predict_masked_patches():
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    images = smooth_identical_channel_images(64, 64, generator)
    model = PhenomForMaskedImageModeling(PhenomConfig.from_preset("tiny", patch_size=16))
    model.phenom.fc_norm.requires_grad_(False)
    steps, peak_lr = 150, 1e-3
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
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert 0.9 < first < 1.1, f"a fresh model should score about the zero predictor's 1.0, got {first:.3f}"
    assert last < 0.8 * first, f"masked-patch MSE {first:.3f} -> {last:.3f}: nothing learned from visible tokens"

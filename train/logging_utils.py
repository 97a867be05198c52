"""Run logging beside the trackers: one JSON line per interval (`log.jsonl`) and reconstruction grids (PNG)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch

from phenom_data.atomic import atomic_path, atomic_write_text


class JsonlLog:
    """Appends one JSON object per line and flushes, so a killed run keeps every interval it logged."""

    def __init__(self, path: Path, truncate_after_step: int | None = None):
        self.path = Path(path)
        if truncate_after_step is not None and self.path.is_file():
            # A resumed run rewrites the intervals after its checkpoint; a line cut short by a kill is dropped.
            kept = [line for line in self.path.read_text().splitlines()
                    if _step(line) is not None and _step(line) <= truncate_after_step]
            atomic_write_text(self.path, "".join(line + "\n" for line in kept))
        elif truncate_after_step is None:
            self.path.write_text("")

    def write(self, record: dict) -> None:
        with self.path.open("a") as handle:
            handle.write(json.dumps(record) + "\n")


def _step(line: str) -> int | None:
    """The `step` of one log line, or None for a line that is not a complete JSON record."""
    try:
        return json.loads(line).get("step", 0)
    except (ValueError, AttributeError):
        return None


def save_reconstruction_grid(
    path: Path, image: torch.Tensor, mask_image: torch.Tensor, reconstruction: torch.Tensor, title: str = ""
) -> None:
    """PNG grid, one column per channel: input, masked input (removed patches grey), reconstruction.

    Args:
        image: standardized `[C, H, W]` input; mask_image: `[C, H, W]`, 1 where removed;
        reconstruction: `[C, H, W]` in the same standardized units.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    image, mask_image, reconstruction = (t.detach().float().cpu().numpy() for t in (image, mask_image, reconstruction))
    num_channels = image.shape[0]
    figure, axes = plt.subplots(3, num_channels, figsize=(1.8 * num_channels, 5.6), squeeze=False)
    masked = np.where(mask_image > 0.5, np.nan, image)
    rows = (("input", image), ("masked", masked), ("reconstruction", reconstruction))
    for row, (label, planes) in enumerate(rows):
        for channel in range(num_channels):
            axis = axes[row, channel]
            low, high = np.nanpercentile(image[channel], [1, 99]) if math.isfinite(image[channel].sum()) else (0, 1)
            cmap = matplotlib.colormaps["magma"].copy()
            cmap.set_bad("0.5")
            axis.imshow(planes[channel], cmap=cmap, vmin=low, vmax=high)
            axis.set_xticks([])
            axis.set_yticks([])
            if channel == 0:
                axis.set_ylabel(label)
            if row == 0:
                axis.set_title(f"channel {channel + 1}", fontsize=8)
    figure.suptitle(title)
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, dpi=80, format="png")
    plt.close(figure)


__all__ = ["JsonlLog", "save_reconstruction_grid"]

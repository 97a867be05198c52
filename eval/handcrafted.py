"""A CellProfiler-style hand-crafted baseline: per-channel intensity, texture and shape statistics of a well, computed
with scikit-image (no model), written in the official embeddings layout so `phenom eval` scores it like a model.

Features of one well image uint8 `[C, H, W]` (C channels in the reader's order; channel 0 is the nuclear stain):

- intensity, per channel: mean, standard deviation, 10/50/90th percentiles, skewness, kurtosis (raw 8-bit counts:
  batch correction downstream removes plate effects, as for model embeddings);
- texture, per channel: Haralick-style grey-level co-occurrence statistics (`skimage.feature.graycomatrix` on the
  channel quantized to `GLCM_LEVELS` levels over its own 1-99% range, distances 1 and 3 px, four angles averaged):
  contrast, homogeneity, energy, correlation;
- shape: nuclei segmented on channel 0 (Otsu threshold, small objects removed, `skimage.measure.label`) and cells on
  the sum of the other channels; count, mean and std of area, mean eccentricity, solidity and perimeter/area per
  object class, and the nuclear fraction of the cell area;
- co-localization: Pearson correlation of every channel pair.

That is 6 x (7 + 8) + 2 x 6 + 1 + 15 = 118 numbers for six channels.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable

import numpy as np
from scipy import stats
from skimage import filters, measure, morphology
from skimage.feature import graycomatrix, graycoprops

GLCM_LEVELS = 32
GLCM_DISTANCES = (1, 3)
GLCM_ANGLES = (0.0, np.pi / 4, np.pi / 2, 3 * np.pi / 4)
GLCM_PROPERTIES = ("contrast", "homogeneity", "energy", "correlation")
MIN_OBJECT_AREA = 12  # px: smaller connected components are noise, not nuclei or cells


def _intensity(channel: np.ndarray) -> list[float]:
    values = channel.ravel().astype(np.float64)
    p10, p50, p90 = np.percentile(values, (10, 50, 90))
    flat = values.std() < 1e-9  # skew/kurtosis are undefined on a constant channel
    return [values.mean(), values.std(), p10, p50, p90,
            0.0 if flat else float(stats.skew(values)), 0.0 if flat else float(stats.kurtosis(values))]


def _texture(channel: np.ndarray) -> list[float]:
    low, high = np.percentile(channel, (1, 99))
    scaled = (channel.astype(np.float32) - low) / max(float(high - low), 1.0)
    quantized = np.clip(scaled * GLCM_LEVELS, 0, GLCM_LEVELS - 1).astype(np.uint8)
    matrix = graycomatrix(quantized, GLCM_DISTANCES, GLCM_ANGLES, levels=GLCM_LEVELS, symmetric=True, normed=True)
    features = []
    for prop in GLCM_PROPERTIES:
        values = np.nan_to_num(graycoprops(matrix, prop), nan=0.0)  # correlation is NaN on a flat channel
        features += list(values.mean(axis=1))  # one value per distance, angles averaged
    return features


def _objects(mask_source: np.ndarray) -> tuple[list[float], int]:
    """Shape statistics of the objects in `mask_source` (float image) and their total area."""
    if mask_source.max() - mask_source.min() < 1e-6:
        return [0.0] * 6, 0
    mask = mask_source > filters.threshold_otsu(mask_source)
    mask = morphology.remove_small_objects(mask, max_size=MIN_OBJECT_AREA)
    regions = measure.regionprops(measure.label(mask))
    if not regions:
        return [0.0] * 6, 0
    area = np.array([region.area for region in regions], dtype=np.float64)
    eccentricity = np.array([region.eccentricity for region in regions])
    solidity = np.array([region.solidity for region in regions])
    compactness = np.array([region.perimeter / region.area for region in regions])
    return [len(regions), area.mean(), area.std(), eccentricity.mean(), solidity.mean(), compactness.mean()], \
        int(area.sum())


def handcrafted_features(image: np.ndarray) -> np.ndarray:
    """float32 `[n_features]` for one well image uint8 `[C, H, W]` (C >= 2; see the module docstring)."""
    if image.ndim != 3 or image.shape[0] < 2:
        raise ValueError(f"expected a well image [C >= 2, H, W], got shape {image.shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"expected uint8 pixels (the readers' output), got {image.dtype}")
    features: list[float] = []
    for channel in image:
        features += _intensity(channel)
        features += _texture(channel)
    nuclei, nuclear_area = _objects(filters.gaussian(image[0].astype(np.float32), sigma=1.0))
    cells, cell_area = _objects(filters.gaussian(image[1:].astype(np.float32).sum(axis=0), sigma=2.0))
    features += nuclei + cells + [nuclear_area / cell_area if cell_area else 0.0]
    flat = image.reshape(image.shape[0], -1).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        correlation = np.nan_to_num(np.corrcoef(flat), nan=0.0)
    features += list(correlation[np.triu_indices(image.shape[0], k=1)])
    return np.asarray(features, dtype=np.float32)


def embed_handcrafted(wells: Iterable, processes: int | None = None, progress: bool = True
                      ) -> tuple[list[str], np.ndarray]:
    """Features of every well of a reader (`Well` objects) -> (well ids, float32 `[wells, n_features]`); a well of
    several sites gets the mean of its sites' features.

    `processes` > 1 computes sites in a process pool (default: the CPU count, at most 4)."""
    from tqdm.auto import tqdm

    processes = processes or min(4, os.cpu_count() or 1)
    well_ids, images, site_counts = [], [], []
    for well in wells:
        well_ids.append(well.well_id)
        images.extend(site.image for site in well.sites)
        site_counts.append(len(well.sites))
    if not images:
        raise ValueError("no wells to compute hand-crafted features for")
    with contextlib.ExitStack() as stack:
        if processes > 1:
            from concurrent.futures import ProcessPoolExecutor

            mapped = stack.enter_context(ProcessPoolExecutor(processes)).map(handcrafted_features, images,
                                                                             chunksize=16)
        else:
            mapped = map(handcrafted_features, images)
        rows = list(tqdm(mapped, total=len(images), desc="hand-crafted features", unit="site", disable=not progress))
    bounds = np.cumsum([0, *site_counts])
    return well_ids, np.stack([np.mean(rows[start:stop], axis=0) for start, stop in zip(bounds[:-1], bounds[1:],
                                                                                         strict=True)])


__all__ = ["embed_handcrafted", "handcrafted_features"]

"""Render one synthetic six-channel Cell Painting well from a phenotype vector and its plate's batch effects.

Cells are drawn, not pasted: seeds placed with a minimum spacing split the field into Voronoi territories (one
Euclidean distance transform), each territory holds one elliptical cell with a wobbly outline (low Fourier harmonics
of the polar angle) and a nucleus, and every stain is a per-pixel function of the cell-frame coordinates plus
filtered noise for texture. Everything is numpy/scipy array arithmetic over the whole field: no per-pixel Python.

The planted biology lives in things a per-image, per-channel standardization cannot erase (DESIGN §4): sizes,
shapes, counts, textures, spot counts, how stains co-localize, how heterogeneous cells are. Batch effects also
survive it: an illumination pattern, focus blur, cell density, cell size drift and the signal-to-noise ratio of each
stain (a gain against a fixed noise floor). Channels follow the Recursion Cell Painting order of RxRx1/RxRx3
(`CHANNELS`); pixel size is fixed (0.65 um/px), so a 512 px field holds four times the cells of a 256 px one.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import ndimage
from scipy.special import expit

CHANNELS = (
    "Hoechst (nuclei)",
    "Concanavalin A (endoplasmic reticulum)",
    "Phalloidin (actin)",
    "SYTO14 (nucleoli, cytoplasmic RNA)",
    "MitoTracker (mitochondria)",
    "WGA (Golgi, plasma membrane)",
)

# The named axes of the phenotype space: a phenotype vector has one entry per axis, in this order. An entry of 0
# is the unperturbed cell; +-1 is a strong change (see `Morphology.from_phenotype` for each axis' mapping).
PHENOTYPE_AXES = (
    "nucleus_size",
    "cell_size",
    "cell_elongation",
    "cell_count",
    "chromatin_texture",
    "nucleoli_count",
    "er_texture",
    "actin_fibers",
    "mitochondria_granularity",
    "mitochondria_er_colocalization",
    "golgi_dispersion",
    "membrane_ring",
    "nuclear_irregularity",
    "cytoplasmic_rna",
    "cell_heterogeneity",
    "rounded_cells",
)

BASE_CELLS_PER_256 = 50.0  # cells in a 256 x 256 px field (HUVEC near confluence at 0.65 um/px)
CELL_RADIUS = 17.0  # px
NUCLEUS_RADIUS = 6.5  # px
CANVAS_MARGIN = 24  # px drawn around the field so cells are cut by the field edge, as in a crop


@lru_cache(maxsize=4)
def _grid(canvas: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column coordinates [canvas, canvas] (float32, read-only, cached per size)."""
    grid_y, grid_x = np.mgrid[0:canvas, 0:canvas].astype(np.float32)
    grid_y.flags.writeable = False
    grid_x.flags.writeable = False
    return grid_y, grid_x


@dataclass(frozen=True)
class Morphology:
    """Rendering parameters of a well's cells, derived from a phenotype vector (one field per phenotype axis)."""

    nucleus_scale: float  # multiplies the nucleus radius
    cell_scale: float  # multiplies the cell radius
    elongation: float  # cell aspect ratio (long / short axis), >= 1
    density: float  # multiplies the number of cells
    chromatin: float  # amplitude of nuclear texture (relative)
    nucleoli: float  # mean nucleoli per nucleus
    er_texture: float  # amplitude of reticular ER texture (relative)
    actin_fibers: float  # weight of stress fibres against the cortical ring
    mito_grain: float  # length scale of mitochondrial texture, px
    mito_er_coupling: float  # 0..1, share of the mitochondrial pattern that follows the ER pattern
    golgi_dispersion: float  # 0 compact perinuclear Golgi .. 1 dispersed puncta
    membrane: float  # weight of the plasma-membrane ring in the WGA channel
    nuclear_irregularity: float  # amplitude of nuclear outline harmonics (relative radius)
    rna_cytoplasm: float  # cytoplasmic RNA against nucleolar RNA
    heterogeneity: float  # log-sd of per-cell stain intensity
    rounded_fraction: float  # fraction of rounded (mitotic-like) cells

    @classmethod
    def from_phenotype(cls, phenotype: np.ndarray) -> Morphology:
        """Map a phenotype vector [len(PHENOTYPE_AXES)] to rendering parameters (0 = unperturbed cells)."""
        p = np.asarray(phenotype, dtype=np.float64)
        if p.shape != (len(PHENOTYPE_AXES),):
            raise ValueError(f"phenotype must have {len(PHENOTYPE_AXES)} entries (PHENOTYPE_AXES), got {p.shape}")
        return cls(
            nucleus_scale=float(np.exp(0.22 * p[0])),
            cell_scale=float(np.exp(0.18 * p[1])),
            elongation=float(max(1.0, 1.5 * np.exp(0.6 * p[2]))),
            density=float(np.exp(0.5 * p[3])),
            chromatin=float(0.35 * np.exp(0.8 * p[4])),
            nucleoli=float(2.5 * np.exp(0.8 * p[5])),
            er_texture=float(0.55 * np.exp(0.6 * p[6])),
            actin_fibers=float(0.6 * np.exp(0.8 * p[7])),
            mito_grain=float(1.3 * np.exp(0.35 * p[8])),
            mito_er_coupling=float(expit(-0.6 + 2.0 * p[9])),
            golgi_dispersion=float(expit(-1.2 + 1.6 * p[10])),
            membrane=float(0.5 * np.exp(0.6 * p[11])),
            nuclear_irregularity=float(0.06 * np.exp(1.0 * p[12])),
            rna_cytoplasm=float(0.35 * np.exp(0.6 * p[13])),
            heterogeneity=float(0.22 * np.exp(0.6 * p[14])),
            rounded_fraction=float(expit(-2.8 + 2.0 * p[15])),
        )


@dataclass(frozen=True)
class PlateEffects:
    """Batch effects shared by every well of one plate (the experiment's part already folded in).

    `blur` [6] is the focus blur of each channel (Gaussian sigma, px); `illumination` [6] the depth of each
    channel's radial illumination fall-off (0 = flat) around `illumination_center` (fractions of the field);
    `gain` [6] multiplies each stain's signal against a fixed noise floor (its signal-to-noise ratio);
    `background` [6] is the camera offset in 8-bit counts; `density` and `cell_scale` multiply the number and
    radius of cells.
    """

    blur: tuple[float, ...]
    illumination: tuple[float, ...]
    illumination_center: tuple[float, float]
    gain: tuple[float, ...]
    background: tuple[float, ...]
    density: float
    cell_scale: float


def _place_cells(rng: np.random.Generator, num_cells: int, canvas: int, min_distance: float) -> np.ndarray:
    """Up to `num_cells` centres [n, 2] (row, col) in the canvas, no two closer than `min_distance` (dart throwing)."""
    candidates = rng.uniform(0, canvas - 1, size=(4 * num_cells + 8, 2))
    accepted = np.empty((num_cells, 2))
    count = 0
    limit = min_distance**2
    for point in candidates:
        if count and np.min(np.sum((accepted[:count] - point) ** 2, axis=1)) < limit:
            continue
        accepted[count] = point
        count += 1
        if count == num_cells:
            break
    return accepted[:count]


def _unit_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """White noise low-passed at `sigma` px and rescaled to unit variance (float32). Uniform noise is 5x cheaper to
    draw than normal noise and is close to normal once low-passed."""
    field = ndimage.gaussian_filter(rng.random(shape, dtype=np.float32), sigma, truncate=3.0)
    field -= field.mean()
    return field / (field.std() + 1e-6)


def render_well(
    phenotype: np.ndarray, plate: PlateEffects, image_size: int, rng: np.random.Generator
) -> np.ndarray:
    """Render one well: uint8 [6, image_size, image_size], channels in `CHANNELS` order.

    `phenotype` [len(PHENOTYPE_AXES)] is the well's perturbation effect (zeros for a control well), `plate` its
    plate's batch effects, `rng` the well's own generator (cell positions, shapes, textures, noise).
    """
    morph = Morphology.from_phenotype(phenotype)
    canvas = image_size + 2 * CANVAS_MARGIN
    shape = (canvas, canvas)

    # Cells: count, positions, sizes, shapes.
    area_factor = (canvas / 256.0) ** 2
    radius_scale = morph.cell_scale * plate.cell_scale
    expected = BASE_CELLS_PER_256 * area_factor * morph.density * plate.density / radius_scale**2
    centers = _place_cells(rng, max(1, int(rng.poisson(expected))), canvas, 1.15 * CELL_RADIUS * radius_scale)
    num_cells = len(centers)
    radius = CELL_RADIUS * radius_scale * rng.lognormal(0.0, 0.15, num_cells)
    aspect = morph.elongation * rng.lognormal(0.0, 0.15, num_cells)
    rounded = rng.random(num_cells) < morph.rounded_fraction
    aspect = np.where(rounded, 1.0, np.maximum(aspect, 1.0))
    radius = np.where(rounded, 0.65 * radius, radius)
    long_axis, short_axis = radius * np.sqrt(aspect), radius / np.sqrt(aspect)
    theta = rng.uniform(0.0, np.pi, num_cells)
    nucleus = NUCLEUS_RADIUS * morph.nucleus_scale * plate.cell_scale * rng.lognormal(0.0, 0.1, num_cells)
    nucleus = np.minimum(np.where(rounded, 0.8 * nucleus, nucleus), 0.85 * short_axis * aspect**0.25)
    nucleus_long, nucleus_short = nucleus * aspect**0.25, nucleus / aspect**0.25
    nucleus_shift = rng.normal(0.0, 0.12, num_cells) * long_axis
    cell_harmonics = rng.normal(0.0, 0.07, (num_cells, 2, 3))
    nucleus_harmonics = rng.normal(0.0, morph.nuclear_irregularity, (num_cells, 2, 3))
    # Per-cell stain intensity: a shared factor (cell state) plus a per-stain factor.
    shared = rng.normal(0.0, morph.heterogeneity, (num_cells, 1))
    intensity = np.exp(shared + rng.normal(0.0, 0.6 * morph.heterogeneity, (num_cells, 6)))
    intensity[rounded, 0] *= 1.8
    golgi_angle = rng.uniform(0.0, 2 * np.pi, num_cells)
    phase = rng.uniform(0.0, 2 * np.pi, num_cells)

    # Territories: every pixel belongs to its nearest seed (Voronoi by one distance transform).
    seeds = np.zeros(shape, dtype=bool)
    rows, cols = np.round(centers).astype(int).T
    seeds[rows, cols] = True
    seed_label = np.zeros(shape, dtype=np.int32)
    seed_label[rows, cols] = np.arange(num_cells)
    nearest = ndimage.distance_transform_edt(~seeds, return_distances=False, return_indices=True)
    label = seed_label[nearest[0], nearest[1]]

    def per_pixel(values):  # a per-cell quantity [cells] -> each pixel's value [H, W] (float32)
        return np.take(np.asarray(values, dtype=np.float32), label)

    # Cell-frame coordinates of every pixel (u along the long axis).
    grid_y, grid_x = _grid(canvas)
    dy = grid_y - per_pixel(centers[:, 0])
    dx = grid_x - per_pixel(centers[:, 1])
    cos_t, sin_t = per_pixel(np.cos(theta)), per_pixel(np.sin(theta))
    u = dx * cos_t + dy * sin_t
    v = -dx * sin_t + dy * cos_t
    un, vn = u / per_pixel(long_axis), v / per_pixel(short_axis)
    rho = np.sqrt(un * un + vn * vn) + 1e-6
    c1, s1 = un / rho, vn / rho
    c2, s2 = c1 * c1 - s1 * s1, 2 * c1 * s1
    c3, s3 = c1 * c2 - s1 * s2, s1 * c2 + c1 * s2
    harmonics = (c1, c2, c3, s1, s2, s3)

    def outline(coefficients):  # 1 + sum_k a_k cos(k phi) + b_k sin(k phi), per pixel
        flat = coefficients.reshape(num_cells, 6).astype(np.float32)
        total = np.ones(shape, dtype=np.float32)
        for k in range(6):
            total += np.take(flat[:, k], label) * harmonics[k]
        return total

    rho_cell = rho / np.maximum(outline(cell_harmonics), 0.5)
    cell = expit((1.0 - rho_cell) / 0.06)
    nu = (u - per_pixel(nucleus_shift)) / per_pixel(nucleus_long)
    nv = v / per_pixel(nucleus_short)
    rho_nucleus = np.sqrt(nu * nu + nv * nv) / np.maximum(outline(nucleus_harmonics), 0.5)
    nuc = expit((1.0 - rho_nucleus) / 0.07)
    cytoplasm = cell * (1.0 - nuc)
    intensity = np.ascontiguousarray(intensity.T, dtype=np.float32)  # [6, cells]

    # Textures shared between stains (co-localization) and private ones.
    er_noise = _unit_noise(rng, shape, 1.2)
    mito_private = _unit_noise(rng, shape, morph.mito_grain)
    mito_noise = morph.mito_er_coupling * er_noise + np.sqrt(1.0 - morph.mito_er_coupling**2) * mito_private

    channels = np.empty((6, canvas, canvas), dtype=np.float32)
    # 1 DNA: nuclei with chromatin texture; rounded cells condensed and bright.
    chromatin = np.maximum(1.0 + morph.chromatin * _unit_noise(rng, shape, 0.8), 0.0)
    channels[0] = nuc * chromatin * per_pixel(intensity[0])
    # 2 ER: perinuclear, reticular.
    channels[1] = cytoplasm * np.exp(-1.4 * rho_cell) * np.maximum(1.0 + morph.er_texture * er_noise, 0.0)
    channels[1] *= per_pixel(intensity[1])
    # 3 Actin: cortical ring plus stress fibres along the long axis (stripes across the short axis).
    wobble = 1.5 * _unit_noise(rng, shape, 4.0)
    fibres = 0.5 + 0.5 * np.cos(2 * np.pi * (v + wobble) / 4.0 + per_pixel(phase))
    fibres = fibres * fibres * fibres  # x * x * x: float32 ** 3 is a slow pow
    ring = np.exp(-(((rho_cell - 0.95) / 0.1) ** 2))
    channels[2] = (0.7 * ring * cell + morph.actin_fibers * fibres * cytoplasm + 0.15 * cell) * per_pixel(intensity[2])
    # 4 RNA: nucleoli (spots in the nucleus) plus cytoplasmic RNA.
    spots_per_cell = rng.poisson(np.where(rounded, 0.0, morph.nucleoli), num_cells)
    owner = np.repeat(np.arange(num_cells), spots_per_cell)
    angle, reach = rng.uniform(0, 2 * np.pi, len(owner)), 0.55 * np.sqrt(rng.random(len(owner)))
    along = nucleus_shift[owner] + reach * nucleus_long[owner] * np.cos(angle)
    across = reach * nucleus_short[owner] * np.sin(angle)
    spot_y = centers[owner, 0] + along * np.sin(theta[owner]) + across * np.cos(theta[owner])
    spot_x = centers[owner, 1] + along * np.cos(theta[owner]) - across * np.sin(theta[owner])
    nucleoli = np.zeros(shape, dtype=np.float32)
    inside = (spot_y >= 0) & (spot_y < canvas) & (spot_x >= 0) & (spot_x < canvas)
    np.add.at(nucleoli, (spot_y[inside].astype(int), spot_x[inside].astype(int)), 1.0)
    nucleoli = ndimage.gaussian_filter(nucleoli, 1.1, truncate=3.0) * 12.0
    rna_texture = np.maximum(1.0 + 0.5 * _unit_noise(rng, shape, 1.5), 0.0)
    channels[3] = nucleoli * nuc + 0.25 * nuc + morph.rna_cytoplasm * cytoplasm * rna_texture
    channels[3] *= per_pixel(intensity[3])
    # 5 Mitochondria: puncta/tubules, denser near the nucleus.
    mitochondria = np.maximum(mito_noise - 0.2, 0.0)
    channels[4] = cytoplasm * np.exp(-1.0 * rho_cell) * mitochondria * np.sqrt(mitochondria)
    channels[4] *= per_pixel(intensity[4])
    # 6 WGA: a perinuclear Golgi cap (compact or dispersed into puncta) plus the plasma-membrane ring.
    golgi_y = centers[:, 0] + 1.4 * nucleus * np.sin(golgi_angle)
    golgi_x = centers[:, 1] + 1.4 * nucleus * np.cos(golgi_angle)
    golgi_sigma = (1.0 + 2.5 * morph.golgi_dispersion) * nucleus * 0.45
    golgi_d2 = (grid_y - per_pixel(golgi_y)) ** 2 + (grid_x - per_pixel(golgi_x)) ** 2
    golgi = np.exp(-golgi_d2 / (2 * per_pixel(golgi_sigma) ** 2)) * cytoplasm
    puncta = np.maximum(_unit_noise(rng, shape, 0.9) - 1.0, 0.0) ** 2 * cytoplasm
    membrane = np.exp(-(((rho_cell - 1.0) / 0.07) ** 2))
    channels[5] = (1.6 * (1.0 - morph.golgi_dispersion) * golgi + 1.2 * morph.golgi_dispersion * puncta
                   + morph.membrane * membrane + 0.08 * cell) * per_pixel(intensity[5])

    # Batch effects: illumination fall-off, focus blur, gain against a fixed noise floor, camera offset.
    center_y, center_x = (CANVAS_MARGIN + np.asarray(plate.illumination_center) * image_size).astype(np.float32)
    radial = ((grid_y - center_y) ** 2 + (grid_x - center_x) ** 2) / np.float32(image_size**2)
    field = slice(CANVAS_MARGIN, CANVAS_MARGIN + image_size)
    out = np.empty((6, image_size, image_size), dtype=np.uint8)
    for index in range(6):
        illumination = np.maximum(1.0 - plate.illumination[index] * radial, 0.2)
        signal = ndimage.gaussian_filter(channels[index] * illumination, plate.blur[index], truncate=3.0)[field, field]
        counts = plate.background[index] + 70.0 * plate.gain[index] * signal
        # Unit-variance triangular noise (two uniforms: several times cheaper than normal draws).
        unit = (rng.random(counts.shape, dtype=np.float32) + rng.random(counts.shape, dtype=np.float32) - 1.0) * 2.449
        noisy = counts + unit * np.sqrt(1.5 + 0.6 * counts)
        out[index] = np.clip(np.round(noisy), 0, 255).astype(np.uint8)
    return out


__all__ = ["CHANNELS", "PHENOTYPE_AXES", "Morphology", "PlateEffects", "render_well"]

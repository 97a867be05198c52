"""Turn one well's channel images into the uint8 views a Phenom model embeds.

The single owner of tiling (DESIGN §3). Along each side of a field of view, with `crop_size` = s:

- a field of exactly s px is one view, 2s px two views (so a 512 px RxRx3-core well or RxRx1 site is four tiles),
  both as released;
- a field of exactly n x s px with n > 2 keeps its interior n - 2 crops per side (the 36 interior 256 px crops of
  a 2048 px RxRx3 field, ``reference/paper.md`` §3);
- any other field of at least s px is covered by the centred grid of the floor(size / s) non-overlapping crops that
  fit (1080 px at s = 256: 4 x 4 crops covering the central 1024 px, 28 px left out on each side; 300 px: one
  centred crop);
- a field smaller than s px is refused with an error that names both sizes.

`docs/data.md` draws the rule. Random crops (training) are drawn uniformly inside the whole field. Nothing is
normalized here: the model self-standardizes every image and channel.

16-bit rules (`uint16_rule`), applied to each channel image of each field on its own:

- `"channel_max"` (default, the released behaviour): `round(255 * x / max(x))` (an all-zero image stays 0);
- `"shift"`: the high byte, `x >> 8`;
- `"percentile"`: robust to a few hot pixels: clip to the image's `uint16_percentiles` (default 0.1 and 99.9)
  and scale that range linearly to 0..255, `round(255 * (clip(x, lo, hi) - lo) / (hi - lo))` (a flat image is 0).

Because the model standardizes each view and channel, the rules differ only where they clip or quantize: a few
saturated pixels squash `channel_max`'s range, which `percentile` avoids. 8-bit images are used as they are.

Image files (one single-channel 8- or 16-bit image per file: PNG, TIFF, JPEG-2000, ..., or one named frame of a
multi-frame TIFF) are read with Pillow, which transformers uses for images; only reading files needs it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from transformers.image_processing_utils import BaseImageProcessor, BatchFeature
from transformers.image_utils import ChannelDimension
from transformers.utils import is_vision_available, logging

if is_vision_available():  # Pillow: optional for transformers, so the Hub copy of this file loads without it
    from PIL import Image

logger = logging.get_logger(__name__)

# RxRx1/RxRx3 Cell Painting channel order (rxrx-datasets README): w1..w6.
RXRX_CHANNEL_NAMES = ("nuclei", "er", "actin", "rna", "mitochondria", "golgi")
TILE_ORDER = "row-major (top-left, top-right, bottom-left, bottom-right for a 2 x 2 grid)"
UINT16_RULES = ("channel_max", "shift", "percentile")
DEFAULT_UINT16_PERCENTILES = (0.1, 99.9)
PROCESSOR_FILENAME = "preprocessor_config.json"


class ImageError(ValueError):
    """An image that cannot serve as one channel of a well."""


def image_to_array(image: Image.Image) -> np.ndarray:
    """A single-band PIL image -> uint8 or uint16 `[H, W]`; raises `ImageError` for anything else."""
    image.load()
    if len(image.getbands()) != 1:
        raise ImageError(f"expected a single-channel image, got mode {image.mode} with bands {image.getbands()}")
    if image.mode == "L":
        return np.asarray(image)
    if image.mode.startswith("I;16") or image.mode == "I":
        # 16-bit PNG/TIFF/JP2 open as I;16* or I (32-bit int); keep 16 bits so the processor's 16-bit rule applies
        # to the whole file, not only to its bright images.
        array = np.asarray(image)
        if array.size and (array.min() < 0 or array.max() > 65535):
            raise ImageError(f"{image.mode} image values {array.min()}..{array.max()} do not fit 16 bits")
        return array.astype(np.uint16)
    if image.mode == "1":
        return np.asarray(image, dtype=np.uint8) * np.uint8(255)
    raise ImageError(f"unsupported image mode {image.mode}: use 8- or 16-bit greyscale images")


def load_image(path: str | os.PathLike, frame: int | None = None) -> np.ndarray:
    """An image file -> uint8/uint16 `[H, W]`; raises `ImageError` (a missing file raises FileNotFoundError).

    `frame`: the 0-based frame of a multi-frame file (CellProfiler's `Frame_*`); without it a multi-frame file is
    refused, since which frame is the channel is unknown."""
    if not is_vision_available():
        raise ImportError(f"reading the image file {path} needs Pillow: pip install pillow")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no image file {path}")
    try:
        with Image.open(path) as image:
            frames = getattr(image, "n_frames", 1)
            if frame is None:
                if frames > 1:
                    raise ImageError(f"{path} has {frames} frames; name the frame (Frame_* column) or use one "
                                     "single-channel image per file")
            elif not 0 <= frame < frames:
                raise ImageError(f"{path} has {frames} frame(s); frame {frame} does not exist")
            elif frame:
                image.seek(frame)
            return image_to_array(image)
    except ImageError:
        raise
    except Exception as error:  # pillow raises OSError, SyntaxError, ValueError, ... for broken files
        raise ImageError(f"cannot decode {path}: {type(error).__name__}: {error}") from error


class PhenomImageProcessor(BaseImageProcessor):
    r"""
    Prepare wells for a Phenom model: `[num_views, channels, crop_size, crop_size]` uint8 views.

    ```python
    >>> import numpy as np
    >>> from modeling_phenom import PhenomImageProcessor
    >>> processor = PhenomImageProcessor()
    >>> well = np.random.randint(0, 256, (6, 512, 512), dtype=np.uint8)   # one RxRx3-core well
    >>> processor(well)["pixel_values"].shape                               # its four tiles
    torch.Size([4, 6, 256, 256])
    ```

    A well is a `[C, H, W]` array or tensor, a list of `C` channel images (2-D numpy/torch, single-band PIL, or image
    file paths), a dict `{channel name: image}` (ordered by `channel_names`), or a PIL image (its bands are the
    channels). A list of wells (or a `[N, C, H, W]` array) is a batch; views come out well after well
    (`return_well_index=True` says which well each view is from).

    Args:
        crop_size (`int`, defaults to 256): side of a view in pixels.
        num_channels (`int` or `None`): channels every well must have; `None` accepts any count (channel-agnostic
            models).
        channel_names (`list[str]`): order of channels for dict input; RxRx's six by default.
        uint16_rule (`str`, defaults to `"channel_max"`): how 16-bit images become 8-bit: `"channel_max"`,
            `"shift"` or `"percentile"` (module docstring).
        uint16_percentiles (`tuple[float, float]`, defaults to `(0.1, 99.9)`): the clip range of the
            `"percentile"` rule, in percent of each image's pixels.
    """

    model_input_names = ["pixel_values"]

    def __init__(
        self,
        crop_size: int = 256,
        num_channels: int | None = None,
        channel_names: Sequence[str] | None = None,
        uint16_rule: str = "channel_max",
        uint16_percentiles: Sequence[float] = DEFAULT_UINT16_PERCENTILES,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(crop_size, int) or crop_size < 1:
            raise ValueError(f"crop_size must be a positive integer, got {crop_size!r}")
        if uint16_rule not in UINT16_RULES:
            raise ValueError(f"uint16_rule must be one of {', '.join(UINT16_RULES)}; got {uint16_rule!r}")
        low, high = (float(value) for value in uint16_percentiles)
        if not 0.0 <= low < high <= 100.0:
            raise ValueError(f"uint16_percentiles must be two percentages 0 <= low < high <= 100, got "
                             f"{list(uint16_percentiles)}")
        self.crop_size = crop_size
        self.num_channels = num_channels
        self.channel_names = list(channel_names) if channel_names is not None else list(RXRX_CHANNEL_NAMES)
        self.uint16_rule = uint16_rule
        self.uint16_percentiles = [low, high]

    @classmethod
    def from_config(cls, config, **kwargs) -> PhenomImageProcessor:
        """The processor of a model config: views of `config.image_size` pixels (the model owns the crop size; every
        `preprocessor_config.json` written beside a model comes from here), other settings from `kwargs`."""
        return cls(crop_size=int(config.image_size), **kwargs)

    @classmethod
    def from_model(cls, model: str | os.PathLike, revision: str | None = None, **kwargs) -> PhenomImageProcessor:
        """The processor a saved model embeds with: its `preprocessor_config.json`, else one derived from its config
        (`crop_size = config.image_size`, the other settings at their defaults; OpenPhenom's Hub repo has no
        processor file). A processor file that exists but cannot be read is an error, never a silent default; when
        the Hub cannot be asked (offline, and the cache does not know), the derived processor is used with a
        warning that says so.

        Args:
            model: a `save_pretrained` directory or a Hub model id.
            revision, kwargs: passed to the Hub download (`cache_dir`, `token`, ...).
        """
        from transformers import AutoConfig

        # Through transformers (it re-exports huggingface_hub's), so the Hub copy of this file imports nothing else.
        from transformers.utils.hub import (
            EntryNotFoundError,
            LocalEntryNotFoundError,
            hf_hub_download,
            try_to_load_from_cache,
        )

        local = Path(model)
        if local.is_dir():
            has_processor = (local / PROCESSOR_FILENAME).is_file()
        elif not isinstance(try_to_load_from_cache(str(model), PROCESSOR_FILENAME, revision=revision,
                                                   cache_dir=kwargs.get("cache_dir")), (str, type(None))):
            has_processor = False  # the cache remembers that the repo has no such file
        else:
            try:
                hf_hub_download(str(model), PROCESSOR_FILENAME, revision=revision, **kwargs)
                has_processor = True
            except LocalEntryNotFoundError:  # before its base class: offline, and the cache does not know
                has_processor = False
                logger.warning("cannot tell whether %s has a %s (offline, and not in the cache): its views are "
                               "derived from the model config's image_size", model, PROCESSOR_FILENAME)
            except EntryNotFoundError:  # the Hub says the repo has no such file
                has_processor = False
        if has_processor:
            return cls.from_pretrained(model, revision=revision, **kwargs)
        # AutoConfig knows Phenom and OpenPhenom's legacy "MAE" type once `modeling_phenom` is imported.
        return cls.from_config(AutoConfig.from_pretrained(model, revision=revision, **kwargs))

    def settings(self) -> dict:
        """What decides the views, for provenance records: crop size, 16-bit rule (and its percentiles)."""
        settings = {"crop_size": self.crop_size, "uint16_rule": self.uint16_rule}
        if self.uint16_rule == "percentile":
            settings["uint16_percentiles"] = list(self.uint16_percentiles)
        return settings

    # ------------------------------------------------------------------ entry point
    def __call__(self, images, **kwargs) -> BatchFeature:
        return self.preprocess(images, **kwargs)

    def preprocess(
        self,
        images,
        mode: str = "tiles",
        generator: np.random.Generator | None = None,
        return_well_index: bool = False,
        return_tensors: str | None = "pt",
        input_data_format: str | ChannelDimension | None = None,
        **unused,
    ) -> BatchFeature:
        """Views of one well or a batch of wells.

        Args:
            mode: `"tiles"` (inference: all views of each well) or `"random_crop"` (training: one random view per
                well, drawn from `generator`).
            input_data_format: layout of array and tensor wells: `"channels_first"` (`[C, H, W]`, the default) or
                `"channels_last"` (`[H, W, C]`); a batch has a leading well axis either way. Channel lists and
                dicts (2-D images) and PIL images (bands) carry their own layout.
        Returns:
            `BatchFeature` with `pixel_values` uint8 `[num_views, C, crop_size, crop_size]` (and `well_index` int64
            `[num_views]` if asked).
        """
        if mode not in ("tiles", "random_crop"):
            raise ValueError(f"mode must be 'tiles' or 'random_crop', got {mode!r}")
        channels_last = self._is_channels_last(input_data_format)
        wells = [self.stack_well(well, channels_last) for well in self.split_wells(images)]
        views, well_index = [], []
        for index, well in enumerate(wells):
            well_views = self.tiles(well) if mode == "tiles" else self.random_crop(well, generator)[None]
            views.append(well_views)
            well_index.extend([index] * len(well_views))
        if len({view.shape[1] for view in views}) > 1:
            raise ValueError(f"all wells of a batch need the same channel count, got {[v.shape[1] for v in views]}")
        pixel_values = np.concatenate(views, axis=0)
        data = {"pixel_values": torch.from_numpy(pixel_values) if return_tensors == "pt" else pixel_values}
        if return_well_index:
            data["well_index"] = torch.tensor(well_index) if return_tensors == "pt" else np.array(well_index)
        return BatchFeature(data=data)

    # ------------------------------------------------------------------ wells
    @staticmethod
    def _is_channels_last(input_data_format: str | ChannelDimension | None) -> bool:
        if input_data_format is None:
            return False
        if input_data_format not in (ChannelDimension.FIRST, ChannelDimension.LAST):
            raise ValueError(
                f"input_data_format must be 'channels_first' or 'channels_last' (or None: channels first), got "
                f"{input_data_format!r}"
            )
        return input_data_format == ChannelDimension.LAST

    @staticmethod
    def _is_single_channel(image) -> bool:
        if isinstance(image, (str, os.PathLike)):  # an image file holds one channel
            return True
        if hasattr(image, "getbands"):
            return len(image.getbands()) == 1
        return hasattr(image, "ndim") and image.ndim == 2

    def split_wells(self, images) -> list:
        """A well or a batch of wells -> the list of wells (a single well is returned as `[images]`, the object
        itself)."""
        if isinstance(images, (list, tuple)):
            if not images:
                raise ValueError("no images given")
            if all(self._is_single_channel(image) for image in images):
                return [images]
            return list(images)
        if hasattr(images, "ndim") and images.ndim == 4:
            return list(images)
        return [images]

    def stack_well(self, well, channels_last: bool = False) -> np.ndarray:
        """One well in any accepted form -> uint8 `[C, H, W]` (`channels_last`: a 3-D array or tensor is
        `[H, W, C]`)."""
        if isinstance(well, Mapping):
            missing = [name for name in self.channel_names if name not in well]
            extra = [name for name in well if name not in self.channel_names]
            if missing or extra:
                raise ValueError(
                    f"channels by name must match channel_names {self.channel_names}: "
                    f"missing {missing}, unknown {extra}"
                )
            well = [well[name] for name in self.channel_names]
        if isinstance(well, (list, tuple)):
            channels = [self._to_array(image) for image in well]
            shapes = {channel.shape for channel in channels}
            if any(channel.ndim != 2 for channel in channels):
                raise ValueError(f"each channel image must be 2-D, got shapes {[c.shape for c in channels]}")
            if len(shapes) != 1:
                raise ValueError(f"channel images of one well differ in size: {sorted(shapes)}")
            channels = [self._to_uint8(channel) for channel in channels]
            stacked = np.stack(channels)
        else:
            array = self._to_array(well)
            if channels_last and array.ndim == 3 and not hasattr(well, "getbands"):  # PIL is already channel-first
                array = np.moveaxis(array, -1, 0)
            if array.ndim == 2:
                array = array[None]
            if array.ndim != 3:
                raise ValueError(f"a well must be [channels, height, width], got shape {array.shape}")
            stacked = np.stack([self._to_uint8(channel) for channel in array])
        if self.num_channels is not None and stacked.shape[0] != self.num_channels:
            raise ValueError(f"expected {self.num_channels} channels per well, got {stacked.shape[0]}")
        return stacked

    @staticmethod
    def _to_array(image) -> np.ndarray:
        if isinstance(image, (str, os.PathLike)):
            return load_image(image)
        if isinstance(image, torch.Tensor):
            return image.detach().cpu().numpy()
        if hasattr(image, "getbands"):  # PIL
            array = np.asarray(image)
            if image.mode.startswith("I;16"):
                array = array.astype(np.uint16)
            # PIL multi-band images are [H, W, bands]; a well is channel-first.
            return np.moveaxis(array, -1, 0) if array.ndim == 3 else array
        if isinstance(image, np.ndarray):
            return image
        raise ValueError(
            f"unsupported image type {type(image).__name__}: use numpy, torch or PIL images, or image file paths"
        )

    def _to_uint8(self, channel: np.ndarray) -> np.ndarray:
        """One 2-D channel image -> uint8 by the documented rules."""
        if channel.dtype == np.uint8:
            return channel
        if channel.dtype == np.uint16 or (channel.dtype.kind in "iu" and channel.size and channel.max() > 255):
            if channel.dtype.kind == "i" and channel.size and channel.min() < 0:
                raise ValueError("integer images must be non-negative")
            if channel.size and channel.max() > 65535:
                raise ValueError(f"integer images must fit in 16 bits, got a maximum of {channel.max()}")
            return self._uint16_to_uint8(channel.astype(np.uint16))
        if channel.dtype.kind in "iu":
            if channel.size and channel.min() < 0:
                raise ValueError("integer images must be non-negative")
            return channel.astype(np.uint8)
        if channel.dtype.kind == "f":
            if not np.isfinite(channel).all():
                raise ValueError("image contains NaN or infinite values")
            low, high = float(channel.min()), float(channel.max())
            if low < 0 or high > 255:
                raise ValueError(
                    f"float images must lie in 0..255, got {low:g}..{high:g}; pass uint8 or uint16 images"
                )
            if 0 < high <= 1.0:
                raise ValueError(
                    f"float image with maximum {high:g} <= 1.0 looks scaled to 0..1; pass uint8/uint16 images or "
                    "0..255 floats"
                )
            return np.rint(channel).astype(np.uint8)
        raise ValueError(f"unsupported image dtype {channel.dtype}: use uint8, uint16 (or 0..255 floats)")

    def _uint16_to_uint8(self, channel: np.ndarray) -> np.ndarray:
        if self.uint16_rule == "shift":
            return (channel >> 8).astype(np.uint8)
        if self.uint16_rule == "percentile":
            if not channel.size:
                return channel.astype(np.uint8)
            low, high = np.percentile(channel, self.uint16_percentiles)
            if high <= low:  # a flat image (or one whose clip range is a single value) carries no signal
                return np.zeros(channel.shape, dtype=np.uint8)
            clipped = np.clip(channel, low, high).astype(np.float32)
            scaled = (clipped - np.float32(low)) * np.float32(255.0 / (high - low))
            return np.rint(scaled).astype(np.uint8)
        maximum = int(channel.max()) if channel.size else 0
        if maximum == 0:
            return np.zeros(channel.shape, dtype=np.uint8)
        return np.rint(channel.astype(np.float32) * (255.0 / maximum)).astype(np.uint8)

    # ------------------------------------------------------------------ views
    def check_field(self, height: int, width: int) -> None:
        """Raise `ValueError` naming both sizes when a field is smaller than one crop."""
        size = self.crop_size
        if height < size or width < size:
            raise ValueError(
                f"image size {height} x {width} is smaller than the {size} px crop; sizes that work are {size} "
                f"(one view), {2 * size} (four tiles) and any larger field (the centred grid of {size} px crops "
                "that fits)"
            )

    def tile_origins(self, height: int, width: int) -> list[tuple[int, int]]:
        """Top-left corners of the inference views of one field, in row-major order (module docstring)."""
        self.check_field(height, width)
        size = self.crop_size

        def starts(length: int) -> list[int]:
            count, remainder = divmod(length, size)
            if remainder:  # the centred grid that fits
                return [remainder // 2 + index * size for index in range(count)]
            # An exact multiple wider than two crops drops its edge crops (RxRx3 2048 px: 6 x 6 interior of 8 x 8).
            return [index * size for index in (range(1, count - 1) if count > 2 else range(count))]

        return [(top, left) for top in starts(height) for left in starts(width)]

    def tiles(self, well: np.ndarray) -> np.ndarray:
        """uint8 `[C, H, W]` -> `[num_views, C, crop_size, crop_size]` in `TILE_ORDER`."""
        size = self.crop_size
        origins = self.tile_origins(*well.shape[-2:])
        return np.stack([well[:, top : top + size, left : left + size] for top, left in origins])

    def random_crop(self, well: np.ndarray, generator: np.random.Generator | None = None) -> np.ndarray:
        """uint8 `[C, H, W]` -> one uniformly placed `[C, crop_size, crop_size]` crop."""
        size = self.crop_size
        height, width = well.shape[-2:]
        self.check_field(height, width)
        generator = generator if generator is not None else np.random.default_rng()
        top = int(generator.integers(0, height - size + 1))
        left = int(generator.integers(0, width - size + 1))
        return np.ascontiguousarray(well[:, top : top + size, left : left + size])


# `save_pretrained` writes this file and `auto_map` into preprocessor_config.json, so the Hub loads it without Phenom.
PhenomImageProcessor.register_for_auto_class("AutoImageProcessor")

__all__ = [
    "DEFAULT_UINT16_PERCENTILES",
    "ImageError",
    "PhenomImageProcessor",
    "RXRX_CHANNEL_NAMES",
    "TILE_ORDER",
    "UINT16_RULES",
    "image_to_array",
    "load_image",
]

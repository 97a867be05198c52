"""Turn one well's channel images into the uint8 views a Phenom model embeds.

The single owner of tiling (DESIGN §3): a `crop_size` image is one view; a 2 x 2 grid of crops (RxRx3-core's
512 px centre crops, RxRx1 sites) becomes its four tiles; a larger field keeps its interior crops (the 36 interior
256 px crops of a 2048 px RxRx3 field, ``reference/paper.md`` §3). Random crops serve training. Nothing is
normalized here: the model self-standardizes every image and channel.

16-bit rule: each 16-bit channel image is mapped to 8 bits by `round(255 * x / max(x))` over that channel image
(an all-zero channel stays 0), the `"channel_max"` rule; `uint16_rule="shift"` takes the high byte instead
(`x >> 8`). Because the model standardizes each view and channel, only the 8-bit quantization differs between the
two; `channel_max` keeps the most levels for dim images.

Image files (one single-channel 8- or 16-bit image per file: PNG, TIFF, JPEG-2000, ...) are read with Pillow, which
transformers uses for images; only reading files needs it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from transformers.image_processing_utils import BaseImageProcessor, BatchFeature
from transformers.image_utils import ChannelDimension
from transformers.utils import is_vision_available

if is_vision_available():  # Pillow: optional for transformers, so the Hub copy of this file loads without it
    from PIL import Image

# RxRx1/RxRx3 Cell Painting channel order (rxrx-datasets README): w1..w6.
RXRX_CHANNEL_NAMES = ("nuclei", "er", "actin", "rna", "mitochondria", "golgi")
TILE_ORDER = "row-major (top-left, top-right, bottom-left, bottom-right for a 2 x 2 grid)"


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


def load_image(path: str | os.PathLike) -> np.ndarray:
    """An image file -> uint8/uint16 `[H, W]`; raises `ImageError` (a missing file raises FileNotFoundError)."""
    if not is_vision_available():
        raise ImportError(f"reading the image file {path} needs Pillow: pip install pillow")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no image file {path}")
    try:
        with Image.open(path) as image:
            if getattr(image, "n_frames", 1) > 1:
                raise ImageError(f"{path} has {image.n_frames} frames; use one single-channel image per file")
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
        uint16_rule (`str`, defaults to `"channel_max"`): how 16-bit images become 8-bit (module docstring).
    """

    model_input_names = ["pixel_values"]

    def __init__(
        self,
        crop_size: int = 256,
        num_channels: int | None = None,
        channel_names: Sequence[str] | None = None,
        uint16_rule: str = "channel_max",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(crop_size, int) or crop_size < 1:
            raise ValueError(f"crop_size must be a positive integer, got {crop_size!r}")
        if uint16_rule not in ("channel_max", "shift"):
            raise ValueError(f"uint16_rule must be 'channel_max' or 'shift', got {uint16_rule!r}")
        self.crop_size = crop_size
        self.num_channels = num_channels
        self.channel_names = list(channel_names) if channel_names is not None else list(RXRX_CHANNEL_NAMES)
        self.uint16_rule = uint16_rule

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
        maximum = int(channel.max()) if channel.size else 0
        if maximum == 0:
            return np.zeros(channel.shape, dtype=np.uint8)
        return np.rint(channel.astype(np.float32) * (255.0 / maximum)).astype(np.uint8)

    # ------------------------------------------------------------------ views
    def tile_origins(self, height: int, width: int) -> list[tuple[int, int]]:
        """Top-left corners of the inference views, in row-major order; raises for sizes that do not tile."""
        size = self.crop_size
        if height % size or width % size or height < size or width < size:
            raise ValueError(
                f"image size {height} x {width} does not tile into {size} px views: sizes that work are {size} "
                f"(one view), {2 * size} (four tiles) and other multiples of {size} (the interior {size} px crops of "
                "a larger field)"
            )

        def kept(count: int) -> range:
            # A field wider than two crops drops its edge crops (RxRx3 2048 px: 6 x 6 interior of 8 x 8).
            return range(1, count - 1) if count > 2 else range(count)

        return [(row * size, col * size) for row in kept(height // size) for col in kept(width // size)]

    def tiles(self, well: np.ndarray) -> np.ndarray:
        """uint8 `[C, H, W]` -> `[num_views, C, crop_size, crop_size]` in `TILE_ORDER`."""
        size = self.crop_size
        origins = self.tile_origins(*well.shape[-2:])
        return np.stack([well[:, top : top + size, left : left + size] for top, left in origins])

    def random_crop(self, well: np.ndarray, generator: np.random.Generator | None = None) -> np.ndarray:
        """uint8 `[C, H, W]` -> one uniformly placed `[C, crop_size, crop_size]` crop."""
        size = self.crop_size
        height, width = well.shape[-2:]
        if height < size or width < size:
            raise ValueError(f"image size {height} x {width} is smaller than the {size} px crop")
        generator = generator if generator is not None else np.random.default_rng()
        top = int(generator.integers(0, height - size + 1))
        left = int(generator.integers(0, width - size + 1))
        return np.ascontiguousarray(well[:, top : top + size, left : left + size])


# `save_pretrained` writes this file and `auto_map` into preprocessor_config.json, so the Hub loads it without Phenom.
PhenomImageProcessor.register_for_auto_class("AutoImageProcessor")

__all__ = ["ImageError", "PhenomImageProcessor", "RXRX_CHANNEL_NAMES", "TILE_ORDER", "image_to_array", "load_image"]

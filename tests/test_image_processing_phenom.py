"""PhenomImageProcessor: views of a well in the documented order, 16-bit rule, bad input."""

import numpy as np
import pytest
import torch
from conftest import FIXTURES
from PIL import Image
from transformers import AutoImageProcessor
from transformers.image_utils import ChannelDimension

from modeling_phenom import PhenomImageProcessor


def well(size=512, channels=6, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (channels, size, size), dtype=np.uint8)


def test_512_px_well_becomes_four_uint8_tiles_in_row_major_order():
    image = well(512)
    views = PhenomImageProcessor()(image)["pixel_values"]
    assert views.shape == (4, 6, 256, 256) and views.dtype == torch.uint8
    expected = [image[:, :256, :256], image[:, :256, 256:], image[:, 256:, :256], image[:, 256:, 256:]]
    for view, tile in zip(views, expected, strict=True):
        assert torch.equal(view, torch.from_numpy(tile))


def test_256_px_well_is_one_view_and_2048_px_field_keeps_its_36_interior_crops():
    processor = PhenomImageProcessor()
    assert processor(well(256))["pixel_values"].shape == (1, 6, 256, 256)
    field = well(2048, channels=1)
    views = processor(field)["pixel_values"]
    assert views.shape == (36, 1, 256, 256)
    assert torch.equal(views[0], torch.from_numpy(field[:, 256:512, 256:512]))  # edge crops dropped


def test_real_rxrx3_sample_loads_as_one_well_of_four_tiles():
    channels = [Image.open(FIXTURES / "rxrx3_sample" / f"AA41_s1_{c}.jp2") for c in range(1, 7)]
    views = PhenomImageProcessor(num_channels=6)(channels)["pixel_values"]
    assert views.shape == (4, 6, 256, 256)
    means = views.float().mean(dim=(0, 2, 3))
    np.testing.assert_allclose(means.numpy(), [10.103, 23.839, 9.289, 14.539, 2.706, 21.729], atol=1e-3)


def test_channels_by_name_follow_channel_names():
    processor = PhenomImageProcessor(channel_names=["dna", "actin"], crop_size=32)
    dna, actin = well(32, 1, seed=1)[0], well(32, 1, seed=2)[0]
    views = processor({"actin": actin, "dna": dna})["pixel_values"]
    assert torch.equal(views[0, 0], torch.from_numpy(dna)) and torch.equal(views[0, 1], torch.from_numpy(actin))
    with pytest.raises(ValueError, match="missing \\['actin'\\]"):
        processor({"dna": dna})


def test_16_bit_input_follows_the_channel_max_rule():
    image = np.zeros((2, 256, 256), dtype=np.uint16)
    image[0, 0, 0], image[0, 0, 1] = 4000, 1000  # a 12-bit channel in a 16-bit container
    image[1, 5, 5] = 65535
    views = PhenomImageProcessor()(image)["pixel_values"]
    assert views[0, 0, 0, 0] == 255 and views[0, 0, 0, 1] == round(1000 * 255 / 4000)
    assert views[0, 1, 5, 5] == 255 and views[0, 1].sum() == 255
    shifted = PhenomImageProcessor(uint16_rule="shift")(image)["pixel_values"]
    assert shifted[0, 0, 0, 0] == 4000 >> 8


def test_random_crop_is_reproducible_and_inside_the_image():
    processor = PhenomImageProcessor()
    image = well(512)
    first = processor(image, mode="random_crop", generator=np.random.default_rng(3))["pixel_values"]
    second = processor(image, mode="random_crop", generator=np.random.default_rng(3))["pixel_values"]
    assert first.shape == (1, 6, 256, 256) and torch.equal(first, second)


def test_batch_of_wells_reports_which_well_each_view_is_from():
    out = PhenomImageProcessor()([well(512), well(256)], return_well_index=True)
    assert out["pixel_values"].shape == (5, 6, 256, 256)
    assert out["well_index"].tolist() == [0, 0, 0, 0, 1]


@pytest.mark.parametrize(
    "images, kwargs, message",
    [
        (well(512, channels=5), dict(num_channels=6), "expected 6 channels per well, got 5"),
        (well(300), {}, "sizes that work are 256"),
        (well(128), {}, "sizes that work are 256"),
        (np.zeros((6, 256, 256), dtype=np.float32) + 0.5, {}, "maximum 0.5 <= 1.0"),
        (np.full((6, 256, 256), -3, dtype=np.int32), {}, "non-negative"),
        (np.zeros((6, 256, 256), dtype=bool), {}, "unsupported image dtype"),
        ([np.zeros((256, 256), np.uint8), np.zeros((128, 128), np.uint8)], {}, "differ in size"),
        (object(), {}, "unsupported image type"),
    ],
)
def test_bad_input_gets_a_clear_error(images, kwargs, message):
    with pytest.raises(ValueError, match=message):
        PhenomImageProcessor(**kwargs)(images)


def test_processor_round_trips_through_auto_image_processor(tmp_path):
    PhenomImageProcessor(crop_size=128, num_channels=6).save_pretrained(tmp_path)
    reloaded = AutoImageProcessor.from_pretrained(tmp_path)
    assert isinstance(reloaded, PhenomImageProcessor)
    assert reloaded.crop_size == 128 and reloaded.num_channels == 6


@pytest.mark.parametrize("as_tensor", [False, True], ids=["numpy", "torch"])
@pytest.mark.parametrize("batched", [False, True], ids=["one_well", "batch"])
def test_channels_last_input_gives_the_same_views_as_channels_first(as_tensor, batched):
    wells = np.stack([well(64, seed=0), well(64, seed=1)]) if batched else well(64)
    channels_last = np.moveaxis(wells, -3, -1)  # [(N,) H, W, C]
    convert = torch.from_numpy if as_tensor else np.asarray
    processor = PhenomImageProcessor(crop_size=32)
    expected = processor(convert(wells))["pixel_values"]
    for layout in ("channels_last", ChannelDimension.LAST):
        views = processor(convert(channels_last), input_data_format=layout)["pixel_values"]
        assert views.shape == ((8 if batched else 4), 6, 32, 32)
        assert torch.equal(views, expected)
    assert torch.equal(processor(convert(wells), input_data_format="channels_first")["pixel_values"], expected)


def test_unknown_input_data_format_is_refused():
    with pytest.raises(ValueError, match="input_data_format must be 'channels_first' or 'channels_last'.*'hwc'"):
        PhenomImageProcessor(crop_size=32)(well(64), input_data_format="hwc")

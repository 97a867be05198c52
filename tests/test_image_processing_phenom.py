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


def test_fields_of_other_sizes_are_covered_by_the_centred_grid_of_crops_that_fits():
    processor = PhenomImageProcessor()
    field = well(1080, channels=2)
    views = processor(field)["pixel_values"]
    assert views.shape == (16, 2, 256, 256)  # 4 x 4 crops: the central 1024 px, 28 px left out on each side
    assert processor.tile_origins(1080, 1080)[:5] == [(28, 28), (28, 284), (28, 540), (28, 796), (284, 28)]
    assert torch.equal(views[0], torch.from_numpy(field[:, 28:284, 28:284]))
    assert torch.equal(views[-1], torch.from_numpy(field[:, 796:1052, 796:1052]))
    one = well(300, channels=1)
    views = processor(one)["pixel_values"]
    assert views.shape == (1, 1, 256, 256) and torch.equal(views[0], torch.from_numpy(one[:, 22:278, 22:278]))
    assert processor.tile_origins(300, 600) == [(22, 44), (22, 300)]  # each side on its own
    with pytest.raises(ValueError, match="image size 200 x 200 is smaller than the 256 px crop"):
        processor(well(200))
    with pytest.raises(ValueError, match="image size 1080 x 200 is smaller than the 256 px crop"):
        processor(np.zeros((1, 1080, 200), np.uint8), mode="random_crop")


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


def test_16_bit_percentile_rule_clips_hot_pixels_and_is_saved_with_the_processor(tmp_path):
    rng = np.random.default_rng(0)
    image = rng.integers(1000, 3000, (1, 256, 256)).astype(np.uint16)
    image[0, :4, :4] = 65535  # 16 hot pixels (0.02 %): channel_max squashes every other pixel into ~12 levels
    processor = PhenomImageProcessor(uint16_rule="percentile", uint16_percentiles=(0.1, 99.9))
    views = processor(image)["pixel_values"][0, 0].numpy()
    low, high = np.percentile(image[0], [0.1, 99.9])
    expected = np.rint((np.clip(image[0], low, high).astype(np.float32) - np.float32(low))
                       * np.float32(255.0 / (high - low))).astype(np.uint8)
    np.testing.assert_array_equal(views, expected)
    assert views.min() == 0 and views.max() == 255 and len(np.unique(views)) > 200
    assert len(np.unique(PhenomImageProcessor()(image)["pixel_values"])) < 15
    flat = np.full((1, 256, 256), 700, dtype=np.uint16)
    assert processor(flat)["pixel_values"].max() == 0
    processor.save_pretrained(tmp_path)
    reloaded = AutoImageProcessor.from_pretrained(tmp_path)
    assert reloaded.uint16_rule == "percentile" and reloaded.uint16_percentiles == [0.1, 99.9]
    assert reloaded.settings() == {"crop_size": 256, "uint16_rule": "percentile", "uint16_percentiles": [0.1, 99.9]}
    with pytest.raises(ValueError, match="uint16_rule must be one of channel_max, shift, percentile"):
        PhenomImageProcessor(uint16_rule="clip")
    with pytest.raises(ValueError, match="0 <= low < high <= 100"):
        PhenomImageProcessor(uint16_percentiles=(99, 1))


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
        (well(200), {}, "image size 200 x 200 is smaller than the 256 px crop; sizes that work are 256"),
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


def test_the_processor_comes_from_the_saved_model_and_never_silently_defaults_to_256_px(tmp_path, caplog):
    from conftest import small_config

    from eval.embed import load_processor

    model_dir = tmp_path / "model64"
    small_config(image_size=64, patch_size=16).save_pretrained(model_dir)
    derived = load_processor(str(model_dir))  # no preprocessor_config.json: derived from config.image_size
    assert derived.crop_size == 64 and derived.uint16_rule == "channel_max"
    PhenomImageProcessor(crop_size=32, uint16_rule="percentile").save_pretrained(model_dir)
    assert load_processor(str(model_dir)).settings() == {"crop_size": 32, "uint16_rule": "percentile",
                                                          "uint16_percentiles": [0.1, 99.9]}
    assert load_processor(str(model_dir), uint16_rule="shift").settings() == {"crop_size": 32, "uint16_rule": "shift"}
    (model_dir / "preprocessor_config.json").write_text("{not json")
    with pytest.raises(OSError, match="preprocessor_config.json"):  # a file that cannot be read is an error
        load_processor(str(model_dir))
    # A Hub model that cannot be reached (tests run offline) is an error too, not a 256 px processor.
    with pytest.raises(OSError):
        load_processor("recursionpharma/OpenPhenom")
    assert "cannot tell whether recursionpharma/OpenPhenom has a preprocessor_config.json" in caplog.text


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

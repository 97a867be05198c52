"""`pipeline("image-feature-extraction")` on multi-channel microscopy: a well as a uint8 or uint16 array, as channel
files, or a list of wells gives the well embedding `model(processor(well)).pooler_output.mean(0)`, exactly."""

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import (
    AutoImageProcessor,
    AutoModel,
    ImageFeatureExtractionPipeline,
    ViTConfig,
    ViTImageProcessor,
    ViTModel,
    pipeline,
)

from modeling_phenom import (
    PhenomConfig,
    PhenomForMaskedImageModeling,
    PhenomImageFeatureExtractionPipeline,
    PhenomImageProcessor,
)
from modeling_phenom.image_processing_phenom import ImageError


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A tiny MAE (256 px views, 8 x 8 patches per channel) saved with the RxRx processor."""
    directory = tmp_path_factory.mktemp("phenom-tiny")
    torch.manual_seed(0)
    PhenomForMaskedImageModeling(PhenomConfig.from_preset("tiny")).save_pretrained(directory)
    PhenomImageProcessor().save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def extractor(model_dir):
    return pipeline("image-feature-extraction", model=str(model_dir))


@pytest.fixture(scope="module")
def reference(model_dir):
    """`model(processor(well))`, with the model and processor loaded on their own (not the pipeline's)."""
    model = AutoModel.from_pretrained(model_dir).eval()
    processor = AutoImageProcessor.from_pretrained(model_dir)

    def run(well):
        with torch.no_grad():
            return model(**processor(well))

    return run


def random_well(dtype=np.uint8, high=256, size=512, seed=0):
    return np.random.default_rng(seed).integers(0, high, (6, size, size), dtype=dtype)


def write_channels(directory, well) -> list[str]:
    """One single-channel PNG per channel (16-bit PNGs for uint16 wells)."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, channel in enumerate(well, start=1):
        path = directory / f"w{index}.png"
        Image.fromarray(channel).save(path)
        paths.append(str(path))
    return paths


def test_a_uint8_well_gives_the_mean_of_its_four_tile_embeddings(extractor, reference):
    assert type(extractor) is PhenomImageFeatureExtractionPipeline
    well = random_well()
    expected = reference(well).pooler_output.mean(0)
    assert expected.shape == (128,)
    embedding = extractor(well, return_tensors=True)
    torch.testing.assert_close(embedding, expected, rtol=0, atol=0)
    torch.testing.assert_close(torch.tensor(extractor(well)), expected, rtol=0, atol=0)  # nested lists by default
    torch.testing.assert_close(extractor(torch.from_numpy(well), return_tensors=True), expected, rtol=0, atol=0)


def test_a_uint16_well_follows_the_processors_16_bit_rule(extractor, reference):
    well = random_well(np.uint16, high=4096, seed=1)  # a 12-bit camera in a 16-bit container
    expected = reference(well).pooler_output.mean(0)
    torch.testing.assert_close(extractor(well, return_tensors=True), expected, rtol=0, atol=0)
    assert not torch.equal(expected, reference(random_well(seed=1)).pooler_output.mean(0))


@pytest.mark.parametrize("dtype, high", [(np.uint8, 256), (np.uint16, 65536)], ids=["8-bit", "16-bit"])
def test_six_png_paths_give_the_embedding_of_the_array_they_hold(extractor, reference, tmp_path, dtype, high):
    well = random_well(dtype, high=high, seed=2)
    paths = write_channels(tmp_path, well)
    expected = reference(well).pooler_output.mean(0)
    torch.testing.assert_close(extractor(paths, return_tensors=True), expected, rtol=0, atol=0)


def test_a_list_of_wells_gives_one_embedding_per_well(extractor, tmp_path):
    first, second = random_well(seed=3), random_well(seed=4)
    paths = write_channels(tmp_path, second)
    embeddings = extractor([first, paths], return_tensors=True)
    assert len(embeddings) == 2
    torch.testing.assert_close(embeddings[0], extractor(first, return_tensors=True), rtol=0, atol=0)
    torch.testing.assert_close(embeddings[1], extractor(second, return_tensors=True), rtol=0, atol=0)
    stacked = extractor(np.stack([first, second]), return_tensors=True)  # [N, C, H, W]: N wells
    torch.testing.assert_close(torch.stack(stacked), torch.stack(embeddings), rtol=0, atol=0)
    assert len(extractor([first], return_tensors=True)) == 1  # a list in, a list out


def test_pool_false_returns_the_hidden_states_of_every_view(extractor, reference):
    well = random_well(seed=5)
    hidden = extractor(well, pool=False, return_tensors=True)
    assert hidden.shape == (4, 1 + 6 * 64, 128)  # 4 tiles; CLS + 6 channels x 8 x 8 patches
    torch.testing.assert_close(hidden, reference(well).last_hidden_state, rtol=0, atol=0)


def test_batch_size_above_one_is_refused(extractor):
    with pytest.raises(ValueError, match="batch_size=2: the Phenom pipeline embeds one well at a time"):
        extractor([random_well(), random_well(seed=1)], batch_size=2)


def test_bad_channel_files_are_named(extractor, tmp_path):
    paths = write_channels(tmp_path, random_well(seed=6))
    with pytest.raises(FileNotFoundError, match="no image file .*missing.png"):
        extractor(paths[:5] + [str(tmp_path / "missing.png")])
    Image.fromarray(np.zeros((512, 512, 3), np.uint8)).save(tmp_path / "rgb.png")
    with pytest.raises(ImageError, match="expected a single-channel image, got mode RGB"):
        extractor(paths[:5] + [str(tmp_path / "rgb.png")])
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(ImageError, match="cannot decode .*broken.png"):
        extractor(paths[:5] + [str(tmp_path / "broken.png")])
    Image.fromarray(np.zeros((256, 256), np.uint8)).save(tmp_path / "small.png")
    with pytest.raises(ValueError, match="channel images of one well differ in size"):
        extractor(paths[:5] + [str(tmp_path / "small.png")])


def test_other_models_keep_transformers_own_pipeline(tmp_path):
    config = ViTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                       intermediate_size=64)
    torch.manual_seed(0)
    vit = ViTModel(config).eval()
    vit.save_pretrained(tmp_path)
    processor = ViTImageProcessor(size={"height": 32, "width": 32})
    processor.save_pretrained(tmp_path)
    extractor = pipeline("image-feature-extraction", model=str(tmp_path))
    assert type(extractor) is ImageFeatureExtractionPipeline
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8))
    with torch.no_grad():
        expected = vit(**processor(image, return_tensors="pt")).last_hidden_state
    torch.testing.assert_close(extractor(image, return_tensors=True), expected)

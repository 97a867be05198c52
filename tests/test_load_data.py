"""Your own plates through `phenom embed` and `phenom pretrain`: a CellProfiler LoadData CSV in JUMP-CP's layout
(2 plates x 6 wells x 3 sites, 5 channels plus brightfield, 1080 x 1080 uint16 TIFFs, illumination `.npy` files),
written by the test.

One row per well, each once, whatever the CSV's row order (also gzipped); `--per-site` rows whose mean is the well
row; channels chosen and ordered by name and recorded; illumination correction exactly CellProfiler's "Divide"; an
expected embedding recomputed from the files by hand; a few pretraining steps on the same plates through the LoadData
CSV and through Phenom's plate CSV."""

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import REPO_ROOT, small_config
from PIL import Image

from eval.embeddings_file import read_embeddings
from modeling_phenom import PhenomImageProcessor, PhenomModel
from phenom.commands import embed
from phenom_data import LoadDataWells, open_wells
from phenom_data.load_data import write_load_data

PLATES = ("BR00117035", "BR00117036")
WELLS = ("A01", "A02", "B01", "B02", "C01", "C02")
SITES = ("1", "2", "3")
CHANNELS = ("DNA", "ER", "RNA", "AGP", "Mito")
ORDER = "DNA,ER,RNA,AGP,Mito"
SIZE = 1080


def field(seed, size=SIZE):
    """A 16-bit field: a coarse random pattern (cells' scale) plus pixel noise, 12 bits used, as a camera gives."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(200, 3000, (size // 40 + 1, size // 40 + 1))
    image = np.kron(coarse, np.ones((40, 40), dtype=np.int64))[:size, :size]
    return (image + rng.integers(0, 200, (size, size))).astype(np.uint16)


def vignetting(seed, size=SIZE):
    """A CellProfiler-style illumination function: smooth, 0.6 at the corners to 1.4 in the middle."""
    grid = np.linspace(-1.0, 1.0, size, dtype=np.float32)
    radius = np.sqrt(grid[:, None] ** 2 + grid[None, :] ** 2) / np.sqrt(2.0)
    return (1.4 - 0.8 * radius + 0.01 * seed).astype(np.float32)


def jump_images():
    """`(plate, well, site) -> {channel: uint16}`: the CSV's channel columns in JUMP's order, brightfield included."""
    images = {}
    for plate_index, plate in enumerate(PLATES):
        for well_index, well in enumerate(WELLS):
            for site in SITES:
                seed = [plate_index, well_index, int(site)]
                channels = {name: field([*seed, index]) for index, name in enumerate(("Mito", "DNA", "AGP"))}
                channels["Brightfield"] = field([*seed, 9])
                channels.update({name: field([*seed, index + 3]) for index, name in enumerate(("ER", "RNA"))})
                images[plate, well, site] = channels
    return images


@pytest.fixture(scope="module")
def plates(tmp_path_factory):
    directory = tmp_path_factory.mktemp("jump")
    illumination = {(plate, channel): vignetting(index) for index, plate in enumerate(PLATES)
                    for channel in (*CHANNELS, "Brightfield")}
    csv = write_load_data(directory, jump_images(), illumination, source="source_4")
    frame = pd.read_csv(csv)
    frame.sample(frac=1.0, random_state=1).to_csv(directory / "permuted.csv.gz", index=False)
    return csv


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("model")
    torch.manual_seed(0)
    PhenomModel(small_config(image_size=256, patch_size=32)).save_pretrained(directory)
    PhenomImageProcessor(crop_size=256).save_pretrained(directory)
    return directory


def run_embed(model_dir, data, out, *extra):
    return embed.main(["--model", str(model_dir), "--data", str(data), "--out", str(out), "--device", "cpu",
                       "--batch-size", "4", "--part-wells", "5", "--no-progress", *extra], prog="phenom embed")


@pytest.fixture(scope="module")
def embedded(plates, model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("embedded")
    assert run_embed(model_dir, plates, out / "wells.parquet", "--channels", ORDER) == 0
    return read_embeddings(out / "wells.parquet"), out


def well_id(plate, well):
    return f"source_4_{plate}_{well}"


def test_load_data_csv_embeds_one_row_per_well_each_once(embedded):
    table, _ = embedded
    expected = sorted(well_id(plate, well) for plate in PLATES for well in WELLS)
    assert list(table.well_ids) == expected and table.features.shape == (12, 32)
    provenance = table.provenance
    assert provenance["channels"] == list(CHANNELS) and provenance["source"] == "load-data"
    assert provenance["processor"] == {"crop_size": 256, "uint16_rule": "channel_max"}
    assert provenance["rows"] == "wells"


def test_permuting_the_csv_rows_changes_nothing_also_gzipped(embedded, plates, model_dir, tmp_path):
    table, _ = embedded
    assert run_embed(model_dir, plates.parent / "permuted.csv.gz", tmp_path / "p.parquet", "--channels", ORDER) == 0
    permuted = read_embeddings(tmp_path / "p.parquet")
    assert list(permuted.well_ids) == list(table.well_ids)
    np.testing.assert_array_equal(permuted.features, table.features)


def test_per_site_rows_average_to_the_well_row(embedded, plates, model_dir, tmp_path):
    table, _ = embedded
    assert run_embed(model_dir, plates, tmp_path / "sites.parquet", "--channels", ORDER, "--per-site") == 0
    frame = pd.read_parquet(tmp_path / "sites.parquet")
    assert list(frame.columns[:2]) == ["well_id", "site"] and len(frame) == 36
    assert not frame.duplicated(["well_id", "site"]).any()
    assert frame.groupby("well_id")["site"].apply(list).to_dict() == {well: list(SITES) for well in table.well_ids}
    features = [column for column in frame.columns if column.startswith("feature_")]
    site_means = frame.groupby("well_id")[features].mean().loc[list(table.well_ids)].to_numpy()
    np.testing.assert_allclose(site_means, table.features, rtol=1e-5, atol=1e-6)  # 16 views per site each
    assert read_embeddings(tmp_path / "sites.parquet", merge_duplicates=True).provenance["rows"] == "sites"


def test_a_well_embedding_is_the_mean_over_every_view_of_every_site_of_the_corrected_files(embedded, plates,
                                                                                          model_dir):
    table, _ = embedded
    plate, well = PLATES[1], WELLS[4]
    processor = PhenomImageProcessor(crop_size=256)
    views = []
    for site in SITES:
        channels = []
        for channel in CHANNELS:
            raw = np.asarray(Image.open(plates.parent / "images" / plate / f"{well}_s{site}_{channel}.tiff"))
            illumination = np.load(plates.parent / "illum" / plate / f"{plate}_Illum{channel}.npy")
            corrected = np.rint(raw.astype(np.float32) / illumination)  # CorrectIlluminationApply "Divide"
            channels.append(np.clip(corrected, 0, 65535).astype(np.uint16))
        views.append(processor.tiles(processor.stack_well(channels)))
    views = torch.from_numpy(np.concatenate(views))
    assert views.shape == (48, 5, 256, 256)  # 3 sites x 4 x 4 crops of the central 1024 px
    model = PhenomModel.from_pretrained(model_dir).eval()
    with torch.inference_mode():
        expected = model.get_block_embeddings(views, blocks="last")[model.num_blocks].mean(dim=0)
    row = list(table.well_ids).index(well_id(plate, well))
    np.testing.assert_allclose(table.features[row], expected.numpy(), rtol=1e-5, atol=1e-5)


def test_illumination_correction_divides_each_channel_as_cellprofiler_does(plates):
    processor = PhenomImageProcessor(crop_size=256)
    corrected = next(iter(LoadDataWells(plates, channels=["AGP"], processor=processor)))
    without = pd.read_csv(plates).drop(columns=[f"{kind}_Illum{channel}" for kind in ("FileName", "PathName")
                                                 for channel in (*CHANNELS, "Brightfield")])
    without.to_csv(plates.parent / "no_illum.csv", index=False)
    raw_well = next(iter(LoadDataWells(plates.parent / "no_illum.csv", channels=["AGP"], processor=processor)))
    assert corrected.well_id == raw_well.well_id == well_id(PLATES[0], WELLS[0])
    raw = np.asarray(Image.open(plates.parent / "images" / PLATES[0] / f"{WELLS[0]}_s1_AGP.tiff"))
    illumination = vignetting(0)
    divided = np.clip(np.rint(raw.astype(np.float32) / illumination), 0, 65535).astype(np.uint16)
    np.testing.assert_array_equal(corrected.sites[0].image, processor.stack_well([divided]))
    np.testing.assert_array_equal(raw_well.sites[0].image, processor.stack_well([raw]))
    assert not np.array_equal(corrected.sites[0].image, raw_well.sites[0].image)
    # The correction flattens the vignetting: the corners gain against the centre.
    ratio = corrected.sites[0].image[0].astype(float).mean() / raw_well.sites[0].image[0].astype(float).mean()
    corner = (corrected.sites[0].image[0, :100, :100].astype(float).mean()
              / raw_well.sites[0].image[0, :100, :100].astype(float).mean())
    assert corner > 1.2 * ratio


def test_channels_by_name_brightfield_ignored_unless_named_and_unknown_names_listed(plates):
    processor = PhenomImageProcessor(crop_size=256)
    assert LoadDataWells(plates, processor=processor).channel_names == ["Mito", "DNA", "AGP", "ER", "RNA"]
    assert LoadDataWells(plates, channels=["dna", "brightfield"]).channel_names == ["DNA", "Brightfield"]
    with pytest.raises(ValueError, match=r"channel\(s\) \['Actin'\] are not in the LoadData CSV; it has "
                                         r"\['Mito', 'DNA', 'AGP', 'Brightfield', 'ER', 'RNA'\]"):
        open_wells(plates, processor=processor, channels=["DNA", "Actin"])
    with pytest.raises(ValueError, match=r"option\(s\) experiments do not apply to .* \(load-data: .*it takes "
                                         r"channels, root, well_list"):
        open_wells(plates, processor=processor, experiments=["x"])


def test_exclude_drops_finished_wells_before_any_image_is_decoded(plates, monkeypatch):
    import phenom_data.image_files as image_files

    opened = []
    original = image_files.load_image

    def counting(path, frame=None):
        opened.append(path)
        return original(path, frame)

    monkeypatch.setattr(image_files, "load_image", counting)
    done = {well_id(PLATES[0], well) for well in WELLS}
    wells = open_wells(plates, processor=PhenomImageProcessor(crop_size=256), channels=["DNA"], exclude=done)
    assert [well.well_id for well in wells] == [well_id(PLATES[1], well) for well in WELLS]
    assert wells.stats.excluded == 6 and len(opened) == 6 * 3  # plate 2 only: 6 wells x 3 sites x 1 channel
    assert all(PLATES[1] in str(path) for path in opened)


def pretrain(data, out, *extra):
    command = [sys.executable, "-m", "phenom", "pretrain", "--config", str(REPO_ROOT / "train/configs/tiny.yaml"),
               f"data.path={data}", f"output_dir={out}", "max_steps=3", "global_batch_size=4",
               "per_device_batch_size=4", "log_every=1", "trackers=[]", "reconstruction_every=1000",
               "data.shuffle_buffer_size=4", "data.record_wells=true", "progress=false", *extra]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
           "ACCELERATE_USE_CPU": "true"}
    result = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [record["step"] for record in log] == [1, 2, 3] and all(np.isfinite(r["loss"]) for r in log)
    assert json.loads((out / "final" / "preprocessor_config.json").read_text())["crop_size"] == 64
    return [line.split("\t")[1] for line in (out / "wells-rank0.tsv").read_text().splitlines()]


def test_the_same_plates_pretrain_through_the_load_data_csv_and_through_phenoms_plate_csv(plates, tmp_path):
    five = "model.overrides.decoder_num_modalities=5"  # the CA decoder reconstructs JUMP's five channels
    wells = pretrain(plates, tmp_path / "load_data", "data.channels=[DNA,ER,RNA,AGP,Mito]", five)
    assert len(wells) == 12 and set(wells) <= {well_id(plate, well) for plate in PLATES for well in WELLS}
    rows = [{"well_id": f"{plate}_{well}", "site": site, "channel": channel,
             "path": f"images/{plate}/{well}_s{site}_{channel}.tiff", "plate": plate}
            for plate in PLATES for well in WELLS for site in SITES for channel in CHANNELS]
    pd.DataFrame(rows).to_csv(plates.parent / "plates.csv", index=False)
    wells = pretrain(plates.parent / "plates.csv", tmp_path / "plate_csv", f"data.channels=[{ORDER}]", five)
    assert len(wells) == 12 and set(wells) <= {f"{plate}_{well}" for plate in PLATES for well in WELLS}

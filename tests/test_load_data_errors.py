"""LoadData CSVs that are not clean: a missing file, a corrupt TIFF, a site with a missing channel, a broken
illumination file, fields smaller than the crop (skipped and counted, the well lives on its other sites), multi-frame
files, and paths that leave the dataset or point at the cloud (refused before anything is read)."""

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from eval.embeddings_file import read_embeddings
from modeling_phenom import PhenomImageProcessor, PhenomModel
from phenom.commands import embed
from phenom_data import LoadDataWells, detect_source, open_wells
from phenom_data.load_data import write_load_data
from phenom_data.paths import UnsafePathError

CHANNELS = ("DNA", "RNA")
SIZE = 300  # one centred 256 px crop


def plane(seed, size=SIZE):
    return np.random.default_rng(seed).integers(0, 4096, (size, size)).astype(np.uint16)


def images(wells=("A01", "A02", "A03", "A04"), sites=("1", "2", "3")):
    return {("P1", well, site): {channel: plane([index, int(site), c]) for c, channel in enumerate(CHANNELS)}
            for index, well in enumerate(wells) for site in sites}


@pytest.fixture
def damaged(tmp_path):
    """A01: site 1's DNA file is gone. A02: site 2's RNA is a corrupt TIFF. A03: site 3 has no RNA file name.
    A04: every site broken (missing, corrupt, 200 px field). Everything else is fine."""
    csv = write_load_data(tmp_path, images())
    frame = pd.read_csv(csv, dtype=str, keep_default_na=False)
    folder = tmp_path / "images" / "P1"
    (folder / "A01_s1_DNA.tiff").unlink()
    (folder / "A02_s2_RNA.tiff").write_bytes(b"II*\x00 this is not a TIFF")
    frame.loc[(frame["Metadata_Well"] == "A03") & (frame["Metadata_Site"] == "3"), "FileName_OrigRNA"] = ""
    (folder / "A04_s1_DNA.tiff").unlink()
    (folder / "A04_s2_DNA.tiff").write_bytes(b"\x00" * 64)
    for channel in CHANNELS:
        Image.fromarray(plane([9, channel == "RNA"], size=200)).save(folder / f"A04_s3_{channel}.tiff")
    frame.to_csv(csv, index=False)
    return csv


def test_bad_sites_are_skipped_and_counted_and_wells_survive_on_their_other_sites(damaged):
    wells = LoadDataWells(damaged, processor=PhenomImageProcessor(crop_size=256))
    sites = {well.well_id: [site.name for site in well.sites] for well in wells}
    assert sites == {"P1_A01": ["2", "3"], "P1_A02": ["1", "3"], "P1_A03": ["1", "2"]}
    assert dict(wells.stats.skipped_sites) == {"missing_file": 2, "corrupt_image": 2, "missing_channel": 1,
                                               "image_too_small": 1}
    assert dict(wells.stats.skipped) == {"no_valid_site": 1} and wells.stats.yielded == 3
    summary = wells.stats.summary()
    assert "skipped 1 (no_valid_site 1)" in summary and "skipped 6 sites" in summary


def test_phenom_embed_keeps_the_surviving_wells_and_reports_the_skips(damaged, tmp_path, capsys):
    model_dir = tmp_path / "model"
    PhenomModel(__import__("conftest").small_config(image_size=256, patch_size=32)).save_pretrained(model_dir)
    assert embed.main(["--model", str(model_dir), "--data", str(damaged), "--out", str(tmp_path / "e.parquet"),
                       "--device", "cpu", "--no-progress"]) == 0
    assert list(read_embeddings(tmp_path / "e.parquet").well_ids) == ["P1_A01", "P1_A02", "P1_A03"]
    err = capsys.readouterr().err
    assert "skipped 1 (no_valid_site 1)" in err and "image_too_small 1" in err


def test_a_field_smaller_than_the_crop_names_both_sizes(tmp_path):
    csv = write_load_data(tmp_path, {("P1", "A01", "1"): {"DNA": plane(0, size=200)}})
    wells = LoadDataWells(csv, processor=PhenomImageProcessor(crop_size=256))
    assert list(wells) == []
    assert dict(wells.stats.skipped_sites) == {"image_too_small": 1}
    assert list(LoadDataWells(csv, processor=PhenomImageProcessor(crop_size=128)))[0].sites[0].image.shape == (
        1, 200, 200)


def test_bad_illumination_files_skip_their_sites(tmp_path):
    illumination = {("P1", channel): np.ones((SIZE, SIZE), np.float32) for channel in CHANNELS}
    csv = write_load_data(tmp_path, images(wells=("A01",), sites=("1",)), illumination)
    np.save(tmp_path / "illum" / "P1" / "P1_IllumRNA.npy", np.zeros((SIZE, SIZE), np.float32))
    wells = LoadDataWells(csv, processor=PhenomImageProcessor(crop_size=256))
    assert list(wells) == [] and dict(wells.stats.skipped_sites) == {"bad_illumination": 1}
    np.save(tmp_path / "illum" / "P1" / "P1_IllumRNA.npy", np.ones((10, 10), np.float32))
    from phenom_data.image_files import read_illumination

    read_illumination.cache_clear()
    assert list(LoadDataWells(csv)) == []
    (tmp_path / "illum" / "P1" / "P1_IllumRNA.npy").unlink()
    read_illumination.cache_clear()
    wells = LoadDataWells(csv)
    assert list(wells) == [] and dict(wells.stats.skipped_sites) == {"missing_file": 1}


def test_frames_of_a_multi_frame_file_are_its_channels(tmp_path):
    planes = [plane(index) for index in range(3)]
    folder = tmp_path / "images"
    folder.mkdir()
    frames = [Image.fromarray(array) for array in planes]
    frames[0].save(folder / "stack.tiff", save_all=True, append_images=frames[1:])
    frame = pd.DataFrame({"Metadata_Plate": ["P1"], "Metadata_Well": ["B02"]})
    for index, channel in enumerate(("DNA", "ER", "RNA")):
        frame[f"FileName_Orig{channel}"], frame[f"PathName_Orig{channel}"] = "stack.tiff", "images"
        frame[f"Frame_Orig{channel}"] = 2 - index
    frame.to_csv(tmp_path / "frames.csv", index=False)
    (well,) = list(LoadDataWells(tmp_path / "frames.csv", processor=PhenomImageProcessor(crop_size=256)))
    expected = PhenomImageProcessor().stack_well([planes[2], planes[1], planes[0]])
    np.testing.assert_array_equal(well.sites[0].image, expected)
    frame["Frame_OrigRNA"] = 7
    frame.to_csv(tmp_path / "frames.csv", index=False)
    wells = LoadDataWells(tmp_path / "frames.csv")
    assert list(wells) == [] and dict(wells.stats.skipped_sites) == {"corrupt_image": 1}


def one_row_csv(tmp_path, **columns):
    frame = pd.DataFrame({"Metadata_Plate": ["P1"], "Metadata_Well": ["A01"], **{k: [v] for k, v in columns.items()}})
    frame.to_csv(tmp_path / "ld.csv", index=False)
    return tmp_path / "ld.csv"


def test_paths_must_stay_inside_the_csv_folder_unless_absolute_and_cloud_urls_are_refused(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    outside = tmp_path / "secret"
    outside.mkdir()
    Image.fromarray(plane(0)).save(outside / "x.tiff")
    with pytest.raises(UnsafePathError, match=r"line 2: FileName_OrigDNA '../secret/x.tiff' leads outside"):
        LoadDataWells(one_row_csv(data, FileName_OrigDNA="../secret/x.tiff", PathName_OrigDNA="."))
    with pytest.raises(UnsafePathError, match=r"line 2: PathName_OrigDNA '\.\./secret' leads outside"):
        LoadDataWells(one_row_csv(data, FileName_OrigDNA="x.tiff", PathName_OrigDNA="../secret"))
    with pytest.raises(ValueError, match=r"PathName_OrigDNA 's3://cellpainting-gallery/cpg0016-jump/' is not a local "
                                         r"file \(s3://\): download the images"):
        LoadDataWells(one_row_csv(data, FileName_OrigDNA="x.tiff",
                                  PathName_OrigDNA="s3://cellpainting-gallery/cpg0016-jump/"))
    # Named absolutely by the CSV itself: taken as it is (a PathName or a file:// URL).
    (well,) = list(LoadDataWells(one_row_csv(data, FileName_OrigDNA="x.tiff", PathName_OrigDNA=str(outside))))
    np.testing.assert_array_equal(well.sites[0].image, PhenomImageProcessor().stack_well([plane(0)]))
    url = (outside / "x.tiff").as_uri()
    (well,) = list(LoadDataWells(one_row_csv(data, FileName_OrigDNA="x.tiff", PathName_OrigDNA="", URL_OrigDNA=url)))
    assert well.sites[0].image.shape == (1, SIZE, SIZE)


def test_malformed_load_data_csvs_are_refused_before_any_work(tmp_path):
    with pytest.raises(ValueError, match="FileName_OrigDNA has neither PathName_OrigDNA nor URL_OrigDNA"):
        LoadDataWells(one_row_csv(tmp_path, FileName_OrigDNA="x.tiff"))
    frame = pd.DataFrame({"Metadata_Plate": ["P1", "P1"], "Metadata_Well": ["A01", "A01"], "Metadata_Site": [1, 1],
                          "FileName_OrigDNA": ["a.tiff", "b.tiff"], "PathName_OrigDNA": [".", "."]})
    frame.to_csv(tmp_path / "dup.csv", index=False)
    with pytest.raises(ValueError, match=r"several rows for the same site \(lines \[2, 3\]\): \['P1_A01 site 1'\]"):
        LoadDataWells(tmp_path / "dup.csv")
    with pytest.raises(ValueError, match="Frame_OrigDNA 'first' is not a frame number"):
        LoadDataWells(one_row_csv(tmp_path, FileName_OrigDNA="x.tiff", PathName_OrigDNA=".", Frame_OrigDNA="first"))
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match=r"data source .*other.csv is none of the kinds Phenom reads \(load-data: "):
        detect_source(tmp_path / "other.csv")
    with pytest.raises(FileNotFoundError, match="data source .*absent.csv is neither a local directory nor a Hub"):
        open_wells(tmp_path / "absent.csv", processor=PhenomImageProcessor())

"""RxRx1Wells on the official release layout and PlateFolderWells on a user's CSV of 8- and 16-bit PNG/TIFF/JP2
files: exact channel stacks, wells made of their sites, filters, skips counted, each well once across ranks and
DataLoader workers."""

import itertools

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from modeling_phenom import PhenomImageProcessor
from phenom_data import PlateFolderWells, RxRx1Wells, WellDataset, collate_views
from phenom_data.plate_folder import channel_order

SIZE = 32


def plane(seed, dtype=np.uint8, high=256):
    return np.random.default_rng(seed).integers(0, high, (SIZE, SIZE)).astype(dtype)


# ---------------------------------------------------------------------------------------------------- RxRx1
def rxrx1_release(root):
    """Two experiments x 2 wells x 2 sites; HEPG2-01_1_B02_2 lacks channel 5; HUVEC-01_1_B03_1 has a broken PNG."""
    rows = []
    for experiment, cell_type, split in [("HEPG2-01", "HEPG2", "train"), ("HUVEC-01", "HUVEC", "test")]:
        for well in ("B02", "B03"):
            for site in (1, 2):
                site_id = f"{experiment}_1_{well}_{site}"
                rows.append({
                    "site_id": site_id, "well_id": f"{experiment}_1_{well}", "cell_type": cell_type,
                    "dataset": split, "experiment": experiment, "plate": 1, "well": well, "site": site,
                    "well_type": "treatment", "sirna": "s21721", "sirna_id": 0,
                })
                folder = root / "images" / experiment / "Plate1"
                folder.mkdir(parents=True, exist_ok=True)
                for channel in range(1, 7):
                    if site_id == "HEPG2-01_1_B02_2" and channel == 5:
                        continue
                    path = folder / f"{well}_s{site}_w{channel}.png"
                    if site_id == "HUVEC-01_1_B03_1" and channel == 2:
                        path.write_bytes(b"\x89PNG\r\n\x1a\n broken")
                        continue
                    Image.fromarray(plane([len(rows), channel])).save(path)
    pd.DataFrame(rows).to_csv(root / "metadata.csv", index=False)
    return root, {row["site_id"]: index + 1 for index, row in enumerate(rows)}


def test_rxrx1_wells_hold_their_sites_with_the_well_metadata_and_bad_sites_are_counted(tmp_path):
    root, seeds = rxrx1_release(tmp_path)
    wells = RxRx1Wells(root)
    yielded = {well.well_id: well for well in wells}
    assert list(yielded) == ["HEPG2-01_1_B02", "HEPG2-01_1_B03", "HUVEC-01_1_B02", "HUVEC-01_1_B03"]
    # A well keeps its readable sites: B02 of HEPG2 lost site 2 (no channel 5), B03 of HUVEC site 1 (broken PNG).
    sites = {well_id: [site.name for site in well.sites] for well_id, well in yielded.items()}
    assert sites == {"HEPG2-01_1_B02": ["1"], "HEPG2-01_1_B03": ["1", "2"], "HUVEC-01_1_B02": ["1", "2"],
                     "HUVEC-01_1_B03": ["2"]}
    for well_id, well in yielded.items():
        for site in well.sites:
            expected = np.stack([plane([seeds[f"{well_id}_{site.name}"], channel]) for channel in range(1, 7)])
            np.testing.assert_array_equal(site.image, expected)
    metadata = yielded["HUVEC-01_1_B02"].metadata
    assert metadata["well_id"] == "HUVEC-01_1_B02" and metadata["cell_type"] == "HUVEC"
    assert "site" not in metadata and "site_id" not in metadata  # they describe sites, not the well
    assert dict(wells.stats.skipped_sites) == {"missing_file": 1, "corrupt_image": 1}
    assert wells.stats.total_skipped == 0 and wells.stats.yielded == 4
    with pytest.raises(ValueError, match="has 2 sites; read well.sites"):
        _ = yielded["HEPG2-01_1_B03"].image


def test_rxrx1_filters_by_experiment_split_site_well_list_and_channels(tmp_path):
    root, seeds = rxrx1_release(tmp_path)
    test_site_2 = {well.well_id: [site.name for site in well.sites] for well in RxRx1Wells(root, split="test",
                                                                                          sites=[2])}
    assert test_site_2 == {"HUVEC-01_1_B02": ["2"], "HUVEC-01_1_B03": ["2"]}
    listed = RxRx1Wells(root, experiments="HEPG2-01", well_list=["HEPG2-01_1_B03", "HUVEC-01_1_B02_1"])
    assert [(well.well_id, len(well.sites)) for well in listed] == [("HEPG2-01_1_B03", 2)]
    assert listed.stats.filtered == 3
    picked = next(iter(RxRx1Wells(root, channels=["rna", "nuclei"])))
    assert picked.well_id == "HEPG2-01_1_B02" and picked.sites[0].image.shape == (2, SIZE, SIZE)
    np.testing.assert_array_equal(picked.sites[0].image, np.stack([plane([1, 4]), plane([1, 1])]))
    with pytest.raises(ValueError, match="split must be"):
        RxRx1Wells(root, split="validation")
    with pytest.raises(FileNotFoundError, match="metadata file"):
        RxRx1Wells(root, metadata=root / "absent.csv")
    with pytest.raises(ValueError, match=r"channel 'DNA' is not an RxRx channel; the source has \['nuclei', 'er'"):
        RxRx1Wells(root, channels=["DNA"])


def test_rxrx1_two_ranks_by_two_workers_yield_each_well_once(tmp_path):
    root, seeds = rxrx1_release(tmp_path)
    well_ids = []
    for rank in range(2):
        dataset = WellDataset(RxRx1Wells(root, rank=rank, world_size=2), processor=PhenomImageProcessor(crop_size=16))
        for batch in torch.utils.data.DataLoader(dataset, batch_size=2, num_workers=2, collate_fn=collate_views):
            well_ids += batch["well_id"]
    assert sorted(well_ids) == ["HEPG2-01_1_B02", "HEPG2-01_1_B03", "HUVEC-01_1_B02", "HUVEC-01_1_B03"]


# ---------------------------------------------------------------------------------------------------- plate folder
def write(path, array, format):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, format=format)
    return path


def plate_csv(tmp_path):
    """Three wells named by RxRx channel names in shuffled row order: 8-bit PNG, 16-bit TIFF, 16-bit JPEG-2000;
    w4 lacks `golgi`."""
    names = ["nuclei", "er", "actin", "rna", "mitochondria", "golgi"]
    rows, expected = [], {}
    for index, (well, fmt, dtype, suffix) in enumerate(
        [("w1", "PNG", np.uint8, "png"), ("w2", "TIFF", np.uint16, "tif"), ("w3", "JPEG2000", np.uint16, "jp2")]
    ):
        planes = [plane([index, channel], dtype, 256 if dtype == np.uint8 else 4000) for channel in range(6)]
        expected[well] = planes
        for name, array in zip(names, planes, strict=True):
            write(tmp_path / "plate1" / f"{well}_{name}.{suffix}", array, fmt)
            rows.append({"well_id": well, "channel": name, "path": f"plate1/{well}_{name}.{suffix}",
                         "plate": "plate1", "treatment": f"drug-{index}"})
    for name in names[:5]:
        write(tmp_path / "plate1" / f"w4_{name}.png", plane([9, 0]), "PNG")
        rows.append({"well_id": "w4", "channel": name, "path": f"plate1/w4_{name}.png", "plate": "plate1",
                     "treatment": "none"})
    frame = pd.DataFrame(rows).sample(frac=1.0, random_state=0)
    frame.to_csv(tmp_path / "plates.csv", index=False)
    return tmp_path / "plates.csv", expected


def test_plate_folder_stacks_channels_by_name_and_converts_16_bit_images_by_the_processor_rule(tmp_path):
    csv, expected = plate_csv(tmp_path)
    wells = PlateFolderWells(csv)
    yielded = {well.well_id: well for well in wells}
    assert set(yielded) == {"w1", "w2", "w3"}
    np.testing.assert_array_equal(yielded["w1"].image, np.stack(expected["w1"]))
    for well in ("w2", "w3"):  # 16-bit: round(255 * x / max(x)) per channel image (the processor's rule)
        rule = [np.rint(p.astype(np.float32) * (255.0 / int(p.max()))).astype(np.uint8) for p in expected[well]]
        np.testing.assert_array_equal(yielded[well].image, np.stack(rule))
    assert yielded["w2"].metadata == {"well_id": "w2", "plate": "plate1", "treatment": "drug-1"}
    assert dict(wells.stats.skipped_sites) == {"missing_channel": 1} and dict(wells.stats.skipped) == {
        "no_valid_site": 1}


def test_plate_folder_channel_order_by_index_subset_or_error(tmp_path):
    assert channel_order(["3", "1", "2"], None) == ["1", "2", "3"]
    assert channel_order(["RNA", "nuclei"], None) == ["nuclei", "RNA"]
    assert channel_order(["dapi", "tubulin"], ["tubulin", "dapi"]) == ["tubulin", "dapi"]
    with pytest.raises(ValueError, match="pass channels="):
        channel_order(["dapi", "tubulin"], None)
    with pytest.raises(ValueError, match="never appear"):
        channel_order(["dapi", "tubulin"], ["dapi", "actin"])
    csv, expected = plate_csv(tmp_path)
    subset = {well.well_id: well for well in PlateFolderWells(csv, channels=["rna", "nuclei"])}
    assert set(subset) == {"w1", "w2", "w3", "w4"}  # w4 lacks only golgi, which is not asked for
    np.testing.assert_array_equal(subset["w1"].image, np.stack([expected["w1"][3], expected["w1"][0]]))


def test_plate_folder_skips_missing_files_and_mismatched_sizes_and_splits_by_rank(tmp_path):
    rows = []
    for well in range(6):
        for channel in (1, 2):
            size = 16 if (well, channel) == (4, 2) else SIZE
            if (well, channel) != (5, 1):
                write(tmp_path / f"{well}_{channel}.png", plane([well, channel])[:size, :size], "PNG")
            rows.append({"well_id": f"well{well}", "channel": channel, "path": f"{well}_{channel}.png"})
    pd.DataFrame(rows).to_csv(tmp_path / "plate.csv", index=False)
    parts = [PlateFolderWells(tmp_path / "plate.csv", rank=rank, world_size=3) for rank in range(3)]
    yielded = [well.well_id for part in parts for well in part]
    assert sorted(yielded) == ["well0", "well1", "well2", "well3"]
    skipped = sum((part.stats.skipped for part in parts), start=type(parts[0].stats.skipped)())
    skipped_sites = sum((part.stats.skipped_sites for part in parts), start=type(parts[0].stats.skipped)())
    assert dict(skipped) == {"no_valid_site": 2}
    assert dict(skipped_sites) == {"inconsistent_image_size": 1, "missing_file": 1}
    bad = tmp_path / "bad.csv"
    bad.write_text("well,channel,file\nw,1,x.png\n")
    with pytest.raises(ValueError, match=r"lacks the column\(s\) \['well_id', 'path'\]"):
        PlateFolderWells(bad)


# ---------------------------------------------------------------------------------------------------- WellDataset
def test_well_dataset_random_crops_are_seeded_per_epoch_and_shuffle_buffer_keeps_every_well(tmp_path):
    csv, _ = plate_csv(tmp_path)
    processor = PhenomImageProcessor(crop_size=16)
    wells = PlateFolderWells(csv)

    def crops(epoch, seed=0, buffer=0):
        dataset = WellDataset(wells, mode="random_crop", processor=processor, seed=seed, shuffle_buffer_size=buffer)
        dataset.set_epoch(epoch)
        return [(sample["well_id"], sample["pixel_values"]) for sample in dataset]

    first, again, other_epoch = crops(0), crops(0), crops(1)
    # Reading order: sorted by well id (w4, incomplete, is skipped).
    assert [well for well, _ in first] == [well for well in wells.well_ids if well != "w4"]
    assert all(crop.shape == (6, 16, 16) and crop.dtype == torch.uint8 for _, crop in first)
    assert all(torch.equal(a, b) for (_, a), (_, b) in zip(first, again, strict=True))
    assert not all(torch.equal(a, b) for (_, a), (_, b) in zip(first, other_epoch, strict=True))
    orders = {tuple(well for well, _ in crops(0, seed=seed, buffer=2)) for seed in range(8)}
    assert all(sorted(order) == ["w1", "w2", "w3"] for order in orders) and len(orders) > 1


def test_repeat_starts_new_passes_with_new_crops_and_refuses_an_empty_share(tmp_path):
    csv, _ = plate_csv(tmp_path)
    dataset = WellDataset(PlateFolderWells(csv), mode="random_crop", processor=PhenomImageProcessor(crop_size=16),
                          repeat=True)
    samples = list(itertools.islice(iter(dataset), 7))
    assert [sample["well_id"] for sample in samples[:3]] == [sample["well_id"] for sample in samples[3:6]]
    first, second = samples[:3], samples[3:6]
    assert not all(torch.equal(a["pixel_values"], b["pixel_values"]) for a, b in zip(first, second, strict=True))
    with pytest.raises(RuntimeError, match="yielded no well"):
        next(iter(WellDataset([], repeat=True)))


def test_collate_views_batches_wells_with_different_view_counts():
    samples = [
        {"well_id": "a", "pixel_values": torch.zeros(4, 2, 8, 8, dtype=torch.uint8)},
        {"well_id": "b", "pixel_values": torch.ones(1, 2, 8, 8, dtype=torch.uint8)},
    ]
    batch = collate_views(samples)
    assert batch["well_id"] == ["a", "b"] and batch["pixel_values"].shape == (5, 2, 8, 8)
    assert batch["well_index"].tolist() == [0, 0, 0, 0, 1]
    with pytest.raises(ValueError, match="mode must be one of"):
        WellDataset([], mode="center")


# ---------------------------------------------------------------------------------------------------- open_wells
def test_open_wells_detects_every_kind_of_source_and_refuses_options_it_does_not_take(tmp_path):
    from phenom_data import detect_source, open_wells
    from phenom_data.load_data import write_load_data
    from phenom_data.rxrx3_core import shard_filename

    rxrx1_root, _ = rxrx1_release(tmp_path / "rxrx1")
    plate, _ = plate_csv(tmp_path / "plates")
    load_data = write_load_data(tmp_path / "jump", {("P1", "A01", "1"): {"DNA": plane(0)}}, csv_name="ld.csv.gz")
    rxrx3 = tmp_path / "rxrx3"
    (rxrx3 / shard_filename(0, 1)).parent.mkdir(parents=True)
    (rxrx3 / shard_filename(0, 1)).write_bytes(b"")
    kinds = {source: detect_source(source).name
             for source in (rxrx1_root, plate, load_data, rxrx3, "recursionpharma/rxrx3-core")}
    assert list(kinds.values()) == ["rxrx1", "plate-csv", "load-data", "rxrx3-core", "rxrx3-core"]
    processor = PhenomImageProcessor(crop_size=16)
    assert type(open_wells(plate, processor=processor)).__name__ == "PlateFolderWells"
    assert type(open_wells(rxrx1_root, processor=processor, experiments=["HEPG2-01"])).__name__ == "RxRx1Wells"
    assert [well.well_id for well in open_wells(load_data, processor=processor)] == ["P1_A01"]
    with pytest.raises(ValueError, match=r"option\(s\) perturbation_types do not apply to .*plates.csv \(plate-csv"):
        open_wells(plate, processor=processor, perturbation_types=["CRISPR"])

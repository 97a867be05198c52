"""RxRx3CoreWells on hand-made parquet shards in the Hub's feature schema (`__key__` + `jp2` Image feature holding
real JPEG-2000 bytes): wells assembled by key whatever the row order, across shard and row-group boundaries, each
complete well exactly once across ranks and DataLoader workers, bad wells skipped and counted, filters, the real
sample well."""

import io
import json
import logging
from collections import Counter

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import FIXTURES
from PIL import Image

from modeling_phenom import PhenomImageProcessor
from phenom_data import RxRx3CoreWells, WellDataset, WellStats, collate_views, read_well_list
from phenom_data.rxrx3_core import (
    METADATA_FILENAME,
    looks_like_repo_id,
    parse_rxrx3_core_key,
    rxrx3_core_key,
    shard_filename,
    write_rxrx3_core_shard,
)

SIZE = 64
GOOD = [("gene-001", 1, f"A{index:02d}") for index in range(1, 8)] + [
    ("compound-001", 2, f"B{index:02d}") for index in range(1, 8)
]
CORRUPT = ("gene-001", 3, "C01")  # channel 3 holds truncated JPEG-2000 bytes
MISSING = ("gene-001", 3, "M01")  # no channel 4
NO_METADATA = ("compound-001", 4, "N01")  # complete images, no metadata row
DUPLICATE = ("compound-001", 4, "D01")  # two rows for channel 2 before the well is complete
NO_IMAGES = ("gene-001", 5, "E01")  # a metadata row with no images
EXPECTED_SKIPS = {"corrupt_image": 1, "missing_channel": 1, "no_metadata": 1, "duplicate_channel": 1}


def well_id(well):
    return f"{well[0]}_{well[1]}_{well[2]}"


GOOD_IDS = {well_id(well) for well in GOOD}


def jp2_bytes(array):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG2000")  # pillow's default JPEG-2000 is lossless
    return buffer.getvalue()


def channel_image(well, channel):
    seed = [sum(map(ord, well_id(well))), channel]
    return np.random.default_rng(seed).integers(0, 256, (SIZE, SIZE), dtype=np.uint8)


def expected_image(well):
    return np.stack([channel_image(well, channel) for channel in range(1, 7)])


def well_rows(well, channels=range(1, 7)):
    return [(rxrx3_core_key(*well, channel), jp2_bytes(channel_image(well, channel))) for channel in channels]


def metadata_frame():
    rows = []
    for well in [*GOOD, CORRUPT, MISSING, DUPLICATE, NO_IMAGES]:
        crispr = well[0].startswith("gene")
        rows.append(
            {
                "well_id": well_id(well), "experiment_name": well[0], "plate": well[1], "address": well[2],
                "gene": "RPLP2" if crispr else None, "treatment": "RPLP2_guide_4" if crispr else "Dequalinium",
                "SMILES": None if crispr else "CC1=[N+]C", "concentration": None if crispr else 0.25,
                "perturbation_type": "CRISPR" if crispr else "COMPOUND", "cell_type": "HUVEC",
            }
        )
    return pd.DataFrame(rows)


def ordered_rows():
    """All rows in well order: 108 rows; the file cuts at rows 50 and 87 fall inside good wells 6 and 10."""
    corrupt = well_rows(CORRUPT)
    corrupt[2] = (corrupt[2][0], corrupt[2][1][: len(corrupt[2][1]) // 2])
    duplicate = well_rows(DUPLICATE, [2]) + well_rows(DUPLICATE)
    duplicate[1] = (duplicate[1][0], jp2_bytes(np.zeros((SIZE, SIZE), np.uint8)))
    sequence = [well_rows(well) for well in GOOD[:6]] + [corrupt, well_rows(MISSING, [1, 2, 3, 5, 6])]
    sequence += [well_rows(well) for well in GOOD[6:10]] + [well_rows(NO_METADATA), duplicate]
    sequence += [well_rows(well) for well in GOOD[10:]]
    return [row for rows in sequence for row in rows], duplicate


def build_dataset(directory, shuffle="rows", row_group_size=7, binary=False, seed=0):
    """Three shards in the Hub layout plus the metadata CSV.

    shuffle="rows": rows shuffled anywhere inside each file (wells still straddle the two file boundaries);
    shuffle="channels": wells keep their rows together but in shuffled channel order, and wells are shuffled.
    """
    rng = np.random.default_rng(seed)
    rows, duplicate = ordered_rows()
    if shuffle == "channels":
        groups, current = [], []
        for row in rows:
            if current and parse_rxrx3_core_key(row[0])[0] != parse_rxrx3_core_key(current[-1][0])[0]:
                groups.append(current)
                current = []
            current.append(row)
        groups.append(current)
        straddling = {0: groups[:8], 1: groups[8:15], 2: groups[15:]}  # keep the two straddling wells in place
        rows = []
        for part in straddling.values():
            middle = list(part[1:-1])
            rng.shuffle(middle)
            part = [part[0], *middle, part[-1]] if len(part) > 1 else part
            for group in part:
                if group is not duplicate:
                    group = [group[index] for index in rng.permutation(len(group))]
                rows += group
    shards = [rows[:50], rows[50:87], rows[87:]]
    if shuffle == "rows":
        for index, shard in enumerate(shards):
            order = rng.permutation(len(shard))
            shuffled = [shard[position] for position in order]
            # The duplicate channel must arrive before the well is complete (else it is counted as a late row).
            slots = [position for position, row in enumerate(shuffled) if row in duplicate]
            for slot, row in zip(slots, [row for row in duplicate if row in shard], strict=True):
                shuffled[slot] = row
            shards[index] = shuffled
    for index, shard in enumerate(shards):
        keys, images = zip(*shard, strict=True)
        write_rxrx3_core_shard(directory / shard_filename(index, 3), keys, images, row_group_size, binary=binary)
    metadata_frame().to_csv(directory / METADATA_FILENAME, index=False)
    return directory


@pytest.fixture(scope="module")
def shuffled_rows_dir(tmp_path_factory):
    return build_dataset(tmp_path_factory.mktemp("rxrx3_rows"), shuffle="rows")


@pytest.fixture(scope="module")
def grouped_rows_dir(tmp_path_factory):
    return build_dataset(tmp_path_factory.mktemp("rxrx3_channels"), shuffle="channels", row_group_size=5, seed=1)


def check_wells(wells):
    """Every yielded well is a known good well with its exact channel stack, at most once."""
    ids = [well.well_id for well in wells]
    assert len(ids) == len(set(ids)), Counter(ids).most_common(3)
    by_id = {well_id(well): well for well in GOOD}
    for well in wells:
        assert well.image.dtype == np.uint8 and well.image.shape == (6, SIZE, SIZE)
        np.testing.assert_array_equal(well.image, expected_image(by_id[well.well_id]))
    return set(ids)


def test_repo_ids_are_what_huggingface_hub_accepts_and_local_paths_are_not(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert looks_like_repo_id("recursionpharma/rxrx3-core") and looks_like_repo_id("rxrx3-core")
    # Hub rules a character class misses: no "--" or "..", no trailing "." or ".git", parts of at most 96 characters.
    for text in ("owner--x/name", "owner/a..b", "owner/name.", "owner/name.git", "o/" + "x" * 97, "./data", "/data/x",
                 "a/b/c"):
        assert not looks_like_repo_id(text), text
    (tmp_path / "plates" / "run1").mkdir(parents=True)
    assert not looks_like_repo_id("plates/run1")  # an existing folder is a path, even if it reads as an id


def test_wells_assemble_by_key_from_shuffled_rows_and_across_file_boundaries(shuffled_rows_dir):
    wells = RxRx3CoreWells(shuffled_rows_dir)
    yielded = list(wells)
    assert check_wells(yielded) == GOOD_IDS
    straddling = {well_id(GOOD[6]), well_id(GOOD[10])}  # rows in two files each
    assert straddling <= {well.well_id for well in yielded}
    first = next(well for well in yielded if well.well_id == "compound-001_2_B01")
    assert first.metadata["perturbation_type"] == "COMPOUND" and first.metadata["concentration"] == 0.25
    assert first.metadata["gene"] is None and first.metadata["plate"] == 2


def test_corrupt_and_incomplete_wells_are_skipped_counted_and_reported(shuffled_rows_dir, caplog):
    wells = RxRx3CoreWells(shuffled_rows_dir)
    with caplog.at_level(logging.WARNING, logger="phenom_data"):
        assert check_wells(list(wells)) == GOOD_IDS
    stats = wells.stats
    assert stats.yielded == len(GOOD) and dict(stats.skipped) == EXPECTED_SKIPS
    assert stats.metadata_without_images == 1 and stats.filtered == 0
    messages = [record.getMessage() for record in caplog.records]
    assert any("gene-001_3_C01" in message and "channel 3" in message for message in messages)
    assert any("gene-001_3_M01" in message and "[4]" in message for message in messages)
    summary = messages[-1]
    assert "yielded 14 wells, skipped 4" in summary and "corrupt_image 1" in summary
    assert "1 metadata rows without images" in summary


def test_every_split_into_ranks_yields_each_complete_well_once_and_counts_each_skip_once(grouped_rows_dir):
    for world_size in range(1, 7):
        parts = [RxRx3CoreWells(grouped_rows_dir, rank=rank, world_size=world_size, boundary_rows=8)
                 for rank in range(world_size)]
        yielded = [well for part in parts for well in part]
        assert check_wells(yielded) == GOOD_IDS, world_size
        total = WellStats(metadata_without_images=0)
        for part in parts:
            total = total.merge(part.stats)
        assert dict(total.skipped) == EXPECTED_SKIPS, (world_size, total.skipped)
        assert sum(total.bad_rows.values()) == 0


def test_two_ranks_by_two_dataloader_workers_over_three_shards_yield_every_complete_well_once(
    shuffled_rows_dir, tmp_path
):
    well_ids, views = [], 0
    for rank in range(2):
        wells = RxRx3CoreWells(shuffled_rows_dir, rank=rank, world_size=2)
        # 64 px test wells -> four 32 px tiles
        dataset = WellDataset(wells, mode="tiles", processor=PhenomImageProcessor(crop_size=32),
                              stats_dir=tmp_path / "stats")
        loader = torch.utils.data.DataLoader(dataset, batch_size=3, num_workers=2, collate_fn=collate_views)
        for batch in loader:
            well_ids += batch["well_id"]
            assert batch["pixel_values"].dtype == torch.uint8 and batch["pixel_values"].shape[1:] == (6, 32, 32)
            views += len(batch["pixel_values"])
    assert len(well_ids) == len(set(well_ids)) and set(well_ids) == GOOD_IDS
    assert views == 4 * len(GOOD)
    assert len(list((tmp_path / "stats").glob("stats-*.json"))) == 4
    merged = WellStats.load_dir(tmp_path / "stats")
    assert merged.yielded == len(GOOD) and dict(merged.skipped) == EXPECTED_SKIPS


def test_each_part_reads_its_own_row_groups_plus_a_bounded_window(grouped_rows_dir, monkeypatch):
    """No part reads another part's block: rows read past the block stay within `boundary_rows`."""
    read_rows = Counter()
    original = RxRx3CoreWells._rows

    def counting_rows(self, dataset):
        for row in original(self, dataset):
            read_rows[self.rank] += 1
            yield row

    monkeypatch.setattr(RxRx3CoreWells, "_rows", counting_rows)
    world_size = 3
    for rank in range(world_size):
        list(RxRx3CoreWells(grouped_rows_dir, rank=rank, world_size=world_size, boundary_rows=8))
    total_rows = len(ordered_rows()[0])
    assert sum(read_rows.values()) <= total_rows + 8 * (world_size - 1)
    assert all(count < total_rows / 2 for count in read_rows.values()), read_rows


def test_a_well_straddling_beyond_the_window_is_counted_incomplete_never_duplicated(tmp_path):
    """The documented limit: rows of one well further apart than `boundary_rows` across a block edge."""
    far = GOOD[0]
    rows = well_rows(far, [1, 2, 3]) + [row for well in GOOD[1:4] for row in well_rows(well)]
    second = [row for well in GOOD[4:7] for row in well_rows(well)] + well_rows(far, [4, 5, 6])
    for index, shard in enumerate([rows, second]):
        keys, images = zip(*shard, strict=True)
        write_rxrx3_core_shard(tmp_path / shard_filename(index, 2), keys, images, row_group_size=100)
    parts = [RxRx3CoreWells(tmp_path, rank=rank, world_size=2, boundary_rows=6) for rank in range(2)]
    yielded = [well.well_id for part in parts for well in part]
    assert sorted(yielded) == sorted(well_id(well) for well in GOOD[1:7])
    assert sum(part.stats.skipped["missing_channel"] for part in parts) >= 1
    whole = RxRx3CoreWells(tmp_path)  # one part reads everything: the well is whole
    assert {well.well_id for well in whole} == {well_id(well) for well in GOOD[:7]}
    # More parts than row groups (2 here): the extra parts read nothing, the default window completes the well.
    parts = [RxRx3CoreWells(tmp_path, rank=rank, world_size=5) for rank in range(5)]
    assert sorted(well.well_id for part in parts for well in part) == sorted(well_id(well) for well in GOOD[:7])


def test_plain_binary_jp2_column_is_read_like_the_image_feature(tmp_path):
    directory = build_dataset(tmp_path, shuffle="channels", binary=True)
    wells = RxRx3CoreWells(directory)
    assert check_wells(list(wells)) == GOOD_IDS
    assert dict(wells.stats.skipped) == EXPECTED_SKIPS


def test_filters_by_experiment_perturbation_type_and_well_list(shuffled_rows_dir, tmp_path):
    by_experiment = RxRx3CoreWells(shuffled_rows_dir, experiments=["gene-001"])
    assert {well.well_id for well in by_experiment} == {well_id(well) for well in GOOD[:7]}
    assert by_experiment.stats.filtered == 7 + 2  # compound wells: 7 good, N01 and D01
    by_type = RxRx3CoreWells(shuffled_rows_dir, perturbation_types="COMPOUND")
    assert {well.well_id for well in by_type} == {well_id(well) for well in GOOD[7:]}
    well_list = tmp_path / "wells.txt"
    well_list.write_text("# kept wells\ngene-001_1_A02\n\ncompound-001_2_B07  \n")
    assert read_well_list(well_list) == ["gene-001_1_A02", "compound-001_2_B07"]
    listed = RxRx3CoreWells(shuffled_rows_dir, well_list=well_list)
    assert [well.well_id for well in listed] and {well.well_id for well in listed} == set(read_well_list(well_list))
    assert listed.stats.metadata_without_images == 0 and listed.stats.total_skipped == 0


def test_without_metadata_every_complete_well_comes_with_empty_metadata(shuffled_rows_dir):
    wells = RxRx3CoreWells(shuffled_rows_dir, metadata=False)
    yielded = {well.well_id: well for well in wells}
    assert set(yielded) == GOOD_IDS | {well_id(NO_METADATA)}
    np.testing.assert_array_equal(yielded[well_id(NO_METADATA)].image, expected_image(NO_METADATA))
    assert all(well.metadata == {} for well in yielded.values())
    assert wells.stats.skipped["no_metadata"] == 0 and wells.stats.metadata_without_images is None


def test_real_sample_well_streams_from_parquet_and_matches_its_readme_statistics(tmp_path):
    keys = [rxrx3_core_key("compound-001", 1, "AA41", channel) for channel in range(1, 7)]
    images = [(FIXTURES / "rxrx3_sample" / f"AA41_s1_{channel}.jp2").read_bytes() for channel in range(1, 7)]
    write_rxrx3_core_shard(tmp_path / shard_filename(0, 1), keys[::-1], images[::-1])
    wells = list(RxRx3CoreWells(tmp_path))
    assert [well.well_id for well in wells] == ["compound-001_1_AA41"] and wells[0].metadata == {}
    image = wells[0].image
    assert image.shape == (6, 512, 512) and image.dtype == np.uint8
    readme = {  # tests/fixtures/rxrx3_sample/README.md: min, max, mean, std per channel
        1: (0, 117, 10.103, 11.297), 2: (6, 255, 23.839, 20.558), 3: (1, 65, 9.289, 5.350),
        4: (1, 155, 14.539, 12.543), 5: (1, 60, 2.706, 1.910), 6: (5, 171, 21.729, 14.304),
    }
    for channel, (low, high, mean, std) in readme.items():
        plane = image[channel - 1].astype(np.float64)
        assert (plane.min(), plane.max()) == (low, high)
        assert plane.mean() == pytest.approx(mean, abs=1e-3) and plane.std() == pytest.approx(std, abs=1e-3)
    sample = next(iter(WellDataset(RxRx3CoreWells(tmp_path), mode="tiles")))
    assert sample["well_id"] == "compound-001_1_AA41"
    assert sample["pixel_values"].shape == (4, 6, 256, 256) and sample["pixel_values"].dtype == torch.uint8
    assert torch.equal(sample["pixel_values"][3], torch.from_numpy(image[:, 256:, 256:]))


def test_bad_sources_and_arguments_raise_errors_that_name_the_problem(tmp_path, shuffled_rows_dir):
    with pytest.raises(FileNotFoundError, match="neither a local directory nor a Hub dataset repo id"):
        RxRx3CoreWells(str(tmp_path / "missing" / "dir"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no parquet files match"):
        RxRx3CoreWells(tmp_path / "empty")
    with pytest.raises(ValueError, match="rank must be an integer"):
        RxRx3CoreWells(shuffled_rows_dir, rank=2, world_size=2)
    with pytest.raises(ValueError, match="perturbation_types needs the metadata CSV"):
        RxRx3CoreWells(shuffled_rows_dir, metadata=False, perturbation_types=["CRISPR"])
    other = tmp_path / "other"
    (other / "data").mkdir(parents=True)
    pd.DataFrame({"__key__": ["a"], "image": [b"x"]}).to_parquet(other / "data" / "train-0.parquet")
    with pytest.raises(ValueError, match="lack the column"):
        RxRx3CoreWells(other)
    bad_metadata = tmp_path / "metadata.csv"
    bad_metadata.write_text("id,plate\nx,1\n")
    with pytest.raises(ValueError, match="no 'well_id' column"):
        RxRx3CoreWells(shuffled_rows_dir, metadata=bad_metadata)


def test_hub_repo_id_resolves_metadata_from_the_hub_cache_and_streams_through_datasets(tmp_path, monkeypatch):
    """Offline, a repo id goes through huggingface_hub (metadata from `cache_dir`) and datasets' Hub streaming,
    which needs the network: the error names the repo."""
    snapshot = tmp_path / "datasets--acme--rxrx3-core" / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    metadata_frame().to_csv(snapshot / METADATA_FILENAME, index=False)
    (tmp_path / "datasets--acme--rxrx3-core" / "refs").mkdir()
    (tmp_path / "datasets--acme--rxrx3-core" / "refs" / "main").write_text("0" * 40)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConnectionError, match="acme/rxrx3-core"):
        RxRx3CoreWells("acme/rxrx3-core", cache_dir=tmp_path)


def test_stats_round_trip_through_json(tmp_path):
    stats = WellStats(yielded=3, skipped=Counter({"corrupt_image": 2}), filtered=1, metadata_without_images=0)
    stats.save(tmp_path / "stats-rank0-worker0.json")
    assert json.loads((tmp_path / "stats-rank0-worker0.json").read_text())["skipped"] == {"corrupt_image": 2}
    assert WellStats.load_dir(tmp_path) == stats


def test_channels_by_rxrx_name_and_exclude_before_decoding(shuffled_rows_dir, monkeypatch):
    from phenom_data import open_wells, rxrx3_core

    decoded = []
    original = rxrx3_core.decode_image
    monkeypatch.setattr(rxrx3_core, "decode_image", lambda data: decoded.append(1) or original(data))
    done = sorted(GOOD_IDS)[:10]
    wells = open_wells(shuffled_rows_dir, processor=PhenomImageProcessor(crop_size=32), channels=["rna", "nuclei"],
                       exclude=done)
    yielded = {well.well_id: well for well in wells}
    # The corrupt well's broken channel (3, actin) is not asked for, so it is read whole.
    assert set(yielded) == (GOOD_IDS - set(done)) | {well_id(CORRUPT)} and wells.channel_names == ["rna", "nuclei"]
    for well in [*GOOD, CORRUPT]:
        if well_id(well) in yielded:
            np.testing.assert_array_equal(yielded[well_id(well)].image, expected_image(well)[[3, 0]])
    assert wells.stats.excluded == 10
    assert len(decoded) == 2 * len(yielded)  # only the chosen channels of wells not done are decoded
    with pytest.raises(ValueError, match=r"channel 'DNA' is not an RxRx channel; the source has \['nuclei', "):
        open_wells(shuffled_rows_dir, processor=PhenomImageProcessor(), channels=["DNA"])

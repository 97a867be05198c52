"""`phenom embed` building blocks with a real tiny PhenomModel: one forward pass gives every block, a well is the mean
of its views, parts are written as they come, and an interrupted run resumes with no well lost or duplicated."""

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from conftest import random_pixels, small_config

from eval.embed import embed_into_store, parse_blocks, well_means
from eval.embedding_store import EmbeddingStore, block_paths
from eval.embeddings_file import read_embeddings
from modeling_phenom import PhenomModel
from phenom_data import collate_views


def tiny_model():
    torch.manual_seed(0)
    return PhenomModel(small_config()).eval()


def well_samples(num_wells, views=4, seed=0):
    """`WellDataset(mode="tiles")`-style samples: 4 views of 6 x 32 x 32 per well."""
    return [{"well_id": f"gene-001_1_A{index:02d}", "pixel_values": random_pixels(views, 6, 32, seed=seed + index)}
            for index in range(num_wells)]


def batches(samples, batch_size):
    return [collate_views(samples[start:start + batch_size]) for start in range(0, len(samples), batch_size)]


def test_block_option_parsing():
    assert parse_blocks("last") == "last" and parse_blocks("all") == "all"
    assert parse_blocks("8,4, 12,4") == [4, 8, 12]


def test_well_embedding_is_the_mean_of_its_views_for_every_block_from_one_pass(tmp_path):
    model = tiny_model()
    samples = well_samples(5)
    store = EmbeddingStore(tmp_path / "emb.parquet", [1, 3], {"model": "tiny"})
    store.prepare()
    embedded = embed_into_store(model, batches(samples, 2), [1, 3], store, rank=0, device="cpu",
                                autocast_dtype=None, part_wells=2, show_progress=False)
    assert embedded == 5 and len(store.part_files()) == 3  # parts of 2, 2 and 1 wells
    paths = store.merge({"model": "tiny", "dataset": "random"})
    assert paths == {1: tmp_path / "emb_block1.parquet", 3: tmp_path / "emb_block3.parquet"}
    assert not store.parts_dir.exists()
    with torch.inference_mode():
        for block in (1, 3):
            table = read_embeddings(paths[block])
            assert list(table.well_ids) == [sample["well_id"] for sample in samples]
            assert table.provenance == {"model": "tiny", "dataset": "random", "block": block}
            for row, sample in enumerate(samples):
                hidden = model(sample["pixel_values"], output_hidden_states=True).hidden_states[block]
                expected = hidden[:, 1:].mean(dim=1).mean(dim=0)  # patch-token mean, then mean over the 4 views
                np.testing.assert_allclose(table.features[row], expected.numpy(), rtol=1e-5, atol=1e-5)


def test_output_is_in_the_official_embeddings_layout(tmp_path):
    store = EmbeddingStore(tmp_path / "emb.parquet", [3], {"model": "tiny"})
    store.prepare()
    embed_into_store(tiny_model(), batches(well_samples(3), 3), [3], store, 0, "cpu", None, show_progress=False)
    (path,) = store.merge({"model": "tiny"}).values()
    schema = pq.read_schema(path)
    assert path == tmp_path / "emb.parquet"
    assert schema.names == ["well_id"] + [f"feature_{index}" for index in range(32)]
    assert str(schema.field("feature_0").type) == "float" and str(schema.field("well_id").type) == "string"


def test_an_interrupted_run_resumes_without_losing_or_repeating_a_well(tmp_path):
    model = tiny_model()
    samples = well_samples(7)
    settings = {"model": "tiny", "data": "random"}
    first = EmbeddingStore(tmp_path / "emb.parquet", [2], settings)
    first.prepare()

    def interrupted():
        for index, batch in enumerate(batches(samples, 2)):
            if index == 2:
                raise KeyboardInterrupt  # killed while embedding the third batch
            yield batch

    with pytest.raises(KeyboardInterrupt):
        embed_into_store(model, interrupted(), [2], first, 0, "cpu", None, part_wells=2, show_progress=False)
    # A second run (another process count: rank 1 here) sees what the first one finished and embeds the rest.
    second = EmbeddingStore(tmp_path / "emb.parquet", [2], settings)
    second.prepare()
    done = second.done_well_ids()
    assert done == {sample["well_id"] for sample in samples[:4]}
    rest = [sample for sample in samples if sample["well_id"] not in done]
    embed_into_store(model, batches(rest, 2), [2], second, 1, "cpu", None, part_wells=2, show_progress=False)
    (path,) = second.merge({"model": "tiny"}).values()
    resumed = read_embeddings(path)

    fresh_store = EmbeddingStore(tmp_path / "fresh.parquet", [2], settings)
    fresh_store.prepare()
    embed_into_store(model, batches(samples, 3), [2], fresh_store, 0, "cpu", None, show_progress=False)
    fresh = read_embeddings(fresh_store.merge({"model": "tiny"})[2])
    assert list(resumed.well_ids) == list(fresh.well_ids) == sorted(sample["well_id"] for sample in samples)
    np.testing.assert_allclose(resumed.features, fresh.features, rtol=1e-5, atol=1e-6)


def test_parts_of_another_run_or_a_duplicated_well_are_refused(tmp_path):
    store = EmbeddingStore(tmp_path / "emb.parquet", [1], {"model": "a"})
    store.prepare()
    EmbeddingStore(tmp_path / "emb.parquet", [1], {"model": "b"}).prepare()  # no part yet: settings bind nothing
    store.prepare()
    features = {1: np.zeros((1, 4), dtype=np.float32)}
    store.write_part(0, ["w1"], features)
    with pytest.raises(ValueError, match=r"holds 1 parts of an embedding run with other settings \(model: was "
                                         r"\"a\", now \"b\"\)"):
        EmbeddingStore(tmp_path / "emb.parquet", [1], {"model": "b"}).prepare()
    store.write_part(1, ["w1"], features)
    with pytest.raises(ValueError, match=r"1 wells were embedded more than once .* \['w1'\]"):
        store.merge({})


def test_well_means_average_views_per_well():
    views = torch.tensor([[1.0, 2.0], [3.0, 4.0], [10.0, 0.0]])
    np.testing.assert_array_equal(well_means(views, torch.tensor([0, 0, 1]), 2), [[2.0, 3.0], [10.0, 0.0]])


def test_block_paths_name_one_file_per_block():
    assert block_paths("out/emb.parquet", [12]) == {12: Path("out/emb.parquet")}
    assert [path.name for path in block_paths("out/emb.parquet", [4, 8]).values()] == ["emb_block4.parquet",
                                                                                     "emb_block8.parquet"]


def test_anndata_export_holds_features_metadata_and_provenance(tmp_path):
    anndata = pytest.importorskip("anndata",
                                  reason="optional: pip install 'phenom-microscopy[anndata]' (needs pandas < 3)")
    import pandas as pd

    from eval.embed import write_anndata

    pd.DataFrame({"well_id": ["w1", "w2"], "treatment": ["A_guide_1", "EMPTY_control"]}).to_csv(tmp_path / "m.csv",
                                                                                              index=False)
    paths = {2: tmp_path / "x_block2.h5ad"}
    write_anndata(paths, np.array(["w2", "w1"], dtype=object), {2: np.eye(2, 4, dtype=np.float32)}, tmp_path / "m.csv",
                  {"model": "tiny"})
    data = anndata.read_h5ad(paths[2])
    assert list(data.obs_names) == ["w2", "w1"] and list(data.obs["treatment"]) == ["EMPTY_control", "A_guide_1"]
    np.testing.assert_array_equal(data.X, np.eye(2, 4))
    assert data.uns["phenom"]["block"] == 2 and data.uns["phenom"]["model"] == "tiny"

"""`phenom probe` on a planted screen of four experiments: the gene is predicted above chance on held-out
experiments, the block curve (results.json, PNG) peaks at the planted block, the split keeps experiments apart and
is seeded; RxRx1's per-site rows become well means; bad input gets clear errors. `eval.probe.probe` is called as a
function; `phenom.commands.probe.main` where the command's exit code and one-line errors are proved."""

import json

import numpy as np
import pandas as pd
import pytest
from planted_screen import planted_screen

from eval import probe
from eval.embeddings_file import read_embeddings, write_embeddings
from phenom.commands import probe as probe_command


@pytest.fixture(scope="module")
def screen():
    return planted_screen()


@pytest.fixture(scope="module")
def files(screen, tmp_path_factory):
    return screen.write(tmp_path_factory.mktemp("probe"))


@pytest.fixture(scope="module")
def probe_out(files, tmp_path_factory):
    paths, metadata = files
    out = tmp_path_factory.mktemp("probe_out")
    run = probe.probe(out, embeddings=paths, metadata=metadata, task="gene", show_progress=False)
    assert run.results_path == out / "results.json" and run.result.best_block == 2
    assert run.files == dict(zip((1, 2, 3), paths, strict=True))
    return out


def test_probe_predicts_the_gene_above_chance_on_held_out_experiments(screen, probe_out):
    results = json.loads((probe_out / "results.json").read_text())
    metrics = results["metrics"]
    chance = 1 / 16  # 8 phenotype genes, 6 without a phenotype, 2 rare ones, all in the training experiments
    assert results["baselines"] == {f"probe_balanced_accuracy_block{block}": chance for block in (1, 2, 3)}
    assert metrics["probe_balanced_accuracy_block2"] > 5 * chance
    assert all(metrics[f"probe_balanced_accuracy_block{block}"] > chance for block in (1, 2, 3))
    assert results["counts"]["classes"] == 16 and results["counts"]["test_experiments"] == 1
    assert results["counts"]["task"] == "gene" and results["block"] is None and results["seeds"] == [0]


def test_block_curve_and_best_block_are_written(probe_out):
    results = json.loads((probe_out / "results.json").read_text())
    metrics = results["metrics"]
    assert sorted(metrics) == ["probe_balanced_accuracy_block1", "probe_balanced_accuracy_block2",
                               "probe_balanced_accuracy_block3", "probe_best_block"]
    # The planted signal peaks at block 2; the best block is an integer block number (cards print it as one).
    assert metrics["probe_best_block"] == 2 and isinstance(metrics["probe_best_block"], int)
    assert metrics["probe_balanced_accuracy_block2"] > max(metrics["probe_balanced_accuracy_block1"],
                                                           metrics["probe_balanced_accuracy_block3"])
    assert results["counts"]["recommended_trim_encoder_blocks"] == 2
    assert (probe_out / "probe_balanced_accuracy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_split_keeps_experiments_apart_and_is_seeded(screen, probe_out):
    split = json.loads((probe_out / "split.json").read_text())
    assert not set(split["train_experiments"]) & set(split["test_experiments"])
    assert sorted(split["train_experiments"] + split["test_experiments"]) == sorted(
        screen.metadata["experiment_name"].unique())
    experiments = screen.metadata["experiment_name"]
    assert probe.split_experiments(experiments, seed=0) == probe.split_experiments(experiments, seed=0)
    held_out = {tuple(probe.split_experiments(experiments, seed=seed).test) for seed in range(10)}
    assert len(held_out) > 1  # the seed chooses the held-out experiments
    fixed = probe.split_experiments(experiments, test_experiments=["gene-001", "gene-002"])
    assert fixed.test == ["gene-001", "gene-002"] and fixed.train == ["gene-003", "gene-004"]
    assert len(probe.split_experiments([f"e{index}" for index in range(51)], test_fraction=0.25).test) == 13


def test_the_probe_is_fitted_on_training_experiments_only(screen, files):
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.preprocessing import StandardScaler

    paths, metadata_path = files
    metadata, id_column = probe.read_probe_metadata(metadata_path)
    table = probe.well_table(probe.read_well_ids(paths[0]), metadata, id_column, "experiment_name", task="gene")
    split = probe.split_experiments(table.experiments, test_experiments=["gene-004"])
    result = probe.run_probe(table, split, probe.block_features(table, probe.block_files(paths)), show_progress=False)
    labelled = screen.metadata["gene"].notna()
    in_train = screen.metadata["experiment_name"].isin(split.train)
    assert result.counts["train_wells"] == int((labelled & in_train).sum())
    assert result.counts["test_wells"] == int((labelled & ~in_train).sum())
    assert result.counts["unlabeled_wells"] == int((~labelled).sum())
    # The same recipe written out with the held-out experiment never seen by the scaler or the classifier.
    train, test = table.experiments != "gene-004", table.experiments == "gene-004"
    features = table.features(read_embeddings(paths[1]))
    scaler = StandardScaler().fit(features[train])
    classifier = LogisticRegression(class_weight="balanced", max_iter=1000).fit(scaler.transform(features[train]),
                                                                                 table.labels[train])
    expected = balanced_accuracy_score(table.labels[test], classifier.predict(scaler.transform(features[test])))
    assert result.balanced_accuracy[2] == pytest.approx(expected, abs=1e-12)


def test_labels_csv_gives_the_same_probe_as_the_task_column(screen, files, tmp_path):
    paths, metadata = files
    labelled = screen.metadata.dropna(subset=["gene"])
    labels = tmp_path / "labels.csv"
    pd.DataFrame({"well_id": labelled["well_id"], "label": labelled["gene"]}).to_csv(labels, index=False)
    probe.probe(tmp_path / "out", embeddings=paths, metadata=metadata, labels=labels, plots=False,
                show_progress=False)
    by_labels = json.loads((tmp_path / "out" / "results.json").read_text())
    probe.probe(tmp_path / "task", embeddings=paths, metadata=metadata, task="gene", plots=False, show_progress=False)
    by_task = json.loads((tmp_path / "task" / "results.json").read_text())
    assert by_labels["metrics"] == by_task["metrics"] and by_labels["counts"]["task"] == "labels:labels.csv"


def test_rxrx1_sites_are_averaged_into_wells(tmp_path):
    """RxRx1: one embedding row per site (`site_id`), two sites per well (`well_id`), the class in `sirna`."""
    rng = np.random.default_rng(0)
    rows, features = [], []
    sirnas = [f"s{index}" for index in range(4)]
    directions = {sirna: 3 * rng.normal(size=8) for sirna in sirnas}
    for experiment in ("HEPG2-01", "HUVEC-01", "RPE-01"):
        for index, sirna in enumerate(sirnas * 3):
            well = f"{experiment}_1_B{index + 2:02d}"
            for site in (1, 2):
                rows.append({"site_id": f"{well}_{site}", "well_id": well, "experiment": experiment, "plate": 1,
                             "well": f"B{index + 2:02d}", "site": site, "sirna": sirna})
                features.append(directions[sirna] + rng.normal(size=8))
    metadata = pd.DataFrame(rows)
    metadata.to_csv(tmp_path / "metadata.csv", index=False)
    features = np.asarray(features, dtype=np.float32)
    write_embeddings(tmp_path / "rxrx1_block1.parquet", metadata["site_id"], features)
    write_embeddings(tmp_path / "rxrx1_block2.parquet", metadata["site_id"], 2 * features)
    table_metadata, id_column = probe.read_probe_metadata(tmp_path / "metadata.csv")
    assert id_column == "site_id"
    row_ids = probe.read_well_ids(tmp_path / "rxrx1_block1.parquet")
    table = probe.well_table(row_ids[::-1], table_metadata, id_column, "experiment", task="sirna")
    assert len(table.well_ids) == 36
    well_means = table.features(read_embeddings(tmp_path / "rxrx1_block1.parquet"))
    for row in (0, 17):
        sites = metadata.index[metadata["well_id"] == table.well_ids[row]]
        assert len(sites) == 2
        np.testing.assert_allclose(well_means[row], features[sites].mean(axis=0), rtol=1e-6)
    probe.probe(tmp_path / "out", embeddings=[tmp_path / "rxrx1_block1.parquet", tmp_path / "rxrx1_block2.parquet"],
                metadata=tmp_path / "metadata.csv", task="sirna", plots=False, show_progress=False)
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["counts"]["train_wells"] + results["counts"]["test_wells"] == 36
    assert results["metrics"]["probe_balanced_accuracy_block1"] > 0.25  # chance: 4 siRNAs


def run_probe(paths, metadata, out, **options):
    return probe.probe(out, embeddings=paths, metadata=metadata, show_progress=False, **options)


def test_a_task_column_with_one_class_is_a_clear_error(screen, files, tmp_path, capsys):
    paths, _ = files
    metadata = tmp_path / "one_class.csv"
    screen.metadata.assign(cell_type="HUVEC").to_csv(metadata, index=False)
    with pytest.raises(ValueError, match=r"the task has one class \('HUVEC'\)"):
        run_probe(paths, metadata, tmp_path / "out", task="cell_type")
    # The command: exit code 2 and the message on one line, nothing written.
    argv = ["--embeddings", *map(str, paths), "--metadata", str(metadata), "--out", str(tmp_path / "out"), "--task",
            "cell_type"]
    assert probe_command.main(argv, prog="phenom probe") == 2
    assert "phenom probe: error: the task has one class ('HUVEC')" in capsys.readouterr().err
    assert not (tmp_path / "out" / "results.json").exists()


def test_too_few_experiments_for_a_held_out_split_is_a_clear_error(screen, files, tmp_path):
    paths, _ = files
    metadata = tmp_path / "one_experiment.csv"
    screen.metadata.assign(experiment_name="gene-001").to_csv(metadata, index=False)
    with pytest.raises(ValueError, match="a held-out split needs at least 2 experiments"):
        run_probe(paths, metadata, tmp_path / "out", task="gene")


def test_other_bad_input_is_a_clear_error(screen, files, tmp_path, capsys):
    paths, metadata = files
    with pytest.raises(ValueError, match="task column 'no_such_column' is not in the metadata"):
        run_probe(paths, metadata, tmp_path / "a", task="no_such_column")
    with pytest.raises(ValueError, match="have no labelled wells"):
        run_probe(paths, metadata, tmp_path / "b", task="gene", test_experiments=["gene-009"])
    # Classes that never recur across experiments (each gene in one experiment, as RxRx3-core) cannot be probed.
    unique_per_experiment = tmp_path / "unique.csv"
    screen.metadata.assign(gene=screen.metadata["gene"] + "_" + screen.metadata["experiment_name"]).to_csv(
        unique_per_experiment, index=False)
    with pytest.raises(ValueError, match="has a class seen in training"):
        run_probe(paths, unique_per_experiment, tmp_path / "c", task="gene")
    with pytest.raises(ValueError, match="--embeddings needs --metadata"):
        probe.probe(tmp_path / "d", embeddings=[paths[0]], task="gene")
    assert probe_command.main(["--embeddings", str(paths[0]), "--task", "gene", "--out", str(tmp_path / "d")]) == 2
    assert "--embeddings needs --metadata" in capsys.readouterr().err
    with pytest.raises(ValueError, match="either --embeddings or --model with --data"):
        probe.probe(tmp_path / "e", embeddings=[paths[0]], metadata=metadata, model="m", data="d", task="gene")
    with pytest.raises(ValueError, match="either --task .* or --labels"):
        probe.probe(tmp_path / "f", embeddings=[paths[0]], metadata=metadata)


def test_blocks_of_different_wells_are_an_error(screen, files, tmp_path):
    paths, metadata = files
    fewer = tmp_path / "planted_block3.parquet"
    write_embeddings(fewer, screen.metadata["well_id"][:-1], screen.features[3][:-1])
    with pytest.raises(ValueError, match="embed different wells"):
        run_probe([paths[0], fewer], metadata, tmp_path / "out", task="gene")


def test_batch_correction_on_controls_before_the_probe(files, tmp_path):
    paths, metadata = files
    run_probe(paths, metadata, tmp_path / "out", task="gene", correction="centerscale", plots=False)
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["correction"] == "centerscale"
    # Removing each experiment's offset and gain on its controls keeps every block above twice chance.
    assert all(results["metrics"][f"probe_balanced_accuracy_block{block}"] > 2 / 16 for block in (1, 2, 3))


def test_probe_results_read_back_as_model_card_results(probe_out):
    from eval.results import read_results

    results = read_results(probe_out / "results.json")
    assert results.block is None and results.metrics["probe_best_block"] == 2
    assert isinstance(results.metrics["probe_best_block"], int)

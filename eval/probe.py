"""`phenom probe`: block-wise linear probing, the paper's "block search" (paper.md §3).

    phenom probe --model <hub id or dir> --data <dataset> --task gene --out DIR
    phenom probe --embeddings emb_block1.parquet emb_block2.parquet ... --metadata CSV --task gene --out DIR
    phenom probe ... --labels labels.csv          # a CSV with columns well_id,label instead of --task
    accelerate launch -m phenom probe --model ... # several processes embed; the main process probes

Protocol (paper.md §3; the scikit-learn recipe is the one paper.md proposes, as the paper does not give it):

1. Pooled embeddings (mean of patch tokens) of every block from one forward pass, averaged over each well's views:
   `phenom embed --blocks all` into `DIR/embeddings/`; or existing per-block files `<name>_block<k>.parquet` in the
   official layout (`well_id, feature_0 ...`), with no model.
2. Well means: embedding rows are joined with the metadata on its id column (`well_id`; RxRx1's per-site
   `site_id` when the metadata has one and the rows are sites, as in files embedded per site) and averaged per well
   (`well_id`): RxRx1 sites become one well; rows that are wells already (RxRx3-core, and RxRx1 as `phenom embed`
   reads it: a well with its sites) join the well's first metadata row. Wells without a label (empty task value, or
   not in `--labels`) are left out.
3. Experiment-level split: the experiments (`experiment_name`, or RxRx1's `experiment`) are shuffled with
   `numpy.random.default_rng(seed)` and the first `max(1, round(test_fraction * n))` are held out (at least one is
   kept for training), or `--test-experiments` names them. Train and test wells never share an experiment.
4. Per block: `StandardScaler` fitted on the training wells, `LogisticRegression(class_weight="balanced",
   max_iter=1000)` (multinomial, lbfgs), scored by balanced accuracy (mean per-class recall) on the held-out wells
   whose class occurs in training (a class never seen in training cannot be predicted; such wells are counted in
   `counts.test_wells_unseen_class`).
5. The best block is the one with the highest balanced accuracy (a tie goes to the shallower block: the cheaper
   trim); the recommended trim is `trim_encoder_blocks` = the best block (`phenom trim --blocks <best>`).

Chance is `1 / number of training classes` (the balanced accuracy of guessing uniformly), reported as the baseline
of every block. Writes `DIR/results.json` (DESIGN §6: `probe_balanced_accuracy_block<k>` for every k,
`probe_best_block`), `DIR/probe_balanced_accuracy.png` (balanced accuracy vs block) and `DIR/split.json` (the
experiments of each side).
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from phenom_data.atomic import atomic_write_json

from .correction import CORRECTIONS, MIN_CONTROLS_PER_BATCH, correct
from .embeddings_file import PROVENANCE_KEY, WELL_ID_COLUMN, WellEmbeddings, block_from_path, read_embeddings
from .perturbations import RXRX3_CORE
from .plots import plot_probe_curve
from .results import EvalResults, write_results
from .well_labels import experiment_column_of, has_label

logger = logging.getLogger(__name__)

SITE_ID_COLUMN = "site_id"  # RxRx1: one embedding row per site, two sites per well
DEFAULT_TEST_FRACTION = 0.25
MAX_ITER = 1000
EMBEDDINGS_SUBDIR = "embeddings"
EMBEDDINGS_NAME = "embeddings"


# ----------------------------------------------------------------------------------------------- inputs
def file_provenance(path: str | os.PathLike) -> dict:
    """What `phenom embed` recorded in an embeddings file (`model`, `dataset`, `block`, ...); `{}` for other files.
    Only the schema is read."""
    schema_metadata = pq.read_schema(path).metadata or {}
    return json.loads(schema_metadata[PROVENANCE_KEY]) if PROVENANCE_KEY in schema_metadata else {}


def block_files(paths: list[str | os.PathLike]) -> dict[int, Path]:
    """`{block: path}` of per-block embeddings files, in block order; the block is the file's provenance `block`
    (written by `phenom embed`), else the `_block<k>` of its name. Only the files' schemas are read."""
    files: dict[int, Path] = {}
    for path in map(Path, paths):
        if not path.is_file():
            raise FileNotFoundError(f"embeddings file not found: {path}")
        block = file_provenance(path).get("block", block_from_path(path)[1])
        if block is None:
            if len(paths) > 1:
                raise ValueError(f"{path}: with several embeddings files each must be named <name>_block<k>.parquet")
            block = 1
            logger.info(f"note: {path} names no block; it is reported as block 1")
        if int(block) in files:
            raise ValueError(f"two embeddings files for block {block}: {files[int(block)]} and {path}")
        files[int(block)] = path
    return dict(sorted(files.items()))


def read_well_ids(path: str | os.PathLike) -> np.ndarray:
    """The `well_id` column of an embeddings file (the features are not read)."""
    return np.asarray(pq.read_table(path, columns=[WELL_ID_COLUMN]).column(WELL_ID_COLUMN).to_pylist(), dtype=object)


def read_probe_metadata(path: str | os.PathLike) -> tuple[pd.DataFrame, str]:
    """The metadata CSV and the column that names an embedding row: `site_id` when present (RxRx1), else
    `well_id`. The id column must be unique."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"metadata file not found: {path}")
    metadata = pd.read_csv(path, low_memory=False, dtype={WELL_ID_COLUMN: str, SITE_ID_COLUMN: str})
    id_column = SITE_ID_COLUMN if SITE_ID_COLUMN in metadata.columns else WELL_ID_COLUMN
    if id_column not in metadata.columns:
        raise ValueError(f"{path}: no '{WELL_ID_COLUMN}' column (columns: {list(metadata.columns)})")
    repeated = metadata[id_column].duplicated(keep=False)
    if repeated.any():
        raise ValueError(f"{path}: {id_column} values occur in several rows, e.g. "
                         f"{list(metadata.loc[repeated, id_column].unique()[:5])}")
    return metadata, id_column


def read_labels(path: str | os.PathLike) -> pd.Series:
    """A labels CSV (`well_id,label`) -> `Series(label, index=well_id)` as text."""
    labels = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = {WELL_ID_COLUMN, "label"} - set(labels.columns)
    if missing:
        raise ValueError(f"{path}: a labels CSV has columns well_id,label; missing {sorted(missing)}")
    repeated = labels[WELL_ID_COLUMN].duplicated(keep=False)
    if repeated.any():
        raise ValueError(f"{path}: well_id values occur in several rows, e.g. "
                         f"{list(labels.loc[repeated, WELL_ID_COLUMN].unique()[:5])}")
    return labels.set_index(WELL_ID_COLUMN)["label"]


def _one_per_well(values: pd.Series, codes: np.ndarray, what: str, well_ids: np.ndarray) -> np.ndarray:
    frame = pd.DataFrame({"code": codes, "value": values.to_numpy()})
    distinct = frame.groupby("code")["value"].nunique(dropna=False)
    if (distinct > 1).any():
        bad = well_ids[distinct.index[distinct > 1].to_numpy()[:5]]
        raise ValueError(f"the rows of a well disagree on its {what}, e.g. wells {list(bad)}")
    return frame.groupby("code")["value"].first().to_numpy()


@dataclass
class ProbeTable:
    """The labelled wells of a probe, and how the rows of an embeddings file become their well means.

    Args:
        well_ids: `[num_labelled]` well ids (the metadata's `well_id`) of the labelled wells.
        labels: `[num_labelled]` class of each labelled well, as text.
        experiments: `[num_labelled]` experiment of each labelled well, as text.
        row_ids: `[num_rows]` the embedding rows' ids (`well_id`, or RxRx1's `site_id`) in the order of `averaging`.
        averaging: sparse `[num_wells, num_rows]`, row w = 1/n on the n rows of well w (all wells, labelled or not).
        labelled: `[num_wells]` bool, the wells with a label.
        well_experiments: `[num_wells]` experiment of every well (the batches of a correction).
        well_treatments: `[num_wells]` treatment of every well, or None when the metadata has none.
    """

    well_ids: np.ndarray
    labels: np.ndarray
    experiments: np.ndarray
    row_ids: np.ndarray
    averaging: object
    labelled: np.ndarray
    well_experiments: np.ndarray
    well_treatments: np.ndarray | None = None

    @property
    def unlabeled_wells(self) -> int:
        return int((~self.labelled).sum())

    def features(self, embeddings: WellEmbeddings, correction: str = "none",
                 control_key: str = RXRX3_CORE.control_keys[0],
                 min_controls: int = MIN_CONTROLS_PER_BATCH) -> np.ndarray:
        """`[num_labelled, hidden_size]` float64 well means of one block's embeddings, batch-corrected per experiment
        on its `control_key` wells when `correction` is not `none`."""
        order = pd.Index(embeddings.well_ids).get_indexer(self.row_ids)
        if (order < 0).any() or embeddings.num_wells != len(self.row_ids):
            raise ValueError(f"the embeddings files embed different wells ({embeddings.num_wells} rows vs "
                             f"{len(self.row_ids)}); probe the files of one run")
        means = np.asarray(self.averaging @ embeddings.features[order].astype(np.float64))
        if correction != "none":
            if self.well_treatments is None:
                raise ValueError(f"--correction {correction} fits on control wells (treatment '{control_key}') but "
                                 "the metadata has no 'treatment' column; use --correction none")
            means = correct(means, self.well_treatments == control_key, self.well_experiments, correction,
                            min_controls)
        return means[self.labelled]


def well_table(row_ids: np.ndarray, metadata: pd.DataFrame, id_column: str, experiment_column: str,
               task: str | None = None, labels: pd.Series | None = None) -> ProbeTable:
    """Match embedding rows (`row_ids`) with the metadata, group them into wells and attach labels: a metadata column
    `task`, or `labels` indexed by well id. Wells without a label are left out of the probe."""
    from scipy.sparse import csr_matrix

    if (task is None) == (labels is None):
        raise ValueError("give either a task column or a labels table")
    row_ids = np.asarray(row_ids, dtype=object)
    if id_column != WELL_ID_COLUMN and not pd.Index(metadata[id_column]).isin(row_ids).any() \
            and pd.Index(row_ids).isin(metadata[WELL_ID_COLUMN].astype(str)).all():
        # Rows are wells of several sites (`phenom embed` reads RxRx1 wells whole): one metadata row per well.
        metadata = metadata.drop_duplicates(WELL_ID_COLUMN)
        id_column = WELL_ID_COLUMN
    positions = pd.Index(metadata[id_column]).get_indexer(row_ids)
    if (positions < 0).any():
        missing = row_ids[positions < 0]
        raise ValueError(f"{len(missing)} of {len(row_ids)} embedded rows are not in the metadata ({id_column}), "
                         f"e.g. {list(missing[:5])}; embeddings and metadata must match")
    rows = metadata.iloc[positions].reset_index(drop=True)
    codes, well_ids = pd.factorize(rows[WELL_ID_COLUMN].astype(str), sort=True)
    well_ids = np.asarray(well_ids, dtype=object)
    counts = np.bincount(codes, minlength=len(well_ids))
    averaging = csr_matrix((1.0 / counts[codes], (codes, np.arange(len(codes)))), shape=(len(well_ids), len(codes)))
    experiments = _one_per_well(rows[experiment_column].astype(str), codes, experiment_column, well_ids)
    if task is not None:
        if task not in rows.columns:
            raise ValueError(f"task column '{task}' is not in the metadata (columns: {list(rows.columns)})")
        well_labels = _one_per_well(rows[task], codes, f"'{task}'", well_ids)
    else:
        well_labels = labels.reindex(well_ids).to_numpy(dtype=object)
    labelled = np.array([has_label(label) for label in well_labels], dtype=bool)
    treatments = (_one_per_well(rows["treatment"].astype(str), codes, "treatment", well_ids)
                  if "treatment" in rows.columns else None)
    return ProbeTable(well_ids=well_ids[labelled], labels=np.array([str(label) for label in well_labels[labelled]],
                                                                    dtype=object),
                      experiments=experiments[labelled], row_ids=row_ids, averaging=averaging, labelled=labelled,
                      well_experiments=experiments, well_treatments=treatments)


def block_features(table: ProbeTable, files: dict[int, Path], correction: str = "none",
                   control_key: str = "EMPTY_control"):
    """Yield `(block, [num_labelled, hidden_size] well means)` reading one file at a time (a G/8 has 48 blocks of
    1664 features: the blocks are never all in memory)."""
    for block, path in files.items():
        yield block, table.features(read_embeddings(path), correction, control_key)


# ----------------------------------------------------------------------------------------------- the probe
@dataclass
class ExperimentSplit:
    """Experiments used to train the probe and experiments held out to score it."""

    train: list[str]
    test: list[str]
    seed: int


def split_experiments(experiments, test_fraction: float = DEFAULT_TEST_FRACTION, seed: int = 0,
                      test_experiments: list[str] | None = None) -> ExperimentSplit:
    """A seeded experiment-level split (see the module docstring); at least one experiment on each side."""
    names = sorted(set(map(str, experiments)))
    if len(names) < 2:
        raise ValueError(f"the labelled wells come from {len(names)} experiment(s) ({', '.join(names) or 'none'}); "
                         "a held-out split needs at least 2 experiments (one to train on, one to test on)")
    if test_experiments:
        unknown = sorted(set(test_experiments) - set(names))
        if unknown:
            raise ValueError(f"--test-experiments {unknown} have no labelled wells; experiments: {names}")
        test = sorted(set(test_experiments))
        if len(test) == len(names):
            raise ValueError("--test-experiments names every experiment; leave at least one for training")
    else:
        if not 0 < test_fraction < 1:
            raise ValueError(f"--test-fraction must be in (0, 1), got {test_fraction}")
        shuffled = [names[index] for index in np.random.default_rng(seed).permutation(len(names))]
        num_test = min(len(names) - 1, max(1, round(test_fraction * len(names))))
        test = sorted(shuffled[:num_test])
    return ExperimentSplit(train=[name for name in names if name not in test], test=test, seed=seed)


def balanced_accuracy_of_probe(train_features: np.ndarray, train_labels: np.ndarray, test_features: np.ndarray,
                               test_labels: np.ndarray, seed: int = 0, max_iter: int = MAX_ITER) -> tuple[float, bool]:
    """Fit `StandardScaler` + class-balanced `LogisticRegression` on the training wells; return the balanced accuracy
    on the test wells and whether lbfgs converged."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(train_features)
    classifier = LogisticRegression(class_weight="balanced", max_iter=max_iter, random_state=seed)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        classifier.fit(scaler.transform(train_features), train_labels)
    converged = not any(issubclass(warning.category, ConvergenceWarning) for warning in caught)
    predictions = classifier.predict(scaler.transform(test_features))
    with warnings.catch_warnings():
        # Predicting a training class that no test well has is a plain error of the probe, not a problem.
        warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
        return float(balanced_accuracy_score(test_labels, predictions)), converged


@dataclass
class ProbeResult:
    """Balanced accuracy per block on the held-out experiments.

    Args:
        balanced_accuracy: `{block: balanced accuracy}`.
        best_block: the block with the highest balanced accuracy (the shallowest on a tie).
        chance: `1 / num_classes`, the balanced accuracy of uniform guessing.
        split: the experiments on each side.
        counts: sizes behind the numbers (wells, classes, experiments, ...).
        not_converged: blocks where lbfgs stopped at `max_iter`.
    """

    balanced_accuracy: dict[int, float]
    best_block: int
    chance: float
    split: ExperimentSplit
    counts: dict
    not_converged: list[int]


def run_probe(table: ProbeTable, split: ExperimentSplit, features, seed: int = 0, max_iter: int = MAX_ITER,
              show_progress: bool = True) -> ProbeResult:
    """Train and score the probe of every block on `split`: `features` yields (or is a dict of) `(block,
    [num_labelled, hidden_size])` aligned with `table`'s labelled wells. The labels and the split are checked before
    any block is read."""
    from tqdm.auto import tqdm

    classes = np.unique(table.labels)
    if len(classes) == 0:
        raise ValueError("no well has a label: the task column is empty for every embedded well")
    if len(classes) == 1:
        raise ValueError(f"the task has one class ({classes[0]!r}) among {len(table.labels)} labelled wells; "
                         "a probe needs at least two classes")
    train = np.isin(table.experiments, split.train)
    test = np.isin(table.experiments, split.test)
    train_classes = np.unique(table.labels[train])
    if len(train_classes) < 2:
        raise ValueError(f"the training experiments {split.train} hold {len(train_classes)} class(es); "
                         "the probe needs at least two: choose other --test-experiments or another task")
    seen = test & np.isin(table.labels, train_classes)
    if not seen.any():
        raise ValueError(f"no well of the held-out experiments {split.test} has a class seen in training: pick a "
                         "task whose classes recur across experiments (RxRx1's siRNA, a gene screened in several "
                         "experiments), or other --test-experiments")
    scores, not_converged = {}, []
    items = features.items() if isinstance(features, dict) else features
    for block, values in tqdm(items, desc="probing blocks", unit="block", disable=not show_progress):
        scores[block], converged = balanced_accuracy_of_probe(values[train], table.labels[train], values[seen],
                                                              table.labels[seen], seed=seed, max_iter=max_iter)
        if not converged:
            not_converged.append(block)
    if not scores:
        raise ValueError("no block to probe")
    best_block = max(scores, key=lambda block: (scores[block], -block))
    counts = {
        "train_experiments": len(split.train),
        "test_experiments": len(split.test),
        "classes": int(len(train_classes)),
        "test_classes": int(len(np.unique(table.labels[seen]))),
        "train_wells": int(train.sum()),
        "test_wells": int(seen.sum()),
        "test_wells_unseen_class": int((test & ~seen).sum()),
        "unlabeled_wells": table.unlabeled_wells,
        "blocks": len(scores),
        "recommended_trim_encoder_blocks": int(best_block),
    }
    return ProbeResult(balanced_accuracy=scores, best_block=int(best_block), chance=1.0 / len(train_classes),
                       split=split, counts=counts, not_converged=not_converged)


# ----------------------------------------------------------------------------------------------- outputs
def probe_metric_name(block: int) -> str:
    return f"probe_balanced_accuracy_block{block}"


def probe_results(result: ProbeResult, model: str, dataset: str, task: str, correction: str = "none") -> EvalResults:
    """The results JSON content (DESIGN §6): one file across blocks, so `block` is null."""
    metrics = {probe_metric_name(block): value for block, value in result.balanced_accuracy.items()}
    metrics["probe_best_block"] = result.best_block
    return EvalResults(
        model=model, dataset=dataset, block=None, correction=correction, metrics=metrics,
        baselines={probe_metric_name(block): result.chance for block in result.balanced_accuracy},
        counts={**result.counts, "task": task}, seeds=[result.split.seed],
    )


def write_probe_outputs(result: ProbeResult, results: EvalResults, out_dir: str | os.PathLike,
                        plots: bool = True) -> Path:
    """`results.json`, `split.json` and the block curve PNG in `out_dir`; returns the results path."""
    out_dir = Path(out_dir)
    path = write_results(out_dir / "results.json", results)
    split = {"train_experiments": result.split.train, "test_experiments": result.split.test,
             "seed": result.split.seed}
    atomic_write_json(out_dir / "split.json", split)
    if plots:
        plot_probe_curve(result.balanced_accuracy, result.chance, result.best_block,
                         out_dir / "probe_balanced_accuracy.png",
                         title=f"Linear probe ({results.counts['task']}): {results.model}")
    return path


# ----------------------------------------------------------------------------------------------- model path
def default_metadata(data: str, metadata: str | None, revision: str | None = None) -> str:
    """`--metadata`, else the dataset's own metadata CSV: a local folder's `metadata_rxrx3_core.csv` or RxRx1
    `metadata.csv`, or the Hub dataset's `metadata_rxrx3_core.csv`."""
    if metadata:
        return metadata
    local = Path(data)
    if local.is_file():  # a LoadData or plate CSV: the labels live in the user's own metadata
        raise FileNotFoundError(f"{data} is a file; pass --metadata (a CSV with well_id and the --task column)")
    if local.is_dir():
        for name in ("metadata_rxrx3_core.csv", "metadata.csv"):
            if (local / name).is_file():
                return str(local / name)
        raise FileNotFoundError(f"{data} has no metadata_rxrx3_core.csv or metadata.csv; pass --metadata")
    from huggingface_hub import hf_hub_download

    return hf_hub_download(data, "metadata_rxrx3_core.csv", repo_type="dataset", revision=revision)


def embed_every_block(model: str, data: str, out_dir: Path, metadata: str | None, device: str, batch_size: int,
                      revision: str | None = None, show_progress: bool = True) -> list[Path]:
    """`phenom embed --blocks all` into `out_dir/embeddings/`; files of an earlier run of the same model and data
    are reused (an interrupted embedding resumes from its parts). Returns the per-block files."""
    from .embed import embed

    folder = out_dir / EMBEDDINGS_SUBDIR
    out = folder / f"{EMBEDDINGS_NAME}.parquet"

    def written() -> list[Path]:
        blocks = sorted(folder.glob(f"{EMBEDDINGS_NAME}_block*.parquet"))
        return blocks or ([out] if out.is_file() else [])

    existing = written()
    if existing and not out.with_name(f"{out.name}.parts").is_dir():
        provenance = file_provenance(existing[0])
        if provenance.get("model") != model or provenance.get("dataset") != data:
            raise ValueError(f"{folder} holds embeddings of {provenance.get('model')} on {provenance.get('dataset')}, "
                             f"not of {model} on {data}: use another --out or delete that folder")
        logger.info(f"reusing the embeddings in {folder}")
        return existing
    from phenom_data import detect_source

    # A LoadData CSV's labels are not the reader's: its metadata goes to the reader only where the source takes one.
    reader_metadata = metadata if metadata and "metadata" in detect_source(data).options else None
    embed(model, data, out, blocks="all", device=device, batch_size=batch_size, metadata=reader_metadata,
          revision=revision, show_progress=show_progress)
    return written()


@dataclass(frozen=True)
class ProbeRun:
    """What `probe` did.

    Args:
        result: balanced accuracy per block, the best block, chance, the split and the counts.
        results: the results JSON content (`probe_results`).
        results_path: the `results.json` written.
        files: `{block: embeddings file}` that were probed.
    """

    result: ProbeResult
    results: EvalResults
    results_path: Path
    files: dict[int, Path]


def probe(out: str | os.PathLike, *, model: str | None = None, data: str | None = None,
          embeddings: list[str | os.PathLike] | None = None, metadata: str | os.PathLike | None = None,
          task: str | None = None, labels: str | os.PathLike | None = None, experiment_column: str | None = None,
          test_fraction: float = DEFAULT_TEST_FRACTION, test_experiments: list[str] | None = None, seed: int = 0,
          correction: str = "none", control_key: str = RXRX3_CORE.control_keys[0], max_iter: int = MAX_ITER,
          device: str = "auto", batch_size: int = 8, revision: str | None = None, model_name: str | None = None,
          dataset_name: str | None = None, plots: bool = True, show_progress: bool = True) -> ProbeRun | None:
    """The block-wise linear probe (module docstring) of `embeddings` files, or of every block of `model` embedded
    on `data` (into `out/embeddings/`); writes `out/results.json`, `split.json` and the plot.

    Under `accelerate launch` with `model`, every process embeds its share and calls this; the main process probes
    and returns the run, the others return None. Inconsistent arguments raise `ValueError` before any work.
    """
    if embeddings and (model or data):
        raise ValueError("give either --embeddings or --model with --data, not both")
    if not embeddings and not (model and data):
        raise ValueError("give --model and --data (to embed every block), or --embeddings FILE...")
    if embeddings and not metadata:
        raise ValueError("--embeddings needs --metadata")
    if (task is None) == (labels is None):
        raise ValueError("give either --task (a metadata column) or --labels (a CSV of well_id,label)")
    if correction not in CORRECTIONS:
        raise ValueError(f"--correction must be one of {', '.join(CORRECTIONS)}, got {correction!r}")
    out, model, data = Path(out), model and str(model), data and str(data)
    if embeddings:
        paths = [Path(path) for path in embeddings]
        metadata_path = str(metadata)
    else:
        metadata_path = default_metadata(data, metadata and str(metadata), revision)
        paths = embed_every_block(model, data, out, metadata and str(metadata), device, batch_size, revision,
                                  show_progress=show_progress)
        from accelerate import PartialState

        if not PartialState().is_main_process:
            return None  # under `accelerate launch` every process embeds its wells; the main one probes
    files = block_files(paths)
    metadata_table, id_column = read_probe_metadata(metadata_path)
    experiment_column = experiment_column_of(metadata_table, experiment_column)
    label_table = read_labels(labels) if labels else None
    table = well_table(read_well_ids(next(iter(files.values()))), metadata_table, id_column, experiment_column,
                       task=task, labels=label_table)
    split = split_experiments(table.experiments, test_fraction, seed, test_experiments)
    result = run_probe(table, split, block_features(table, files, correction, control_key), seed=seed,
                       max_iter=max_iter, show_progress=show_progress)
    provenance = file_provenance(next(iter(files.values())))
    results = probe_results(
        result,
        model=model_name or model or provenance.get("model") or block_from_path(paths[0])[0],
        dataset=dataset_name or data or provenance.get("dataset") or Path(metadata_path).stem,
        task=task or f"labels:{Path(labels).name}", correction=correction,
    )
    path = write_probe_outputs(result, results, out, plots=plots)
    return ProbeRun(result=result, results=results, results_path=path, files=files)


def format_curve(result: ProbeResult) -> str:
    lines = [f"{'block':>5}  balanced accuracy   (chance {result.chance:.4f})"]
    for block, value in result.balanced_accuracy.items():
        mark = "  <- best" if block == result.best_block else ""
        lines.append(f"{block:>5}  {value:.4f}{mark}")
    return "\n".join(lines)


__all__ = [
    "SITE_ID_COLUMN",
    "DEFAULT_TEST_FRACTION",
    "block_files",
    "read_well_ids",
    "file_provenance",
    "read_probe_metadata",
    "read_labels",
    "ProbeTable",
    "well_table",
    "block_features",
    "ExperimentSplit",
    "split_experiments",
    "balanced_accuracy_of_probe",
    "ProbeResult",
    "run_probe",
    "probe_metric_name",
    "probe_results",
    "write_probe_outputs",
    "default_metadata",
    "embed_every_block",
    "format_curve",
    "ProbeRun",
    "probe",
]

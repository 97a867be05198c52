"""`phenom verify-openphenom`: embed RxRx3-core wells with the released OpenPhenom and compare with Recursion's file.

Needs network access to the Hugging Face Hub (or every file below already in the local Hub cache). It

1. checks, before any heavy work, that the Hub answers (or, offline, that the cache holds every file);
2. downloads the released model (`recursionpharma/OpenPhenom`, loaded with `transformers.AutoModel` after
   `import modeling_phenom`), one image shard `data/train-000NN-of-00035.parquet`, `metadata_rxrx3_core.csv` and
   the official `OpenPhenom_rxrx3_core_embeddings.parquet` of the dataset repo `recursionpharma/rxrx3-core`;
3. embeds the first `--wells` complete wells of the shard with the documented recipe (openphenom.md §5): six
   8-bit 512 px channels -> four 256 px tiles -> `pooler_output` (mean of patch tokens, no LayerNorm) -> mean of
   the four tiles; fp32 (the released notebook ran fp16 autocast on GPU, so expect cosines of about 0.9999, not 1);
4. reports the per-well cosine between these and the published embeddings of the same `well_id`s, and a check of
   whether the published file is already batch-corrected (its control wells centered and scaled per experiment);
5. reports the same cosine after alignment: PCA-CenterScale is an affine map per experiment, fitted on all 222,601
   wells, which one shard cannot refit; instead, per experiment, a least-squares affine map from our embeddings to
   the published ones is fitted on one half of the wells and scored on the other (2-fold). If the published file
   is PCA-CenterScale(OpenPhenom), these held-out cosines are about 1 while the raw ones are not.

It writes `report.json` (atomically) in `--out` and exits 1 if neither the raw nor the aligned median cosine
reaches `--min-cosine`.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from phenom_data.atomic import atomic_path, atomic_write_json

from .perturbations import RXRX3_CORE

logger = logging.getLogger(__name__)

MODEL_REPO = "recursionpharma/OpenPhenom"
DATASET_REPO = "recursionpharma/rxrx3-core"
NUM_SHARDS = 35
METADATA_FILE = "metadata_rxrx3_core.csv"
PUBLISHED_FILE = "OpenPhenom_rxrx3_core_embeddings.parquet"
MODEL_FILES = ("config.json", "model.safetensors")


class VerificationUnavailable(OSError):
    """The Hub (or the local cache) cannot provide what the verification needs (a user error: exit code 2)."""


def shard_file(index: int) -> str:
    if not 0 <= index < NUM_SHARDS:
        raise ValueError(f"the shard index must be in 0..{NUM_SHARDS - 1}, got {index}")
    return f"data/train-{index:05d}-of-{NUM_SHARDS:05d}.parquet"


# --- 1. preflight and downloads --------------------------------------------------------------------------------


@dataclass(frozen=True)
class RemoteFile:
    repo_id: str
    filename: str
    repo_type: str  # "model" or "dataset"


def required_files(model: str, shard: int) -> list[RemoteFile]:
    files = [RemoteFile(DATASET_REPO, name, "dataset") for name in (shard_file(shard), METADATA_FILE, PUBLISHED_FILE)]
    if not Path(model).is_dir():
        files = [RemoteFile(model, name, "model") for name in MODEL_FILES] + files
    return files


def preflight(files: list[RemoteFile], cache_dir: str | None) -> None:
    """Fail fast, before any download or model load, if a file cannot be had."""
    from huggingface_hub import constants, get_hf_file_metadata, hf_hub_url, try_to_load_from_cache

    if constants.HF_HUB_OFFLINE:
        missing = [
            f"{file.repo_type} {file.repo_id}: {file.filename}"
            for file in files
            if not isinstance(
                try_to_load_from_cache(file.repo_id, file.filename, cache_dir=cache_dir, repo_type=file.repo_type),
                str,
            )
        ]
        if missing:
            raise VerificationUnavailable(
                "needs network access to the Hugging Face Hub: HF_HUB_OFFLINE is set and the local "
                "cache lacks " + "; ".join(missing) + ". Run it on a machine with network access (unset "
                "HF_HUB_OFFLINE), or fill the cache there first."
            )
        return
    for file in files:
        try:
            get_hf_file_metadata(hf_hub_url(file.repo_id, file.filename, repo_type=file.repo_type))
        except Exception as error:  # connection refused, DNS, proxy, 401/404: all mean "cannot verify here"
            raise VerificationUnavailable(
                f"needs the Hugging Face Hub, which did not serve {file.repo_type} "
                f"{file.repo_id}: {file.filename} ({type(error).__name__}: {error}). Check the network (or log in "
                "with `hf auth login` if the repository asks for it)."
            ) from error


def download(file: RemoteFile, cache_dir: str | None) -> Path:
    from huggingface_hub import hf_hub_download

    return Path(hf_hub_download(file.repo_id, file.filename, repo_type=file.repo_type, cache_dir=cache_dir))


# --- 2. wells of a shard -----------------------------------------------------------------------------------------


@dataclass
class ShardWells:
    """The complete wells read from a shard.

    Attributes:
        well_ids: `{experiment}_{plate}_{address}` per well (the metadata's `well_id`).
        images: uint8 [wells, 6, H, W], channels 1..6.
        stats: the reader's counts (`phenom_data.WellStats.to_dict()`: yielded, skipped by reason, bad rows).
    """

    well_ids: list[str]
    images: np.ndarray
    stats: dict


def read_shard_wells(directory: str | Path, data_file: str, max_wells: int) -> ShardWells:
    """The first `max_wells` complete wells of one shard (`data_file`, relative to an RxRx3-core `directory`)."""
    from itertools import islice

    from modeling_phenom import PhenomImageProcessor
    from phenom_data import open_wells

    # OpenPhenom's views (256 px, the released 16-bit rule): the processor its embeddings are compared under.
    source = open_wells(directory, processor=PhenomImageProcessor(), metadata=False, data_files=data_file)
    wells = list(islice(iter(source), max_wells))
    if not wells:
        raise ValueError(f"{Path(directory) / data_file} holds no complete well ({source.stats.to_dict()})")
    images = np.stack([well.image for well in wells])
    return ShardWells([well.well_id for well in wells], images, source.stats.to_dict())


# --- 3. embeddings -------------------------------------------------------------------------------------------------


def embed_wells(model, images: np.ndarray, batch_size: int = 16, device: str = "cpu") -> np.ndarray:
    """float32 [wells, hidden]: the mean over each well's tiles of `pooler_output` (openphenom.md §5)."""
    import torch
    from tqdm.auto import tqdm

    from modeling_phenom import PhenomImageProcessor

    processor = PhenomImageProcessor()
    model = model.to(device).eval()
    out = []
    for start in tqdm(range(0, len(images), batch_size), desc="embedding wells", unit="batch"):
        inputs = processor(images[start : start + batch_size], return_well_index=True)
        with torch.inference_mode():
            pooled = model(pixel_values=inputs["pixel_values"].to(device)).pooler_output.float().cpu()
        wells = inputs["well_index"]
        sums = torch.zeros(int(wells.max()) + 1, pooled.shape[1]).index_add_(0, wells, pooled)
        out.append((sums / torch.bincount(wells)[:, None]).numpy())
    return np.concatenate(out).astype(np.float32)


# --- 4-5. comparison -----------------------------------------------------------------------------------------------


def read_published(path: str | Path, well_ids: list[str]) -> pd.DataFrame:
    """The published rows of `well_ids` (one mean row per well_id, as the benchmark notebook does), indexed by id."""
    import pyarrow.parquet as pq

    table = pq.read_table(path, filters=[("well_id", "in", list(well_ids))]).to_pandas()
    if "well_id" not in table:
        raise ValueError(f"{path} lacks a well_id column")
    features = [column for column in table.columns if column.startswith("feature_")]
    return table.groupby("well_id")[features].mean()


def _row_cosines(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(first, axis=1) * np.linalg.norm(second, axis=1)
    return np.einsum("ij,ij->i", first, second) / np.where(norms > 0, norms, 1.0)


def _summary(cosines: np.ndarray) -> dict[str, float]:
    return {
        "wells": len(cosines),
        "mean": float(np.mean(cosines)),
        "median": float(np.median(cosines)),
        "min": float(np.min(cosines)),
        "percentile_1": float(np.percentile(cosines, 1)),
        "fraction_at_least_0.99": float(np.mean(cosines >= 0.99)),
        "fraction_at_least_0.999": float(np.mean(cosines >= 0.999)),
    }


def _held_out_affine_cosines(ours: np.ndarray, published: np.ndarray, seed: int) -> np.ndarray:
    """2-fold: a least-squares affine map ours -> published fitted on one half, per-well cosines on the other."""
    order = np.random.default_rng(seed).permutation(len(ours))
    halves = (order[: len(order) // 2], order[len(order) // 2 :])
    cosines = np.empty(len(ours))
    for fit, held_out in (halves, halves[::-1]):
        design = np.hstack([ours[fit], np.ones((len(fit), 1))])
        weights, *_ = np.linalg.lstsq(design, published[fit], rcond=None)
        predicted = np.hstack([ours[held_out], np.ones((len(held_out), 1))]) @ weights
        cosines[held_out] = _row_cosines(predicted, published[held_out])
    return cosines


def compare_embeddings(
    ours: pd.DataFrame, published: pd.DataFrame, metadata: pd.DataFrame | None = None, seed: int = 0
) -> dict[str, object]:
    """Per-well agreement of two embedding tables indexed by `well_id` (same feature count).

    Args:
        ours, published: [wells, D] DataFrames indexed by well_id.
        metadata: RxRx3-core metadata (`well_id`, `experiment_name`, `treatment`); enables the per-experiment
            alignment and the centered-and-scaled check. Without it all wells form one experiment.

    Returns:
        a JSON-serializable report: `raw` (cosine summary), `aligned` (held-out affine cosine summary, or the reason
        it was not computed), `published_controls` (mean |feature mean| and mean feature std of control wells per
        experiment, ~0 and ~1 if the published file is centered and scaled on controls),
        `wells_missing_from_published`.
    """
    if ours.shape[1] != published.shape[1]:
        raise ValueError(f"our embeddings have {ours.shape[1]} features, the published ones {published.shape[1]}")
    shared = [well for well in ours.index if well in published.index]
    if not shared:
        raise ValueError("none of our wells is in the published file: wrong file or well_id format")
    mine, theirs = ours.loc[shared].to_numpy(np.float64), published.loc[shared].to_numpy(np.float64)
    report: dict[str, object] = {
        "wells_compared": len(shared),
        "wells_missing_from_published": len(ours) - len(shared),
        "raw": _summary(_row_cosines(mine, theirs)),
    }
    experiments = pd.Series("all", index=shared)
    if metadata is not None:
        known = metadata.drop_duplicates("well_id").set_index("well_id")
        experiments = known["experiment_name"].reindex(shared).fillna("unknown")
        controls = known[RXRX3_CORE.perturbation_col].reindex(shared).isin(RXRX3_CORE.control_keys).to_numpy()
        control_stats = []
        for experiment in experiments.unique():
            rows = (experiments == experiment).to_numpy() & controls
            if rows.sum() >= 2:
                control_stats.append((np.abs(theirs[rows].mean(axis=0)).mean(), theirs[rows].std(axis=0).mean()))
        report["published_controls"] = {
            "experiments": len(control_stats),
            "mean_abs_feature_mean": float(np.mean([stat[0] for stat in control_stats])) if control_stats else None,
            "mean_feature_std": float(np.mean([stat[1] for stat in control_stats])) if control_stats else None,
        }
    needed = 2 * (mine.shape[1] + 1)
    aligned, too_small = np.full(len(shared), np.nan), []
    for experiment in experiments.unique():
        rows = (experiments == experiment).to_numpy()
        if rows.sum() < needed:
            too_small.append(str(experiment))
            continue
        aligned[rows] = _held_out_affine_cosines(mine[rows], theirs[rows], seed)
    fitted = ~np.isnan(aligned)
    report["aligned"] = _summary(aligned[fitted]) if fitted.any() else {
        "wells": 0,
        "reason": f"an affine fit needs at least {needed} wells per experiment (2 x (features + 1)); "
        "raise --wells",
    }
    report["aligned_experiments_too_small"] = too_small
    return report


# --- the whole verification ----------------------------------------------------------------------------------------


DEFAULT_WELLS = 1024
DEFAULT_OUT = Path("outputs/verify_openphenom")


@dataclass(frozen=True)
class Verification:
    """What `verify_openphenom` found and wrote.

    Args:
        report: the content of `report.json` (model, shard, device, reader counts, `compare_embeddings`' report).
        report_path: `report.json`.
        embeddings_path: our embeddings (`ours.parquet`, official layout).
    """

    report: dict
    report_path: Path
    embeddings_path: Path

    @property
    def best_median_cosine(self) -> float:
        """The larger of the raw and the aligned median cosine (the aligned one when it was computed)."""
        return max(self.report["raw"]["median"], self.report["aligned"].get("median", -1.0))


def verify_openphenom(*, model: str = MODEL_REPO, wells: int = DEFAULT_WELLS, shard: int = 0, batch_size: int = 16,
                      device: str = "auto", cache_dir: str | None = None,
                      out: str | os.PathLike = DEFAULT_OUT) -> Verification:
    """Steps 1-5 of the module docstring; writes `out/report.json` and `out/ours.parquet`.

    Raises `VerificationUnavailable` (an `OSError`) before any download or model load when the Hub or the local
    cache cannot provide a file, and `ValueError` for bad options.
    """
    if wells < 1:
        raise ValueError(f"--wells must be at least 1, got {wells}")
    files = required_files(model, shard)
    preflight(files, cache_dir)

    import torch
    from transformers import AutoModel

    import modeling_phenom  # noqa: F401  (registers Phenom and the legacy OpenPhenom config with the Auto classes)

    shard_path, metadata_path, published_path = (
        download(file, cache_dir) for file in files if file.repo_type == "dataset"
    )
    device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
    loaded = AutoModel.from_pretrained(model, cache_dir=cache_dir)
    snapshot = shard_path.parents[1]  # <snapshot>/data/train-000NN-of-00035.parquet: the shard in the Hub layout
    shard_wells = read_shard_wells(snapshot, shard_file(shard), wells)
    logger.info(f"read {len(shard_wells.well_ids)} wells from {shard_file(shard)} ({shard_wells.stats})")
    embeddings = embed_wells(loaded, shard_wells.images, batch_size=batch_size, device=device)
    columns = [f"feature_{index}" for index in range(embeddings.shape[1])]
    ours = pd.DataFrame(embeddings, index=pd.Index(shard_wells.well_ids, name="well_id"), columns=columns)
    published = read_published(published_path, shard_wells.well_ids)
    metadata = pd.read_csv(metadata_path, usecols=["well_id", "experiment_name", "treatment"])
    report = {
        "model": model,
        "dataset": DATASET_REPO,
        "shard": shard_file(shard),
        "device": device,
        "recipe": "4 x 256 px tiles per 512 px well, pooler_output (mean of patch tokens), mean over tiles; fp32",
        "reader": shard_wells.stats,
        **compare_embeddings(ours, published, metadata),
    }
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "ours.parquet") as temporary:
        ours.reset_index().to_parquet(temporary, index=False)
    atomic_write_json(out / "report.json", report)
    return Verification(report=report, report_path=out / "report.json", embeddings_path=out / "ours.parquet")


__all__ = [
    "DATASET_REPO",
    "MODEL_REPO",
    "VerificationUnavailable",
    "compare_embeddings",
    "embed_wells",
    "Verification",
    "verify_openphenom",
    "preflight",
    "read_published",
    "ShardWells",
    "read_shard_wells",
    "required_files",
    "shard_file",
]

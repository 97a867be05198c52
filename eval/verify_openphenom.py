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

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from phenom_data.atomic import atomic_path, atomic_write_json
from phenom_data.errors import command, report_error

from .perturbations import RXRX3_CORE

MODEL_REPO = "recursionpharma/OpenPhenom"
DATASET_REPO = "recursionpharma/rxrx3-core"
NUM_SHARDS = 35
METADATA_FILE = "metadata_rxrx3_core.csv"
PUBLISHED_FILE = "OpenPhenom_rxrx3_core_embeddings.parquet"
MODEL_FILES = ("config.json", "model.safetensors")


class VerificationUnavailable(RuntimeError):
    """The Hub (or the local cache) cannot provide what the verification needs."""


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


# --- command line --------------------------------------------------------------------------------------------------



def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Embed RxRx3-core wells with the released OpenPhenom and compare them with the published "
        "OpenPhenom_rxrx3_core_embeddings.parquet (needs network access to the Hugging Face Hub).",
    )
    parser.add_argument("--wells", type=int, default=1024,
                        help="complete wells of the shard to embed (default 1024; the aligned comparison needs about "
                        "2 x 385 per experiment)")
    parser.add_argument("--shard", type=int, default=0, help=f"image shard index 0..{NUM_SHARDS - 1} (default 0)")
    parser.add_argument("--model", default=MODEL_REPO, help=f"model repo id or local directory (default {MODEL_REPO})")
    parser.add_argument("--batch-size", type=int, default=16, help="wells per forward pass (default 16)")
    parser.add_argument("--device", default="auto", help="torch device; auto = cuda if available, else cpu")
    parser.add_argument("--cache-dir", default=None, help="Hugging Face cache directory (default: the hub's)")
    parser.add_argument("--out", type=Path, default=Path("outputs/verify_openphenom"),
                        help="directory for report.json and our embeddings parquet")
    parser.add_argument("--min-cosine", type=float, default=0.99,
                        help="exit 1 unless the raw or the aligned median cosine reaches this (default 0.99)")
    return parser


@command
def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    args = build_parser(prog).parse_args(argv)
    if args.wells < 1:
        raise ValueError(f"--wells must be at least 1, got {args.wells}")
    try:
        files = required_files(args.model, args.shard)
        preflight(files, args.cache_dir)
    except (VerificationUnavailable, ValueError) as error:
        return report_error(prog or "phenom verify-openphenom", error)

    import torch
    from transformers import AutoModel

    import modeling_phenom  # noqa: F401  (registers Phenom and the legacy OpenPhenom config with the Auto classes)

    shard_path, metadata_path, published_path = (
        download(file, args.cache_dir) for file in files if file.repo_type == "dataset"
    )
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    model = AutoModel.from_pretrained(args.model, cache_dir=args.cache_dir)
    snapshot = shard_path.parents[1]  # <snapshot>/data/train-000NN-of-00035.parquet: the shard in the Hub layout
    wells = read_shard_wells(snapshot, shard_file(args.shard), args.wells)
    print(f"read {len(wells.well_ids)} wells from {shard_file(args.shard)} ({wells.stats})")
    embeddings = embed_wells(model, wells.images, batch_size=args.batch_size, device=device)
    columns = [f"feature_{index}" for index in range(embeddings.shape[1])]
    ours = pd.DataFrame(embeddings, index=pd.Index(wells.well_ids, name="well_id"), columns=columns)
    published = read_published(published_path, wells.well_ids)
    metadata = pd.read_csv(metadata_path, usecols=["well_id", "experiment_name", "treatment"])
    report = {
        "model": args.model,
        "dataset": DATASET_REPO,
        "shard": shard_file(args.shard),
        "device": device,
        "recipe": "4 x 256 px tiles per 512 px well, pooler_output (mean of patch tokens), mean over tiles; fp32",
        "reader": wells.stats,
        **compare_embeddings(ours, published, metadata),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    with atomic_path(args.out / "ours.parquet") as temporary:
        ours.reset_index().to_parquet(temporary, index=False)
    atomic_write_json(args.out / "report.json", report)
    raw, aligned = report["raw"], report["aligned"]
    print(f"wells compared: {report['wells_compared']} (missing from the published file: "
          f"{report['wells_missing_from_published']})")
    print(f"raw cosine: median {raw['median']:.6f}, mean {raw['mean']:.6f}, min {raw['min']:.6f}")
    if aligned.get("wells"):
        print(f"aligned (held-out affine per experiment): median {aligned['median']:.6f}, min {aligned['min']:.6f}")
    else:
        print(f"aligned: not computed ({aligned['reason']})")
    if "published_controls" in report:
        print(f"published control wells: mean |feature mean| {report['published_controls']['mean_abs_feature_mean']}"
              f", mean feature std {report['published_controls']['mean_feature_std']}")
    print(f"wrote {args.out / 'report.json'}")
    best = max(raw["median"], aligned.get("median", -1.0))
    return 0 if best >= args.min_cosine else 1


__all__ = [
    "DATASET_REPO",
    "MODEL_REPO",
    "VerificationUnavailable",
    "compare_embeddings",
    "embed_wells",
    "main",
    "preflight",
    "read_published",
    "ShardWells",
    "read_shard_wells",
    "required_files",
    "shard_file",
]

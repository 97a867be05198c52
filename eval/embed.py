"""`phenom embed`: well embeddings of every requested block for every well of a dataset (paper.md §5 steps 1-2).

    phenom embed --model <hub id or dir> --data <source> --out embeddings.parquet
                 [--blocks last|all|k,...] [--channels DNA,ER,RNA,AGP,Mito] [--per-site] [--batch-size 8]
                 [--device auto|cpu|cuda] [--format parquet|anndata] [--dtype float32|bfloat16|float16|auto]

    accelerate launch -m phenom embed ...            # several processes, each its own wells, parts merged

Wells come from `phenom_data.open_wells`, whatever the source: RxRx3-core (the Hub dataset or a local folder in its
layout such as `phenom synth` output), an RxRx1 release folder, a CellProfiler LoadData CSV (JUMP-CP) or Phenom's
plate CSV. The model's own image processor (`PhenomImageProcessor.from_model`: its view size and 16-bit rule) is
given to the reader and to `phenom_data.WellDataset`, which makes the views of every site (4 tiles of a 512 px site,
16 crops of a 1080 px field). One forward pass per batch gives the pooled embedding (mean of patch tokens) of every
requested block (`PhenomModel.get_block_embeddings`); a well's embedding is the mean over every view of every site
(each view counts once), and `--per-site` writes one row per site instead (`well_id`, `site`, features; the mean of
a well's site rows is its well row when its sites have the same size). The output has the layout of the official
`OpenPhenom_rxrx3_core_embeddings.parquet`: `well_id`, `feature_0 ... feature_{D-1}` float32, one file per block
(`<name>_block<k>.parquet`) when several blocks are asked for, rows sorted by `well_id`. The provenance records the
model, the data, the channels in the order used, and the processor's settings (crop size, 16-bit rule).

Embeddings are written as they are computed (`eval/embedding_store.py`): an interrupted run started again with the
same options embeds only the wells it is missing (the reader drops finished wells before decoding any image), with
none lost or duplicated; parts are resumed only when the fingerprints of the model's files and of the data, and every
option that changes an embedding, are the same. One run per `--out` at a time: a second one is refused at once,
naming the first (`phenom_data.locks`). Under `accelerate launch` every process reads its own share of the wells
(`rank`, `world_size`) and the main process merges the parts at the end.
`--dtype` runs the forward pass under autocast (float32 weights; bf16 matmuls and attention, float32 residual stream
and pooling); `auto` is bf16 where the hardware has it natively, float32 elsewhere (`eval/precision.py`); the
choice is recorded in the provenance and pinned for resuming. docs/performance.md has its speed and fidelity.
`--format anndata` writes `.h5ad` files (features in `X`, the metadata CSV's columns in `obs`) and needs the optional
`anndata` package (`pip install "phenom-microscopy[anndata]"`).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from modeling_phenom.image_processing_phenom import UINT16_RULES
from phenom_data.atomic import atomic_path
from phenom_data.errors import command

from .embedding_store import EmbeddingStore, block_paths, parts_folder
from .precision import DTYPE_CHOICES, resolve_precision

FORMATS = ("parquet", "anndata")
DEFAULT_BATCH_SIZE = 8
DEFAULT_PART_WELLS = 512


def parse_blocks(text: str) -> str | list[int]:
    """`last`, `all` or a comma-separated list of block numbers (numbered from 1)."""
    if text in ("last", "all"):
        return text
    try:
        blocks = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"--blocks must be last, all or numbers like 4,8,12; got {text!r}") from None
    if not blocks:
        raise argparse.ArgumentTypeError("--blocks is empty")
    return blocks


def well_means(view_embeddings, well_index, num_wells: int) -> np.ndarray:
    """`[num_views, D]` view embeddings -> `[num_wells, D]` float32 mean over each well's views."""
    import torch

    view_embeddings = view_embeddings.float()
    sums = torch.zeros(num_wells, view_embeddings.shape[1], dtype=torch.float32, device=view_embeddings.device)
    sums.index_add_(0, well_index.to(view_embeddings.device), view_embeddings)
    counts = torch.bincount(well_index, minlength=num_wells).to(sums)
    return (sums / counts[:, None]).cpu().numpy()


def load_model(model_id: str, device, revision: str | None = None):
    """`AutoModel.from_pretrained` (Phenom registered with the Auto classes), in eval mode on `device`."""
    from transformers import AutoModel

    import modeling_phenom  # noqa: F401  (registers Phenom and OpenPhenom's legacy model type)
    from modeling_phenom.loading import check_model_source, load_pretrained

    check_model_source(model_id)
    # Refused when tensors are missing or unexpected, or a weight is NaN (never a silently re-initialized block).
    model = load_pretrained(AutoModel, model_id, revision=revision)
    if not hasattr(model, "get_block_embeddings"):
        raise ValueError(f"{model_id} loads as {type(model).__name__}, which has no get_block_embeddings; "
                         "phenom embed needs a Phenom (or OpenPhenom) model")
    return model.to(device).eval()


def load_processor(model_id: str, revision: str | None = None, uint16_rule: str | None = None):
    """The model's `PhenomImageProcessor` (`PhenomImageProcessor.from_model`: its saved processor, else one derived
    from its config's `image_size`), with its 16-bit rule replaced when `uint16_rule` is given."""
    from modeling_phenom import PhenomImageProcessor

    processor = PhenomImageProcessor.from_model(model_id, revision=revision)
    if uint16_rule is not None:
        processor = PhenomImageProcessor(**{**processor.to_dict(), "uint16_rule": uint16_rule})
    return processor


def row_index(batch: dict, per_site: bool):
    """The embedding row of each view of a `collate_views` batch: `(row_index int64 [num_views], well ids, site
    labels or None)`. Rows are the wells, or with `per_site` each (well, site) pair in order."""
    import torch

    if not per_site:
        return batch["well_index"], list(batch["well_id"]), None
    sites_per_well = torch.tensor([len(sites) for sites in batch["sites"]])
    first_row = torch.cumsum(sites_per_well, 0) - sites_per_well
    rows = first_row[batch["well_index"]] + batch["site_index"]
    well_ids = [well_id for well_id, sites in zip(batch["well_id"], batch["sites"], strict=True) for _ in sites]
    return rows, well_ids, [site for sites in batch["sites"] for site in sites]


def embed_into_store(model, loader, blocks: list[int], store: EmbeddingStore, rank: int, device, autocast_dtype,
                     part_wells: int = DEFAULT_PART_WELLS, show_progress: bool = True,
                     per_channel: bool = False, per_site: bool = False) -> int:
    """Embed every batch of `loader` (`collate_views` batches) and append the well means (or with `per_site` the
    site means) to `store` every `part_wells` wells; returns the number of wells.

    `per_channel`: each view's embedding is its channels' token means side by side (`[C * hidden_size]`) instead
    of the mean over all tokens (`[hidden_size]`)."""
    import torch
    from tqdm.auto import tqdm

    buffer_ids, buffer_sites, buffer = [], [], {block: [] for block in blocks}
    num_wells = 0

    def flush():
        if buffer_ids:
            store.write_part(rank, list(buffer_ids), {block: np.concatenate(buffer[block]) for block in blocks},
                             sites=list(buffer_sites) if per_site else None)
            buffer_ids.clear()
            buffer_sites.clear()
            for block in blocks:
                buffer[block].clear()

    progress = tqdm(unit="well", desc=f"embedding (rank {rank})", disable=not show_progress, dynamic_ncols=True)
    with torch.inference_mode():
        for batch in loader:
            pixel_values = batch["pixel_values"].to(device)
            with torch.autocast(device_type=torch.device(device).type, dtype=autocast_dtype,
                                enabled=autocast_dtype is not None):
                per_block = model.get_block_embeddings(pixel_values, blocks=blocks, per_channel=per_channel)
            rows, row_ids, row_sites = row_index(batch, per_site)
            for block in blocks:
                buffer[block].append(well_means(per_block[block], rows, len(row_ids)))
            buffer_ids.extend(row_ids)
            buffer_sites.extend(row_sites or [])
            num_wells += len(batch["well_id"])
            progress.update(len(batch["well_id"]))
            if len(set(buffer_ids)) >= part_wells:
                flush()
    flush()
    progress.close()
    return num_wells


def require_anndata() -> None:
    """`--format anndata` needs the optional anndata package: say so before any work."""
    try:
        import anndata  # noqa: F401
    except ImportError:
        raise ValueError("--format anndata needs the anndata package: pip install \"phenom-microscopy[anndata]\"") \
            from None


def write_anndata(paths: dict[int, Path], well_ids: np.ndarray, features: dict[int, np.ndarray], metadata_csv,
                  provenance: dict) -> None:
    """One `.h5ad` per block: `X` the embeddings, `obs` the metadata rows (index `well_id`), `uns["phenom"]`."""
    import anndata
    import pandas as pd

    from .embeddings_file import read_metadata

    obs = pd.DataFrame(index=pd.Index(well_ids, name="well_id"))
    if metadata_csv is not None:
        metadata = read_metadata(metadata_csv).set_index("well_id")
        obs = metadata.reindex(obs.index)
    obs.index = obs.index.astype(str)
    for block, path in paths.items():
        data = anndata.AnnData(X=features[block].astype(np.float32), obs=obs.copy())
        data.var_names = [f"feature_{index}" for index in range(features[block].shape[1])]
        data.uns["phenom"] = {**provenance, "block": block}
        with atomic_path(path) as temporary:
            data.write_h5ad(temporary)


def metadata_csv_path(data: str, metadata: str | None) -> Path | None:
    """The metadata CSV used for AnnData's `obs`: `--metadata`, else the local source's `metadata_rxrx3_core.csv`."""
    if metadata:
        return Path(metadata)
    local = Path(data) / "metadata_rxrx3_core.csv"
    return local if local.is_file() else None


def parse_channels(text: str) -> list[str]:
    """`DNA,ER,RNA` -> `["DNA", "ER", "RNA"]` (names kept as written; the reader matches them)."""
    channels = [part.strip() for part in text.split(",") if part.strip()]
    if not channels:
        raise argparse.ArgumentTypeError("--channels is empty")
    return channels


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Embed every well of a dataset (RxRx3-core, RxRx1, a CellProfiler LoadData CSV or a plate CSV) "
                    "with a Phenom/OpenPhenom model: pooled embeddings of the chosen blocks, averaged over every view "
                    "of every site of a well, in the official embeddings layout (well_id, feature_0 ...). "
                    "Resumable; runs under `accelerate launch`.",
    )
    parser.add_argument("--model", required=True, help="model: Hub repo id or save_pretrained directory")
    parser.add_argument("--data", required=True,
                        help="RxRx3-core Hub dataset id (recursionpharma/rxrx3-core) or a local folder in its layout, "
                             "an RxRx1 release folder, a CellProfiler LoadData CSV (.csv/.csv.gz, JUMP-CP) or "
                             "Phenom's plate CSV (well_id, channel, path)")
    parser.add_argument("--out", required=True, type=Path,
                        help="output parquet; with several blocks <name>_block<k>.parquet beside it")
    parser.add_argument("--blocks", type=parse_blocks, default="last",
                        help="last, all, or block numbers like 4,8,12 (numbered from 1; default: last)")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE,
                        help=f"wells per forward pass, all their views together (default: {DEFAULT_BATCH_SIZE})")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="auto = the accelerator accelerate picks (a GPU when there is one)")
    parser.add_argument("--dtype", choices=DTYPE_CHOICES, default="float32",
                        help="precision of the forward pass: float32 (default), bfloat16 or float16 (float32 "
                             "weights under autocast), or auto = bfloat16 where the hardware has it natively (a GPU "
                             "with bf16, a CPU with avx512_bf16 or AMX), float32 elsewhere; recorded in the "
                             "provenance")
    parser.add_argument("--format", choices=FORMATS, default="parquet", help="output format (default: parquet)")
    parser.add_argument("--channels", type=parse_channels,
                        help="channels to stack, in this order: LoadData/plate-CSV names (DNA,ER,RNA,AGP,Mito) or "
                             "RxRx names/numbers (nuclei,er,actin,rna,mitochondria,golgi); default: the source's own "
                             "(LoadData: every non-brightfield channel); recorded in the provenance")
    parser.add_argument("--per-site", action="store_true",
                        help="one row per site (well_id, site, features) instead of one per well")
    parser.add_argument("--uint16-rule", choices=UINT16_RULES,
                        help="how 16-bit images become 8-bit (default: the model's processor, else channel_max); "
                             "percentile clips each image to its 0.1-99.9 percentiles")
    parser.add_argument("--metadata", help="metadata CSV (default: the dataset's metadata_rxrx3_core.csv)")
    parser.add_argument("--experiments", nargs="+", help="embed only these experiments")
    parser.add_argument("--well-list", help="embed only the wells in this file (one well_id per line)")
    parser.add_argument("--num-workers", type=int, default=0, help="DataLoader workers per process (image decoding)")
    parser.add_argument("--part-wells", type=int, default=DEFAULT_PART_WELLS,
                        help=f"wells per part file written while running (default: {DEFAULT_PART_WELLS})")
    parser.add_argument("--revision", help="Hub revision of the model and the dataset")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace output files that already exist and discard the parts of an interrupted run "
                             "(without it, the same command resumes that run)")
    parser.add_argument("--per-channel", action="store_true",
                        help="channel-agnostic models: each channel's token mean side by side (C x hidden_size "
                             "features) instead of the mean over all tokens")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def check_outputs(out: Path, outputs: dict[int, Path], parts_dir: Path, overwrite: bool) -> None:
    """Refuse, before any work, outputs that cannot be written: a folder where a file goes, or existing files
    without `overwrite` (unless the parts of an interrupted run are there to finish)."""
    folders = [str(path) for path in (out, *outputs.values()) if path.is_dir()]
    if folders:
        raise ValueError(f"--out must name a file (e.g. embeddings.parquet); {', '.join(folders)} is a folder")
    existing = [str(path) for path in outputs.values() if path.exists()]
    if existing and not overwrite and not parts_dir.is_dir():
        raise FileExistsError(f"{', '.join(existing)} already exist(s); pass --overwrite to replace")


def embedding_settings(args, processor, outputs: dict[int, Path], parts_dir: Path, dtype: str) -> dict:
    """What must match for parts to be resumed: fingerprints of the model files and the data (content, so that
    `data/` and `./data` are one source and new weights behind the same path are another), and every option that
    changes an embedding."""
    from phenom_data.fingerprint import data_fingerprint, model_fingerprint, optional_file_fingerprint

    return {"model": model_fingerprint(args.model, args.revision), "processor": processor.to_dict(),
            "data": data_fingerprint(args.data, args.revision, exclude=(parts_dir, *outputs.values())),
            "metadata": optional_file_fingerprint(args.metadata), "experiments": args.experiments,
            "well_list": optional_file_fingerprint(args.well_list), "per_channel": args.per_channel,
            "dtype": dtype, "channels": args.channels, "per_site": args.per_site}


@command
def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    args = build_parser(prog).parse_args(argv)
    if args.batch_size < 1 or args.part_wells < 1 or args.num_workers < 0:
        raise ValueError(f"--batch-size and --part-wells must be >= 1 and --num-workers >= 0; got {args.batch_size}, "
                         f"{args.part_wells} and {args.num_workers}")
    if args.per_site and args.format != "parquet":
        raise ValueError("--per-site writes parquet files (well_id, site, features); drop --format anndata")

    from accelerate import PartialState

    from phenom_data import detect_source, open_wells
    from phenom_data.errors import on_main_process
    from phenom_data.locks import lock_on_main_process

    source_kind = detect_source(args.data)  # a missing or unknown source fails before the model is loaded
    state = PartialState(cpu=args.device == "cpu")
    if args.device == "cuda" and state.device.type != "cuda":
        raise ValueError("--device cuda but no CUDA device is available")
    lock = lock_on_main_process(state, args.out, "--out")  # one run per output: a second one is refused at once
    try:
        model = load_model(args.model, state.device, revision=args.revision)
        precision = resolve_precision(args.dtype, state.device)
        blocks = model.resolve_blocks(args.blocks)
        if args.per_channel and not model.config.channel_agnostic:  # the model refuses too; say so before any work
            raise ValueError(f"--per-channel needs a channel-agnostic model (one token set per channel); "
                             f"{args.model} embeds all channels in each token")
        if args.format == "anndata":
            require_anndata()
        outputs = block_paths(args.out, blocks, ".h5ad" if args.format == "anndata" else ".parquet")
        # The model's own views (crop size, 16-bit rule): given once to the reader and to the dataset.
        processor = load_processor(args.model, args.revision, args.uint16_rule)
        parts_dir = parts_folder(args.out)
        check_outputs(args.out, outputs, parts_dir, args.overwrite)
        store = EmbeddingStore(args.out, blocks, embedding_settings(args, processor, outputs, parts_dir, precision.dtype))
        on_main_process(state, lambda: store.prepare(overwrite=args.overwrite))
        done = store.done_well_ids()
        if done and state.is_main_process:
            print(f"resuming: {len(done)} wells already embedded in {store.parts_dir}", file=sys.stderr)
        # Finished wells are dropped by the reader before any of their images is decoded.
        wells = open_wells(args.data, processor=processor, rank=state.process_index,
                           world_size=state.num_processes, exclude=done, metadata=args.metadata,
                           experiments=args.experiments, well_list=args.well_list, channels=args.channels,
                           revision=args.revision if "revision" in source_kind.options else None)
        embed_wells(args, state, model, blocks, processor, wells, store, outputs, source_kind.name, precision)
    finally:
        if lock is not None:
            lock.release()
    return 0


def embed_wells(args, state, model, blocks: list[int], processor, wells, store: EmbeddingStore,
                outputs: dict[int, Path], source_kind: str, precision) -> None:
    """Embed `wells` (those the parts do not hold yet), then (main process) merge the parts into the outputs."""
    import torch

    from phenom_data import WellDataset, collate_views

    dataset = WellDataset(wells, mode="tiles", processor=processor)
    loader = torch.utils.data.DataLoader(dataset, batch_size=args.batch_size, num_workers=args.num_workers,
                                         collate_fn=collate_views)
    if state.is_main_process:
        print(f"precision: {precision.dtype} ({precision.reason})", file=sys.stderr)
    start = time.perf_counter()
    show_progress = state.is_main_process and not args.no_progress
    embedded = embed_into_store(model, loader, blocks, store, state.process_index, state.device, precision.autocast,
                                part_wells=args.part_wells, show_progress=show_progress, per_channel=args.per_channel,
                                per_site=args.per_site)
    seconds = time.perf_counter() - start
    print(f"rank {state.process_index}: embedded {embedded} wells in {seconds:.1f} s "
          f"({embedded / max(seconds, 1e-9):.1f} wells/s); {wells.stats.summary()}", file=sys.stderr)
    state.wait_for_everyone()
    if state.is_main_process:
        provenance = {"model": args.model, "dataset": args.data, "source": source_kind, "blocks": blocks,
                      "hidden_size": int(model.config.hidden_size),
                      "pooling": "per-channel token means" if args.per_channel else "token mean",
                      "channels": list(wells.channel_names), "processor": processor.settings(),
                      "rows": "sites" if args.per_site else "wells", "precision": precision.record()}
        if args.format == "parquet":
            written = store.merge(provenance)
        else:
            well_ids, _, features = store.read_parts()
            write_anndata(outputs, well_ids, features, metadata_csv_path(args.data, args.metadata), provenance)
            store.remove()
            written = outputs
        for block, path in written.items():
            print(f"block {block}: {path}")
    state.wait_for_everyone()

__all__ = [
    "FORMATS",
    "parse_blocks",
    "parse_channels",
    "row_index",
    "well_means",
    "load_model",
    "load_processor",
    "embed_into_store",
    "check_outputs",
    "embedding_settings",
    "embed_wells",
    "require_anndata",
    "write_anndata",
    "metadata_csv_path",
    "build_parser",
    "main",
]

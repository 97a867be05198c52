"""Fidelity of bf16 inference: `phenom embed --dtype bfloat16` against `--dtype float32` on the same wells.

For every model (`--model NAME=DIR`, a `save_pretrained` directory) and pooling (token mean, and per-channel token
means, the demo's), the screen (`--data`, a folder in RxRx3-core's layout such as the demo's `data/`) is embedded twice
with `phenom embed` (its last block), once per precision, and compared:

- per well: the cosine between its bf16 and its float32 embedding (min, 1st percentile, median, mean over wells),
  also after subtracting the float32 mean well (what batch correction removes first), and the relative L2 difference;
- per benchmark: every metric `phenom eval` reports (known-relationship recall per source, compound-gene AP and AUC,
  replicate consistency, signal consistency and magnitude; default options: PCA-CenterScale on controls), computed
  on each precision's embeddings, with the difference bf16 - float32. The seeded benchmarks use the same seeds on
  both, so a difference comes from the embeddings alone. For scale, the same metrics of the float32 embeddings plus
  a random perturbation as large as bf16's, well by well ("matched noise"): how finely this screen's benchmarks
  resolve a change of that size (a recall over 25 pairs moves in steps of 0.04).

The verdict the issue asks for: bf16 may become the default only if no metric of any model moves by more than
`--tolerance` (0.005).

    python -m bench.bf16_fidelity --model tiny-trained=phenom-demo/pretrain/final \
        --model openphenom-fixture=tests/fixtures/openphenom_tiny --data phenom-demo/data
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

from bench.common import RESULTS_DIR, machine_record, versions_line
from phenom_data.atomic import atomic_write_json

PRECISIONS = ("float32", "bfloat16")
POOLINGS = {"token mean": False, "per-channel": True}  # name -> per_channel
DEFAULT_TOLERANCE = 0.005


def embed(model: Path, data: Path, out: Path, dtype: str, per_channel: bool, batch_size: int) -> float:
    """`phenom embed` of the last block into `out` (replaced); returns its wall-clock seconds."""
    from eval.embed import embed as embed_wells

    start = time.perf_counter()
    embed_wells(model, data, out, device="cpu", dtype=dtype, batch_size=batch_size, overwrite=True,
                show_progress=False, per_channel=per_channel)
    return time.perf_counter() - start


def cosines(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Row-wise cosine of two `[wells, features]` arrays."""
    return (first * second).sum(axis=1) / (np.linalg.norm(first, axis=1) * np.linalg.norm(second, axis=1))


def well_agreement(reference, reduced) -> dict:
    """Per-well cosine and relative L2 difference of two `WellEmbeddings` of the same wells (matched by `well_id`).

    Also the cosine after subtracting the float32 mean well from both ("centered"): the raw cosine is dominated by
    what every well shares, which batch correction removes before any benchmark looks at the embeddings.
    """
    if sorted(reference.well_ids) != sorted(reduced.well_ids):
        raise ValueError("the two embeddings files hold different wells")
    order = {well_id: index for index, well_id in enumerate(reduced.well_ids)}
    matched = reduced.features[[order[well_id] for well_id in reference.well_ids]].astype(np.float64)
    base = reference.features.astype(np.float64)
    cosine = cosines(base, matched)
    mean = base.mean(axis=0)
    centered = cosines(base - mean, matched - mean)
    relative = np.linalg.norm(matched - base, axis=1) / np.linalg.norm(base, axis=1)
    return {"wells": len(cosine), "cosine_min": float(cosine.min()), "cosine_p01": float(np.percentile(cosine, 1)),
            "cosine_median": float(np.median(cosine)), "cosine_mean": float(cosine.mean()),
            "centered_cosine_min": float(centered.min()), "centered_cosine_p01": float(np.percentile(centered, 1)),
            "centered_cosine_median": float(np.median(centered)),
            "relative_l2_max": float(relative.max()), "relative_l2_median": float(np.median(relative))}


def matched_noise(reference, reduced, seed: int = 0) -> np.ndarray:
    """The float32 features plus, for every well, a random Gaussian direction scaled to the length of that well's
    bf16 - float32 difference: a perturbation of the same size as bf16's with no structure, whose metric changes
    show how finely the benchmarks of this screen resolve a change of that size."""
    order = {well_id: index for index, well_id in enumerate(reduced.well_ids)}
    base = reference.features.astype(np.float64)
    difference = reduced.features[[order[well_id] for well_id in reference.well_ids]] - base
    noise = np.random.default_rng(seed).standard_normal(base.shape)
    noise *= (np.linalg.norm(difference, axis=1) / np.linalg.norm(noise, axis=1))[:, None]
    return (base + noise).astype(np.float32)


def metric_deltas(reference, reduced, noise) -> dict:
    """`{metric: {"float32", "bfloat16", "delta", "noise_delta", "seed_std"}}` for every metric of three
    `EvalResults` (float32, bf16, float32 + matched noise). A metric that one of them lacks (a benchmark the data
    supported in one precision only, e.g. mAP consistency with no active perturbation) has the value None and a
    delta of None; a missing bf16 value counts as outside any tolerance."""
    out = {}
    for name in sorted(set(reference.metrics) | set(reduced.metrics)):
        value, reduced_value, noise_value = (results.metrics.get(name) for results in (reference, reduced, noise))
        out[name] = {"float32": value, "bfloat16": reduced_value,
                     "delta": None if value is None or reduced_value is None else reduced_value - value,
                     "noise_delta": None if value is None or noise_value is None else noise_value - value,
                     "seed_std": reference.metrics_std.get(name)}
    return out


def largest_delta(deltas: dict, key: str) -> dict:
    """`{"metric", "delta"}` of the largest |`key`| among the metrics that have one (None when none has)."""
    known = [(name, entry[key]) for name, entry in deltas.items() if entry[key] is not None]
    name, delta = max(known, key=lambda item: abs(item[1])) if known else (None, None)
    return {"metric": name, "delta": delta}


def compare(models: dict[str, Path], data: Path, metadata: Path, work: Path, batch_size: int,
            tolerance: float = DEFAULT_TOLERANCE, poolings: dict[str, bool] | None = None,
            reuse: bool = False) -> dict:
    """Embed with each precision, compare per well and per benchmark; the report (see the module docstring).
    `reuse`: take embeddings files already in `work` (from an earlier run) instead of embedding again."""
    from eval.embeddings_file import read_embeddings, read_metadata, write_embeddings
    from eval.evaluate import EvalOptions, evaluate_file

    poolings = POOLINGS if poolings is None else poolings
    metadata_table = read_metadata(metadata)
    options = EvalOptions(plots=False)
    report = {}
    for name, model in models.items():
        for pooling, per_channel in poolings.items():
            files, seconds, results = {}, {}, {}
            for dtype in PRECISIONS:
                files[dtype] = work / f"{name}-{pooling.replace(' ', '-')}-{dtype}.parquet"
                reused = reuse and files[dtype].is_file()
                seconds[dtype] = None if reused else embed(model, data, files[dtype], dtype, per_channel, batch_size)
                results[dtype], _ = evaluate_file(files[dtype], metadata_table, options)
            embeddings = {dtype: read_embeddings(path) for dtype, path in files.items()}
            recorded = {dtype: embeddings[dtype].provenance.get("precision", {}).get("dtype") for dtype in PRECISIONS}
            if recorded != {dtype: dtype for dtype in PRECISIONS}:
                raise ValueError(f"{name}, {pooling}: the files record precisions {recorded}")
            noisy = files["float32"].with_name(files["float32"].name.replace("float32", "float32-matched-noise"))
            write_embeddings(noisy, embeddings["float32"].well_ids,
                             matched_noise(embeddings["float32"], embeddings["bfloat16"]),
                             provenance={**embeddings["float32"].provenance, "matched_noise": True})
            noise_results, _ = evaluate_file(noisy, metadata_table, options)
            deltas = metric_deltas(results["float32"], results["bfloat16"], noise_results)
            report[f"{name}, {pooling}"] = {
                "model": str(model), "pooling": pooling,
                "precision_recorded": {dtype: embeddings[dtype].provenance.get("precision") for dtype in PRECISIONS},
                "embed_seconds": seconds,
                "wells": well_agreement(embeddings["float32"], embeddings["bfloat16"]),
                "metrics": deltas,
                "largest_metric_delta": largest_delta(deltas, "delta"),
                "largest_matched_noise_delta": largest_delta(deltas, "noise_delta"),
                "within_tolerance": all(entry["delta"] is not None and abs(entry["delta"]) <= tolerance
                                        for entry in deltas.values()),
            }
    return report


def _cell(value, signed: bool) -> str:
    return f"{'-':>10}" if value is None else f"{value:>+10.4f}" if signed else f"{value:>10.4f}"


def table(report: dict) -> str:
    lines = []
    for label, entry in report.items():
        wells, seconds = entry["wells"], entry["embed_seconds"]
        lines.append(f"{label}: {wells['wells']} wells, cosine min {wells['cosine_min']:.6f} / p01 "
                     f"{wells['cosine_p01']:.6f} / median {wells['cosine_median']:.6f}; centered min "
                     f"{wells['centered_cosine_min']:.6f} / median {wells['centered_cosine_median']:.6f}; "
                     f"relative L2 max {wells['relative_l2_max']:.2e}; embed "
                     + ", ".join("reused" if seconds[dtype] is None else f"{seconds[dtype]:.0f} s {dtype}"
                                 for dtype in PRECISIONS))
        for metric, values in entry["metrics"].items():
            lines.append(f"  {metric:<36}" + "".join(_cell(values[key], signed) for key, signed in (
                ("float32", False), ("bfloat16", False), ("delta", True), ("noise_delta", True))))
        largest, noise = entry["largest_metric_delta"], entry["largest_matched_noise_delta"]
        lines.append(f"  largest |delta|: {largest['metric']} {_cell(largest['delta'], True).strip()} "
                     f"({'within' if entry['within_tolerance'] else 'OUTSIDE'} the tolerance); float32 + matched "
                     f"noise: {noise['metric']} {_cell(noise['delta'], True).strip()}")
    return "\n".join(lines)


def parse_model(text: str) -> tuple[str, Path]:
    name, separator, path = text.partition("=")
    if not separator or not name or not path:
        raise argparse.ArgumentTypeError(f"--model takes NAME=DIR, got {text!r}")
    return name, Path(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bf16_fidelity", description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=parse_model, action="append", required=True,
                        help="NAME=DIR of a saved Phenom (or OpenPhenom-layout) model; repeatable")
    parser.add_argument("--data", type=Path, required=True, help="screen in RxRx3-core's layout (e.g. demo data/)")
    parser.add_argument("--metadata", type=Path, help="metadata CSV (default: DATA/metadata_rxrx3_core.csv)")
    parser.add_argument("--work", type=Path, required=True, help="folder for the embeddings files")
    parser.add_argument("--batch-size", type=int, default=8, help="wells per forward pass (default 8)")
    parser.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE,
                        help=f"largest metric change that keeps bf16 eligible as the default ({DEFAULT_TOLERANCE})")
    parser.add_argument("--reuse-embeddings", action="store_true",
                        help="compare the embeddings files already in --work instead of embedding again")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR / "bf16_fidelity.json", help="JSON report")
    args = parser.parse_args(argv)
    import torch

    machine = machine_record(torch.device("cpu"))
    print(versions_line(machine), file=sys.stderr)
    args.work.mkdir(parents=True, exist_ok=True)
    metadata = args.metadata or args.data / "metadata_rxrx3_core.csv"
    compared = compare(dict(args.model), args.data, metadata, args.work, args.batch_size, args.tolerance,
                       reuse=args.reuse_embeddings)
    report = {"benchmark": "bf16_fidelity", "data": str(args.data), "tolerance": args.tolerance,
              "machine": machine, "load_average_end": list(os.getloadavg()), "results": compared,
              "bf16_may_be_default": all(entry["within_tolerance"] for entry in compared.values())}
    print(table(compared))
    print(f"bf16 may become the default (no metric moved by more than {args.tolerance}): "
          f"{report['bf16_may_be_default']}")
    atomic_write_json(args.out, report)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

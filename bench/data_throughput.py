"""Decode throughput of the data entry point (`phenom_data.open_wells` -> `WellDataset` tiles), in wells/s per core,
for the RxRx3-core path and the LoadData TIFF path (JUMP-CP's layout) in the same run, and what a resumed embed
spends on wells it finished before.

Two local datasets, read through `open_wells` exactly as `phenom embed` reads them:

- `rxrx3-core pipeline`: the Hub layout (`data/train-*.parquet`, `__key__` + `jp2` Image feature) whose rows are the
  six real 512 px JPEG-2000 channels of `tests/fixtures/rxrx3_sample`, repeated; every sample `[4, 6, 256, 256]`
  uint8: parquet streaming with `datasets`, assembly by key, pillow JPEG-2000 decode, stacking and tiling;
- `load-data TIFF pipeline`: a LoadData CSV whose wells have JUMP's shape, 3 sites x 5 channels of 1080 x 1080
  uint16 TIFF with illumination `.npy` files (`phenom_data.load_data.write_load_data`; every well names the same 15
  files, so both paths read from the page cache); every sample `[48, 5, 256, 256]`: pillow TIFF decode,
  illumination division, the 16-bit rule, the 4 x 4 centred crops of each site;
- peers measured in the same run: pillow decoding RxRx3's six channels alone (the ceiling that pipeline can reach)
  and, when installed, `imagecodecs.jpeg2k_decode` (same OpenJPEG library, not a Phenom dependency).

Resume: a pass with `exclude=` the first half of the wells (a half-done `phenom embed` started again) against a pass
over a copy of the dataset that holds only the second half (`rest`): what the resumed pass spends on its finished
wells is `(resumed - rest) / full`, as a share of a full pass (fixed costs, such as reading the CSV, cancel). Before
`exclude`, a resumed embed decoded every well and dropped the finished ones: about `(full - rest) / full`, 50%.

"Per core" is wells per second of CPU time of this process (`time.process_time`), which a machine shared with
other jobs does not distort; wall-clock rates are printed too. Target: >= 15 RxRx3-core wells/s per core.

    python -m bench.data_throughput                 # 96 + 16 wells, best of 3 passes, writes data_throughput.json
    python -m bench.data_throughput --smoke         # 4 wells each, one pass (CI)
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLE_DIR = REPO_ROOT / "tests" / "fixtures" / "rxrx3_sample"
TARGET_WELLS_PER_CORE_SECOND = 15.0
RXRX3 = "rxrx3-core pipeline"
LOAD_DATA = "load-data TIFF pipeline"
PILLOW = "decode only: pillow"
JUMP_SITES, JUMP_CHANNELS, JUMP_SIZE = ("1", "2", "3"), ("DNA", "ER", "RNA", "AGP", "Mito"), 1080


def sample_channels() -> list[bytes]:
    """The six real JPEG-2000 channels of the sample well (512 x 512, 8-bit)."""
    files = [SAMPLE_DIR / f"AA41_s1_{channel}.jp2" for channel in range(1, 7)]
    missing = [str(file) for file in files if not file.is_file()]
    if missing:
        raise FileNotFoundError(f"run from a checkout: the sample well is missing ({missing[0]})")
    return [file.read_bytes() for file in files]


def rxrx3_well(index: int) -> tuple[str, int, str]:
    """(experiment, plate, address) of the benchmark's well `index`."""
    return "compound-001", 1 + index // 1000, f"A{index % 1000:03d}"


def build_dataset(directory: Path, num_wells: int, channels: list[bytes], num_shards: int = 2, first: int = 0) -> Path:
    """Wells `first .. num_wells - 1` of the sample's channels in `num_shards` files, 100 rows per row group (as the
    Hub)."""
    from phenom_data.rxrx3_core import rxrx3_core_key, shard_filename, write_rxrx3_core_shard

    rows = [
        (rxrx3_core_key(*rxrx3_well(index), channel), data)
        for index in range(first, num_wells)
        for channel, data in enumerate(channels, start=1)
    ]
    bounds = np.linspace(0, len(rows), num_shards + 1).astype(int)  # cuts may fall inside a well
    for shard, (start, stop) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
        keys, images = zip(*rows[start:stop], strict=True)
        write_rxrx3_core_shard(directory / shard_filename(shard, num_shards), keys, images, row_group_size=100)
    return directory


def build_load_data(directory: Path, num_wells: int) -> Path:
    """A LoadData CSV of `num_wells` wells of JUMP's shape (3 sites x 5 channels, 1080 px uint16 TIFF, illumination
    functions); every well names the same 15 image files (one plate's worth of content is enough to time decoding).
    `rest.csv` beside it lists only the second half of the wells."""
    import pandas as pd

    from phenom_data.load_data import write_load_data

    rng = np.random.default_rng(0)
    images = {("P1", "A01", site): {channel: rng.integers(0, 4096, (JUMP_SIZE, JUMP_SIZE)).astype(np.uint16)
                                    for channel in JUMP_CHANNELS} for site in JUMP_SITES}
    grid = np.linspace(-1.0, 1.0, JUMP_SIZE, dtype=np.float32)
    vignetting = 1.4 - 0.8 * np.sqrt(grid[:, None] ** 2 + grid[None, :] ** 2) / np.sqrt(2.0)
    csv = write_load_data(directory, images, {("P1", channel): vignetting for channel in JUMP_CHANNELS})
    one_well = pd.read_csv(csv, dtype=str)
    wells = [one_well.assign(Metadata_Well=f"W{index:04d}") for index in range(num_wells)]
    pd.concat(wells).to_csv(csv, index=False)
    pd.concat(wells[num_wells // 2:]).to_csv(csv.with_name("rest.csv"), index=False)
    return csv


def timed(functions: dict, repeats: int) -> dict:
    """Best of `repeats` runs of each `function() -> wells`, the measurements interleaved so that a change in the
    machine's load hits all of them: wells per CPU second and per wall second."""
    best = {}
    for _ in range(repeats):
        for name, function in functions.items():
            wall, cpu = time.perf_counter(), time.process_time()
            wells = function()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            result = {"wells": wells, "wall_s": wall, "cpu_s": cpu, "wells_per_core_s": wells / cpu,
                      "wells_per_wall_s": wells / wall}
            if name not in best or result["wells_per_core_s"] > best[name]["wells_per_core_s"]:
                best[name] = result
    return best


def run(num_wells: int, num_jump_wells: int, repeats: int) -> dict:
    import torch

    from modeling_phenom import PhenomImageProcessor
    from phenom_data import WellDataset, open_wells
    from phenom_data.wells import decode_image

    torch.set_num_threads(1)
    channels = sample_channels()
    processor = PhenomImageProcessor()
    with tempfile.TemporaryDirectory(prefix="phenom-bench-") as directory:
        rxrx3_dir = build_dataset(Path(directory) / "rxrx3", num_wells, channels)
        rxrx3_rest = build_dataset(Path(directory) / "rxrx3-rest", num_wells, channels, first=num_wells // 2)
        jump_csv = build_load_data(Path(directory) / "jump", num_jump_wells)

        def pipeline(source, expected_shape, wells, exclude=None) -> callable:
            def read() -> int:
                count = 0
                reader = open_wells(source, processor=processor, exclude=exclude)
                for sample in WellDataset(reader, mode="tiles", processor=processor):
                    assert tuple(sample["pixel_values"].shape) == expected_shape
                    count += 1
                if count != wells:
                    raise RuntimeError(f"{source} yielded {count} wells, expected {wells}")
                return count
            return read

        def pillow_decode() -> int:
            for _ in range(num_wells):
                np.stack([decode_image(data) for data in channels])
            return num_wells

        rxrx3_shape, jump_shape = (4, 6, 256, 256), (48, len(JUMP_CHANNELS), 256, 256)
        functions = {RXRX3: pipeline(rxrx3_dir, rxrx3_shape, num_wells),
                     LOAD_DATA: pipeline(jump_csv, jump_shape, num_jump_wells), PILLOW: pillow_decode}
        try:
            import imagecodecs
        except ImportError:
            imagecodecs = None
        if imagecodecs is not None:

            def imagecodecs_decode() -> int:
                for _ in range(num_wells):
                    np.stack([imagecodecs.jpeg2k_decode(data, numthreads=1) for data in channels])
                return num_wells

            functions["decode only: imagecodecs"] = imagecodecs_decode
        # Resumed half-done runs: the first half of the wells (in reading order) is done already; "rest" holds only
        # the second half, so it costs what the resumed run should.
        rxrx3_done = {"_".join(map(str, rxrx3_well(index))) for index in range(num_wells // 2)}
        jump_done = {f"P1_W{index:04d}" for index in range(num_jump_wells // 2)}
        rxrx3_left, jump_left = num_wells - len(rxrx3_done), num_jump_wells - len(jump_done)
        functions[f"{RXRX3}, resumed half done"] = pipeline(rxrx3_dir, rxrx3_shape, rxrx3_left, exclude=rxrx3_done)
        functions[f"{RXRX3}, second half only"] = pipeline(rxrx3_rest, rxrx3_shape, rxrx3_left)
        functions[f"{LOAD_DATA}, resumed half done"] = pipeline(jump_csv, jump_shape, jump_left, exclude=jump_done)
        functions[f"{LOAD_DATA}, second half only"] = pipeline(jump_csv.with_name("rest.csv"), jump_shape, jump_left)
        results = timed(functions, repeats)
    rxrx3_rate = results[RXRX3]["wells_per_core_s"]
    resume = {}
    for name in (RXRX3, LOAD_DATA):
        full = results[name]["cpu_s"]
        resumed, rest = results[f"{name}, resumed half done"]["cpu_s"], results[f"{name}, second half only"]["cpu_s"]
        resume[name] = {"resumed_with_exclude": (resumed - rest) / full, "decoded_then_dropped": (full - rest) / full}
    return {
        "benchmark": "data_throughput",
        "wells": num_wells,
        "load_data_wells": num_jump_wells,
        "repeats": repeats,
        "image": "RxRx3 sample well: 6 x 512 x 512 uint8 JPEG-2000 -> 4 tiles of 256 px",
        "load_data_image": "JUMP-shaped well: 3 sites x 5 x 1080 x 1080 uint16 TIFF + illumination -> 48 crops",
        "results": results,
        "load_data_sites_per_core_s": results[LOAD_DATA]["wells_per_core_s"] * len(JUMP_SITES),
        "load_data_over_rxrx3_core_wells": results[LOAD_DATA]["wells_per_core_s"] / rxrx3_rate,
        "pipeline_over_pillow_decode": rxrx3_rate / results[PILLOW]["wells_per_core_s"],
        "resumed_half_done_share_of_full_time_on_finished_wells": resume,
        "target_wells_per_core_s": TARGET_WELLS_PER_CORE_SECOND,
        "meets_target": rxrx3_rate >= TARGET_WELLS_PER_CORE_SECOND,
        "versions": versions(),
    }


def versions() -> dict:
    import datasets
    import PIL
    import pyarrow

    found = {"python": platform.python_version(), "datasets": datasets.__version__, "pillow": PIL.__version__,
             "pyarrow": pyarrow.__version__, "machine": platform.machine(), "processor": platform.processor()}
    try:
        import imagecodecs

        found["imagecodecs"] = imagecodecs.__version__
    except ImportError:
        pass
    return found


def table(report: dict) -> str:
    lines = [f"{'measurement':<42} {'wells/s per core':>17} {'wells/s wall':>13} {'wells':>6}"]
    for name, result in report["results"].items():
        lines.append(
            f"{name:<42} {result['wells_per_core_s']:>17.2f} {result['wells_per_wall_s']:>13.2f} {result['wells']:>6}"
        )
    verdict = "meets" if report["meets_target"] else "misses"
    lines.append(
        f"rxrx3-core pipeline / pillow decode alone: {report['pipeline_over_pillow_decode']:.2f}; "
        f"{verdict} the target of {report['target_wells_per_core_s']:g} wells/s per core"
    )
    lines.append(f"load-data TIFF: {report['load_data_sites_per_core_s']:.1f} sites/s per core; "
                 f"{report['load_data_over_rxrx3_core_wells']:.3f} x the rxrx3-core wells/s")
    for name, share in report["resumed_half_done_share_of_full_time_on_finished_wells"].items():
        lines.append(f"{name}: a resumed half-done pass spends {100 * share['resumed_with_exclude']:.1f}% of the full "
                     f"pass's CPU time on its finished wells (decoding them and dropping them: "
                     f"{100 * share['decoded_then_dropped']:.1f}%)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.data_throughput", description=__doc__.split("\n\n")[0])
    parser.add_argument("--wells", type=int, default=96, help="wells in the RxRx3-core dataset (default 96)")
    parser.add_argument("--load-data-wells", type=int, default=16,
                        help="wells in the LoadData dataset (default 16; each 3 sites x 5 channels x 1080 px)")
    parser.add_argument("--repeats", type=int, default=3, help="passes per measurement; the best counts (default 3)")
    parser.add_argument("--smoke", action="store_true", help="4 wells of each, one pass: checks the benchmark runs")
    parser.add_argument("--output", type=Path, default=Path("data_throughput.json"), help="JSON report path")
    args = parser.parse_args(argv)
    if args.smoke:
        args.wells, args.load_data_wells, args.repeats = 4, 4, 1
    if min(args.wells, args.load_data_wells) < 2 or args.repeats < 1:
        parser.error("--wells and --load-data-wells must be >= 2 (half of them are resumed), --repeats positive")
    report = run(args.wells, args.load_data_wells, args.repeats)
    print(table(report))
    from phenom_data.atomic import atomic_write_text

    atomic_write_text(args.output, json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

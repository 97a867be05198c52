"""Time the mAP benchmarks (copairs) beside known-relationship recall, in one run, on one screen.

    python -m bench.eval_map            # 1,000 perturbations x 4 replicates x 384 features, 3 repeats
    python -m bench.eval_map --smoke    # seconds: 100 perturbations x 4 x 32, 1 repeat

Screen: 1,000 gene symbols drawn (seed 0) from the genes of the bundled CORUM clusters, each with 4 replicate wells
on 4 different plates of 40; every plate also holds 16 negative-control wells (`EMPTY_control`); 384-d well
embeddings, N(0, 1) noise plus, for the genes of every third CORUM complex touched, a shared complex direction (so
some perturbations are active and some complexes consistent). The wells go through `phenom eval`'s own path
(`describe_wells`, no correction, mean aggregation, `EvalContext`), then each benchmark runs from the registry:

- `map_activity`: copairs average precision of every well against its plate's controls, mAP, p-values (null
  10,000), BH correction; then the same with shuffled labels (the baseline), as `phenom eval` runs it;
- `map_consistency`: copairs multilabel mAP of the active genes by CORUM complex, and shuffled;
- `recall`: known-relationship recall, five sources, on the 1,000-gene map (with its 10 label-permutation
  baselines, as `phenom eval` runs it), and without baselines.

Each repeat times every step once, in the same order; medians are reported (the machine is shared). Prints a table
and writes JSON (`--out`).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from eval import recall
from eval.aggregate import aggregate
from eval.benchmarks import registry
from eval.context import DEFAULT_MAP_NULL_SIZE, EvalContext
from eval.perturbations import RXRX3_CORE, describe_wells
from eval.plots import read_complexes
from phenom_data.atomic import atomic_write_json

ANNOTATIONS_DIR = recall.default_annotations_dir()
FULL = {"perturbations": 1000, "replicates": 4, "features": 384, "plates": 40, "controls_per_plate": 16,
        "repeats": 3}
SMOKE = {"perturbations": 100, "replicates": 4, "features": 32, "plates": 8, "controls_per_plate": 8, "repeats": 1}


def make_screen(perturbations: int, replicates: int, features: int, plates: int, controls_per_plate: int,
                seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """`(metadata in the RxRx3-core schema, well embeddings [wells, features] float64)` (module docstring)."""
    rng = np.random.default_rng(seed)
    complexes = read_complexes(ANNOTATIONS_DIR / "CORUM_clusters.tsv")
    complex_of = {gene: name for name, members in sorted(complexes.items()) for gene in members}
    genes = np.sort(rng.choice(sorted(complex_of), size=perturbations, replace=False))
    touched = sorted({complex_of[gene] for gene in genes})
    directions = {name: 1.5 * rng.normal(size=features) for name in touched[::3]}
    rows, vectors = [], []
    for index, gene in enumerate(genes):
        signal = directions.get(complex_of[gene], np.zeros(features))
        for replicate in range(replicates):
            rows.append((f"{gene}_guide_1", (index + replicate * (plates // replicates)) % plates))
            vectors.append(signal + rng.normal(size=features))
    for plate in range(plates):
        for _ in range(controls_per_plate):
            rows.append(("EMPTY_control", plate))
            vectors.append(rng.normal(size=features))
    metadata = pd.DataFrame(rows, columns=["treatment", "plate"])
    metadata = metadata.assign(experiment_name="gene-001", perturbation_type="CRISPR", concentration=np.nan)
    return metadata, np.asarray(vectors)


def build_context(metadata: pd.DataFrame, features: np.ndarray) -> EvalContext:
    design = describe_wells(metadata, RXRX3_CORE)
    return EvalContext(well_features=features, well_metadata=metadata, design=design,
                       perturbation_map=aggregate(features, design), annotations_dir=ANNOTATIONS_DIR)


def timed(function) -> tuple[object, float, float]:
    """`(value, wall seconds, CPU seconds of this process)`."""
    wall, cpu = time.perf_counter(), time.process_time()
    value = function()
    return value, time.perf_counter() - wall, time.process_time() - cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.eval_map", description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="a small screen, 1 repeat: a check that it runs")
    parser.add_argument("--repeats", type=int, help="timed runs of every step, medians reported (default 3)")
    parser.add_argument("--out", type=Path, default=Path("outputs/bench/eval_map.json"))
    args = parser.parse_args(argv)
    size = dict(SMOKE if args.smoke else FULL)
    size["repeats"] = args.repeats or size["repeats"]
    metadata, features = make_screen(**{key: size[key] for key in
                                        ("perturbations", "replicates", "features", "plates", "controls_per_plate")})
    benchmarks = registry()
    map_activity = benchmarks["map_activity"]
    map_consistency = benchmarks["map_consistency"]
    steps = {
        "map_activity (+ shuffled baseline)": lambda context: map_activity.run(context),
        "map_consistency (+ shuffled baseline)": lambda context: map_consistency.run(context),
        "recall, 5 sources (+ 10 permutation baselines)": lambda context: benchmarks["recall"].run(context),
        "recall, 5 sources (no baseline)": lambda context: recall.known_relationship_recall(
            context.perturbation_map, ANNOTATIONS_DIR),
    }
    load_start = os.getloadavg()
    seconds = {name: {"wall": [], "cpu": []} for name in steps}
    outputs = {}
    for _ in range(size["repeats"]):
        context = build_context(metadata, features)
        recall._read_relationships.cache_clear()
        for name, step in steps.items():
            outputs[name], wall, cpu = timed(lambda step=step, context=context: step(context))
            seconds[name]["wall"].append(wall)
            seconds[name]["cpu"].append(cpu)
    medians = {name: {clock: float(np.median(values)) for clock, values in times.items()}
               for name, times in seconds.items()}
    activity = outputs["map_activity (+ shuffled baseline)"]
    consistency = outputs["map_consistency (+ shuffled baseline)"]
    recalls = outputs["recall, 5 sources (+ 10 permutation baselines)"]
    recall_seconds = medians["recall, 5 sources (+ 10 permutation baselines)"]["wall"]
    report = {
        "benchmark": "map_activity, map_consistency beside recall",
        "screen": {key: size[key] for key in ("perturbations", "replicates", "features", "plates",
                                              "controls_per_plate")},
        "wells": len(metadata),
        "map_null_size": DEFAULT_MAP_NULL_SIZE,
        "repeats": size["repeats"],
        "seconds_median": medians,
        "ratio_to_recall_wall": {name: times["wall"] / recall_seconds for name, times in medians.items()},
        "metrics": {**activity.metrics, **consistency.metrics,
                    "recall_mean_0.05_0.95": recalls.metrics.get("recall_mean_0.05_0.95")},
        "baselines": {**activity.baselines, **consistency.baselines,
                      "recall_mean_0.05_0.95": recalls.baselines.get("recall_mean_0.05_0.95")},
        "counts": {key: value for key, value in {**activity.counts, **consistency.counts}.items()
                   if not key.endswith("_recipe")},
        "smoke": args.smoke,
        "load_average_start_end": [list(load_start), list(os.getloadavg())],
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "numpy": np.__version__,
    }
    print(f"{size['perturbations']} perturbations x {size['replicates']} replicates x {size['features']} features "
          f"({len(metadata)} wells with {size['plates']} x {size['controls_per_plate']} controls), median of "
          f"{size['repeats']} repeats, copairs null {DEFAULT_MAP_NULL_SIZE}")
    print(f"{'step':<50}{'wall s':>9}{'cpu s':>9}{'x recall':>10}")
    for name, times in medians.items():
        print(f"{name:<50}{times['wall']:>9.2f}{times['cpu']:>9.2f}{times['wall'] / recall_seconds:>10.2f}")
    print("metrics (baseline): " + ", ".join(f"{name} {value:.3f} ({report['baselines'].get(name, float('nan')):.3f})"
                                             for name, value in report["metrics"].items() if value is not None))
    atomic_write_json(args.out, report)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

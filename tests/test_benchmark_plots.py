"""Benchmark plots: PNGs from real benchmark results (also after a JSON round trip), and their errors."""

import json

import numpy as np
import pytest
from PIL import Image
from test_compound_gene import planted_map
from test_replicate_consistency import plate_map

from eval.benchmark_plots import plot_compound_gene, plot_replicate_cosines
from eval.compound_gene import compound_gene_benchmark
from eval.replicate_consistency import replicate_consistency_benchmark, replicate_cosines, replicate_profiles


def test_compound_gene_plot_from_a_results_json(tmp_path):
    features, metadata, truth = planted_map(concentrations=(0.0025, 0.25, 2.5))
    result = compound_gene_benchmark(features, metadata, interactions=truth, seeds=range(3))
    results = json.loads(json.dumps(result._asdict()))  # what phenom eval writes and a user reads back
    path = plot_compound_gene(results["metrics"], results["metrics_std"], results["baselines"],
                              tmp_path / "plots" / "compound_gene.png")
    with Image.open(path) as image:
        assert image.format == "PNG" and image.width > 300 and image.height > 300
    assert list(path.parent.iterdir()) == [path]  # written atomically: no temporary file left behind
    with pytest.raises(ValueError, match="no compound_gene_ap"):
        plot_compound_gene({"recall_CORUM_0.05_0.95": 0.3}, {}, {}, tmp_path / "empty.png")


def test_replicate_cosine_plot(tmp_path):
    features, metadata = plate_map(signal=0.7, perturbations=10)
    result = replicate_consistency_benchmark(features, metadata, seeds=[0])
    cosines, _ = replicate_cosines(replicate_profiles(features, metadata), seed=0)
    path = plot_replicate_cosines(cosines, tmp_path / "replicates.png", ks=result.metrics["replicate_consistency_ks"],
                                  cm=result.metrics["replicate_consistency_cm"])
    with Image.open(path) as image:
        assert image.format == "PNG"
    with pytest.raises(ValueError, match="non-empty"):
        plot_replicate_cosines(type(cosines)(replicate=np.array([]), null=cosines.null), tmp_path / "x.png")

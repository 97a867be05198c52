"""`python -m bench.data_throughput --smoke` runs from a checkout, times the RxRx3-core and the LoadData TIFF paths and
a resumed half-done pass of each, and writes its JSON report (no timing asserted)."""

import json
import os
import subprocess
import sys

from conftest import REPO_ROOT


def test_data_throughput_benchmark_smoke_mode_runs_the_whole_pipeline_and_writes_json(tmp_path):
    output = tmp_path / "report.json"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "bench.data_throughput", "--smoke", "--output", str(output)],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "rxrx3-core pipeline" in result.stdout and "load-data TIFF pipeline" in result.stdout
    assert "wells/s per core" in result.stdout
    report = json.loads(output.read_text())
    results = report["results"]
    assert report["wells"] == 4 and results["rxrx3-core pipeline"]["wells"] == 4
    assert results["load-data TIFF pipeline"]["wells"] == 4
    assert results["rxrx3-core pipeline, resumed half done"]["wells"] == 2
    assert results["load-data TIFF pipeline, resumed half done"]["wells"] == 2
    assert results["load-data TIFF pipeline, second half only"]["wells"] == 2
    assert results["decode only: pillow"]["wells_per_core_s"] > 0
    assert set(report["resumed_half_done_share_of_full_time_on_finished_wells"]) == {"rxrx3-core pipeline",
                                                                                     "load-data TIFF pipeline"}
    assert report["target_wells_per_core_s"] == 15.0 and isinstance(report["meets_target"], bool)

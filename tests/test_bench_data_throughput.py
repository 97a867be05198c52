"""`python -m bench.data_throughput --smoke` runs from a checkout and writes its JSON report (no timing asserted)."""

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
    assert "pipeline (pillow)" in result.stdout and "wells/s per core" in result.stdout
    report = json.loads(output.read_text())
    assert report["wells"] == 4 and report["results"]["pipeline (pillow)"]["wells"] == 4
    assert report["results"]["decode only: pillow"]["wells_per_core_s"] > 0
    assert report["target_wells_per_core_s"] == 15.0 and isinstance(report["meets_target"], bool)

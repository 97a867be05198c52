"""`python -m bench.eval_recall --smoke` runs, agrees with its EFAAR-style peer and writes its JSON report;
`python -m bench.eval_map --smoke` times the mAP benchmarks beside recall."""

import json
import subprocess
import sys

from conftest import REPO_ROOT


def test_recall_bench_smoke_run_agrees_with_its_peer_and_writes_json(tmp_path):
    out = tmp_path / "eval_recall.json"
    result = subprocess.run([sys.executable, "-m", "bench.eval_recall", "--smoke", "--out", str(out)],
                            capture_output=True, text=True, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["recalls_identical_to_peer"] is True and report["smoke"] is True
    assert report["map"] == {"genes": 200, "dimensions": 64} and report["null_size"] == 200 * 199 // 2
    assert report["ours_seconds"] > 0 and report["peer_seconds"] > 0
    assert "EFAAR-style peer" in result.stdout


def test_map_bench_smoke_run_times_map_beside_recall_and_writes_json(tmp_path):
    out = tmp_path / "eval_map.json"
    result = subprocess.run([sys.executable, "-m", "bench.eval_map", "--smoke", "--out", str(out)],
                            capture_output=True, text=True, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["smoke"] is True and report["screen"]["perturbations"] == 100 and report["wells"] == 464
    seconds = report["seconds_median"]
    assert set(seconds) == {"map_activity (+ shuffled baseline)", "map_consistency (+ shuffled baseline)",
                            "recall, 5 sources (+ 10 permutation baselines)", "recall, 5 sources (no baseline)"}
    assert all(times["wall"] > 0 for times in seconds.values())
    assert report["metrics"]["map_activity_fraction"] > report["baselines"]["map_activity_fraction"]

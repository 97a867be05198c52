"""`python -m bench.encoder_inference --smoke` and `python -m bench.train_step --smoke` run from a checkout and write
their JSON reports with every field the docs read (no timing is asserted: the machine is shared)."""

import json
import os
import subprocess
import sys

from conftest import REPO_ROOT


def run_bench(module: str, out) -> subprocess.CompletedProcess:
    # One OpenMP thread: the smoke geometry is tiny, and two pytest workers share two cores.
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", module, "--smoke", "--out", str(out)], cwd=REPO_ROOT, env=env,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_encoder_inference_smoke_run_compares_phenom_with_vitmae_at_the_same_token_count_in_fp32_and_bf16(tmp_path):
    out = tmp_path / "encoder.json"
    result = run_bench("bench.encoder_inference", out)
    report = json.loads(out.read_text())
    assert report["benchmark"] == "encoder_inference" and report["smoke"] is True
    assert report["precisions"] == ["float32", "bfloat16"]
    assert {"date", "torch", "transformers", "load_average", "cpu_count"} <= set(report["machine"])
    (case,) = report["cases"]
    assert case["batch_size"] == 2 and case["geometry"]["tokens"] == 1 + 2 * 2 * 2  # 2 channels x 2 x 2 patches
    assert set(report["tokens"]["tiny batch 2"].values()) == {case["geometry"]["tokens"]}
    assert {"phenom", "transformers ViTMAE", "phenom bf16", "transformers ViTMAE bf16"} <= set(case["results"])
    assert "timm ParallelScalingBlock ViT" in case["results"] or "timm ParallelScalingBlock ViT" in report["skipped"]
    for name, result_row in case["results"].items():
        assert {"median_seconds", "images_per_s", "flops_per_s", "fraction_of_matmul_peak", "phenom_ratio",
                "fraction_of_bf16_matmul_peak", "phenom_bf16_ratio"} <= set(result_row)
        assert len(result_row["seconds"]) == report["repeats"] == 1
        assert set(result_row["ratios"]) == set(case["results"]) - {name}
    # Every ratio is the inverse of its mirror (one repeat: no median in between).
    bf16_over_vitmae = case["results"]["phenom bf16"]["ratios"]["transformers ViTMAE"]
    assert abs(bf16_over_vitmae * case["results"]["transformers ViTMAE"]["ratios"]["phenom bf16"] - 1) < 1e-9
    assert case["bf16_matmul_peak_flops_per_s"]["median"] > 0
    flops = case["flops_per_image"]
    assert flops["total"] == flops["patch_embedding"] + flops["projections"] + flops["attention"] > 0
    assert case["matmul_peak_flops_per_s"]["median"] > 0
    assert report["targets"]["ratio_vs_vitmae"] == 1.2 and report["targets"]["throughput_batch"] == 2
    assert "tiny batch 2: Phenom bf16 vs ViTMAE float32 >= 2.0" in report["targets"]["met"]
    profiled_names = ("phenom", "transformers ViTMAE", "phenom bf16", "transformers ViTMAE bf16")
    assert set(report["profiles"]) == {f"{name}, tiny, batch 2" for name in profiled_names}
    profiled = report["profiles"]["phenom, tiny, batch 2"]
    assert {"matmul", "attention"} <= set(profiled["categories"]) and profiled["top_ops"][0]["self_s"] > 0
    assert "transformers ViTMAE" in result.stdout and "GFLOP/s" in result.stdout


def test_train_step_smoke_run_trains_both_models_in_fp32_and_bf16_with_and_without_checkpointing(tmp_path):
    out = tmp_path / "train_step.json"
    result = run_bench("bench.train_step", out)
    report = json.loads(out.read_text())
    assert report["benchmark"] == "train_step" and report["smoke"] is True and "Lion" in report["optimizer"]
    models = {"phenom", "transformers ViTMAE"}
    assert report["precisions"] == ["float32", "bfloat16"]
    assert set(report["results"]) == {f"{name}{precision}{checkpointing}" for name in models
                                      for precision in ("", " bf16") for checkpointing in ("", " + checkpointing")}
    for label, row in report["results"].items():
        assert {"median_seconds", "images_per_s", "model_flops_per_s", "fraction_of_matmul_peak",
                "fraction_of_bf16_matmul_peak", "phenom_ratio"} <= set(row)
        assert all(loss == loss and loss > 0 for loss in row["losses"])  # a finite positive MAE loss
        assert (row["precision"] == "bfloat16") == ("bf16_speedup" in row) == (" bf16" in label)
    assert report["geometry"]["decoder_type"] == "standard" and report["geometry"]["mask_ratio"] == 0.75
    memory = report["peak_memory"]["phenom"]
    assert memory["peak_rss_bytes"] >= memory["rss_after_build_bytes"] > 0
    assert set(report["profiles"]) == models | {f"{name} bf16" for name in models}
    assert report["flops"]["step"] == 3 * report["flops"]["forward_per_image"] * report["batch_size"]
    assert "Phenom / ViTMAE >= 1.1" in " ".join(report["targets"]["met"]) and "s/step" in result.stdout


def test_gpu_check_script_runs_its_whole_code_path_on_tiny_sizes_and_writes_json(tmp_path):
    # No GPU is lent here: the script's --dry-run runs the same inference and g8-step code on the CPU at tiny sizes.
    out = tmp_path / "gpu_check.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHON": sys.executable}  # this interpreter, not PATH's
    result = subprocess.run(["bash", str(REPO_ROOT / "bench" / "gpu_check.sh"), str(out), "--device", "cpu",
                             "--dry-run"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["benchmark"] == "gpu_check" and report["dry_run"] is True
    assert report["peaks_flops_per_s"]["measured_bf16_peak"] > 0
    assert set(report["inference"]["results"]) == {"bfloat16", "float32"}
    for row in report["inference"]["results"].values():
        assert row["images_per_s"] > 0 and 0 < row["mfu_vs_measured_bf16_peak"]
    training = report["training"]
    assert training["precision"] == "bf16 autocast" and training["geometry"]["hidden_size"] == 64  # dry-run sizes
    assert set(training["results"]) == {"no checkpointing", "checkpointing"}
    for row in training["results"].values():
        assert row["steps_per_s"] > 0 and all(loss == loss and loss > 0 for loss in row["losses"])
    assert "wrote" in result.stdout


def test_gpu_check_knows_datasheet_bf16_peaks_by_device_name(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO_ROOT))  # bench/ runs from a checkout, it is not installed
    from bench.gpu_check import datasheet_peak

    assert datasheet_peak("NVIDIA H100 80GB HBM3") == 989e12
    assert datasheet_peak("NVIDIA H100 PCIe") == 756e12
    assert datasheet_peak("NVIDIA H200") == 989e12
    assert datasheet_peak("NVIDIA A100-SXM4-80GB") == 312e12
    assert datasheet_peak("NVIDIA L40S") == 362e12 and datasheet_peak("NVIDIA L4") == 121e12
    assert datasheet_peak("Tesla V100-SXM2-16GB") is None

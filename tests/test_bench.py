"""``mosa bench`` timing helpers and the MoMask-shaped baseline script (tiny sizes)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from mosa import bench
from mosa.loading import load
from tiny_models import write_tiny_pipeline

ROOT = Path(__file__).resolve().parents[1]


def test_time_interleaved_alternates_and_takes_medians():
    order: list[str] = []

    def run(name: str, values: list[float]):
        def once(r: int) -> dict[str, float]:
            order.append(f"{name}{r}")
            return {"ms": values[r] if r >= 0 else -1.0}

        return once

    t = bench.time_interleaved(
        {"a": run("a", [5.0, 1.0, 3.0, 100.0]), "b": run("b", [2.0, 2.0, 8.0, 4.0])},
        repeats=4,
        warmup=1,
    )
    # warm-up first, then A B, B A, A B, B A: neither always runs first
    assert order == ["a-1", "b-1", "a0", "b0", "b1", "a1", "a2", "b2", "b3", "a3"]
    assert t == {"a": {"ms": 4.0}, "b": {"ms": 3.0}}  # medians of 1,3,5,100 and 2,2,4,8
    assert bench.time_stages(run("c", [7.0, 1.0, 2.0]), repeats=3, warmup=0) == {"ms": 2.0}


def test_bench_pipeline_tiny(tmp_path):
    torch.set_num_threads(1)
    pipe = load(write_tiny_pipeline(tmp_path / "ckpt"), "cpu")
    row = bench.bench_pipeline(pipe, batch=2, frames=96, repeats=2, warmup=1)
    assert row["batch"] == 2 and row["frames"] == 96 and row["cfg"] == 3.0
    stages = row["text_ms"] + row["sar_ms"] + row["decode_ms"]
    assert all(row[k] > 0 for k in ("text_ms", "sar_ms", "decode_ms"))
    assert row["ms_per_motion"] == pytest.approx(stages / 2, abs=2e-3)
    assert row["ms_per_motion_no_text"] == pytest.approx((stages - row["text_ms"]) / 2, abs=2e-3)


def test_momask_baseline_script_runs(capsys):
    spec = importlib.util.spec_from_file_location(
        "momask_baseline", ROOT / "benchmarks" / "momask_baseline.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    args = ["--dim", "32", "--layers", "1", "--heads", "2", "--ff", "64", "--frames", "40"]
    args += ["--repeats", "1", "--warmup", "0", "--threads", "1", "--device", "cpu", "--int8"]
    assert mod.main(args + ["--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    [row] = report["results"]
    mosa, mosa8 = row["mosa"], row["mosa_int8"]
    assert mosa["sar_ms"] > 0 and mosa8["sar_ms"] > 0
    for key in ("momask_baseline", "batched_baseline"):  # both styles, timed in one run
        base = row[key]
        assert mosa["frames"] == base["frames"] == 40
        assert base["gen_ms"] > 0
        assert base["ratio_over_mosa"] == pytest.approx(
            base["ms_per_motion"] / mosa["ms_per_motion"], rel=1e-2
        )
        assert base["ratio_over_mosa_int8"] == pytest.approx(
            base["ms_per_motion"] / mosa8["ms_per_motion"], rel=1e-2
        )
    assert mod.main(args) == 0  # the text report prints every contender
    text = capsys.readouterr().out
    assert "mosa_int8" in text and "baseline (momask)" in text and "baseline (batched)" in text


def test_momask_styles_compute_the_same_guided_hidden_states():
    """The two-pass (MoMask's code) and doubled-batch styles differ in speed only."""
    spec = importlib.util.spec_from_file_location(
        "momask_baseline", ROOT / "benchmarks" / "momask_baseline.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    torch.manual_seed(0)
    a = mod.TokenTransformer(8, 16, 2, 2, 32, "momask").eval()
    b = mod.TokenTransformer(8, 16, 2, 2, 32, "batched").eval()
    b.load_state_dict(a.state_dict())
    x, pooled = torch.randn(3, 5, 16), torch.randn(3, 8)
    pad = torch.zeros(3, 5, dtype=torch.bool)
    with torch.inference_mode():
        ha, hb = a.run(x, pooled, pad, guided=True), b.run(x, pooled, pad, guided=True)
    assert ha.shape == hb.shape == (6, 5, 16)
    torch.testing.assert_close(ha, hb, atol=1e-5, rtol=1e-4)
    assert not torch.allclose(ha[:3], ha[3:])  # the null condition changes the rows


def test_bench_peak_memory_and_dtype(tmp_path):
    torch.set_num_threads(1)
    pipe = load(write_tiny_pipeline(tmp_path / "ckpt"), "cpu")
    row = bench.bench_pipeline(pipe, batch=2, frames=48, repeats=1, warmup=0, dtype="bf16")
    assert row["dtype"] == "bf16"
    if bench.reset_peak_rss():  # Linux: the peak of this batch size alone
        assert row["peak_rss_mb"] >= bench.rss_mb() * 0.5
    with pytest.raises(bench.MosaError, match="dtype"):
        bench.run_bench(batch=[1], checkpoint=tmp_path / "ckpt", device="cpu", dtype="fp8")


def test_gpu_script_runs_on_cpu(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("gpu_bench", ROOT / "benchmarks" / "gpu.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    ckpt = write_tiny_pipeline(tmp_path / "ckpt")
    out = tmp_path / "gpu.json"
    args = ["--device", "cpu", "--tiny", "--checkpoint", str(ckpt), "--threads", "1"]
    assert mod.main(args + ["--dtypes", "fp32", "bf16", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert [g["dtype"] for g in report["generation"]] == ["fp32", "bf16"]
    assert [r["batch"] for r in report["generation"][0]["results"]] == [1, 2]
    for t in report["training"]:
        assert t["steps_per_s"] > 0 and t["tokens_per_s"] > 0
        assert t["tokens_per_s"] == pytest.approx(t["steps_per_s"] * t["valid_tokens_per_batch"],
                                                  rel=0.01)  # fmt: skip
    assert "| fp32 | 1 |" in capsys.readouterr().out

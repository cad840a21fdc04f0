"""``mosa bench`` timing helpers and the MoMask-shaped baseline script (tiny sizes)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from mosa import bench
from mosa.generate import load
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
    args += ["--repeats", "1", "--warmup", "0", "--threads", "1", "--device", "cpu", "--json"]
    assert mod.main(args) == 0
    report = json.loads(capsys.readouterr().out)
    [row] = report["results"]
    mosa, base = row["mosa"], row["momask_baseline"]
    assert mosa["frames"] == base["frames"] == 40
    assert base["gen_ms"] > 0 and mosa["sar_ms"] > 0
    assert row["ratio_baseline_over_mosa"] == pytest.approx(
        base["ms_per_motion"] / mosa["ms_per_motion"], rel=1e-2
    )

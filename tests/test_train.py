"""Training infrastructure: schedule, state round trips, exact resume, DDP, CLI, metrics."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file, save_file

from mosa.cli import train_vae as cli_train_vae
from mosa.errors import MosaError
from mosa.eval.reconstruction import (
    evaluate_tokenizer,
    joint_errors,
    plot_scale_curve,
)
from mosa.models.vae import VAEConfig, load_vae
from mosa.train import vae as train_vae_mod
from mosa.train.common import MetricsLogger, TrainConfig, lr_at, read_json_config
from mosa.train.state import load_optimizer_state, optimizer_state, rng_state, set_rng_state

TINY_MODEL = dict(
    width=32, depth=1, attn_blocks=1, attn_heads=2, code_dim=16, codebook_size=32, num_phi=2
)
TINY_TRAIN = dict(
    batch_size=3, lr=1e-3, warmup_steps=2, window=48, log_every=1, val_every=0, ckpt_every_s=1e9
)


@pytest.fixture(scope="session")
def fake_data(hml_sample: Path, tmp_path_factory) -> Path:
    """A HumanML3D-layout folder cut from the two real sample clips (9 train, 2 val, 2 test)."""
    root = tmp_path_factory.mktemp("hml")
    (root / "new_joint_vecs").mkdir()
    (root / "texts").mkdir()
    clips = [
        np.load(hml_sample / f"{n}_new_joint_vecs.npy").astype(np.float32)
        for n in ("000612", "012314")
    ]
    names = []
    for c, clip in enumerate(clips):
        for j, start in enumerate(range(0, len(clip) - 60, 18)):
            name = f"c{c}_{j:02d}"
            length = 60 + 4 * (j % 4)
            np.save(root / "new_joint_vecs" / f"{name}.npy", clip[start : start + length])
            (root / "texts" / f"{name}.txt").write_text(
                "a person moves.#a/DET person/NOUN move/VERB#0.0#0.0\n"
            )
            names.append(name)
    np.save(root / "Mean.npy", np.load(hml_sample / "Mean.npy"))
    np.save(root / "Std.npy", np.load(hml_sample / "Std.npy"))
    (root / "train.txt").write_text("\n".join(names[:-4]) + "\n")
    (root / "val.txt").write_text("\n".join(names[-4:-2]) + "\n")
    (root / "test.txt").write_text("\n".join(names[-2:]) + "\n")
    return root


def _args(data: Path, out: Path, **kw) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli_train_vae.add_arguments(parser)
    argv = ["--data", str(data), "--out", str(out)]
    for k, v in kw.items():
        flag = "--" + k.replace("_", "-")
        argv += [flag] if v is True else [flag, str(v)]
    return parser.parse_args(argv)


def _write_config(path: Path, **train) -> Path:
    path.write_text(json.dumps({"model": TINY_MODEL, "train": {**TINY_TRAIN, **train}}))
    return path


# -- pieces --------------------------------------------------------------------------------


def test_lr_schedule_hand_values():
    cfg = TrainConfig(lr=1.0, warmup_steps=4, max_steps=14, min_lr_ratio=0.1)
    assert lr_at(0, cfg) == pytest.approx(0.25)
    assert lr_at(3, cfg) == pytest.approx(1.0)
    assert lr_at(4, cfg) == pytest.approx(1.0)
    assert lr_at(9, cfg) == pytest.approx(0.1 + 0.9 * 0.5)  # half way: cos(pi/2) = 0
    assert lr_at(14, cfg) == pytest.approx(0.1)
    assert lr_at(100, cfg) == pytest.approx(0.1)


def test_optimizer_and_rng_state_round_trip(tmp_path):
    torch.manual_seed(0)
    net = torch.nn.Linear(4, 3)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-2)
    for _ in range(3):
        opt.zero_grad()
        net(torch.randn(5, 4)).pow(2).sum().backward()
        opt.step()
    tensors, meta = optimizer_state(opt)
    save_file(tensors, str(tmp_path / "opt.safetensors"))
    meta = json.loads(json.dumps(meta))  # must survive JSON
    opt2 = torch.optim.AdamW(net.parameters(), lr=5.0)
    load_optimizer_state(opt2, load_file(str(tmp_path / "opt.safetensors")), meta)
    s1, s2 = opt.state_dict(), opt2.state_dict()
    assert s2["param_groups"][0]["lr"] == pytest.approx(1e-2)
    for pid in s1["state"]:
        for key, value in s1["state"][pid].items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(s2["state"][pid][key]))

    rt, rm = rng_state()
    expected = (torch.rand(3), np.random.rand(3), __import__("random").random())
    set_rng_state(rt, json.loads(json.dumps(rm)))
    again = (torch.rand(3), np.random.rand(3), __import__("random").random())
    assert torch.equal(expected[0], again[0])
    assert np.array_equal(expected[1], again[1]) and expected[2] == again[2]


def test_metrics_logger_grows_columns_and_truncates(tmp_path):
    log = MetricsLogger(tmp_path / "m.csv")
    log.log({"step": 1, "loss": 0.5})
    log.log({"step": 2, "loss": 0.25, "val": 3.0})
    log.log({"step": 3, "loss": 0.125})
    lines = (tmp_path / "m.csv").read_text().splitlines()
    assert lines[0] == "step,loss,val"
    assert lines[2] == "2,0.25,3"
    again = MetricsLogger(tmp_path / "m.csv")
    again.truncate(2)
    again.log({"step": 3, "loss": 1.0})
    assert (tmp_path / "m.csv").read_text().splitlines()[1:] == ["1,0.5,", "2,0.25,3", "3,1,"]


def test_json_config_errors_name_the_line(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{\n  "model": {"width": 32,}\n}\n')
    with pytest.raises(MosaError, match="bad.json:2"):
        read_json_config(bad)
    with pytest.raises(MosaError, match="does not exist"):
        read_json_config(tmp_path / "missing.json")


def test_joint_errors_hand_computed(hml_sample):
    """Raise the pelvis by 0.1 m (feature 3 is the root height): only joint 0 moves."""
    mean = torch.tensor(np.load(hml_sample / "Mean.npy"))
    std = torch.tensor(np.load(hml_sample / "Std.npy"))
    raw = torch.tensor(np.load(hml_sample / "012314_new_joint_vecs.npy"))[None, :80]
    x = (raw - mean) / std
    pred = x.clone()
    pred[..., 3] += 0.1 / std[3]
    mask = torch.ones(1, 80, dtype=torch.bool)
    mask[0, 60:] = False
    g, ra, count = joint_errors(pred, x, mask, mean, std)
    assert float(count) == 60 * 22
    assert float(g / count) * 1000 == pytest.approx(100 / 22, rel=1e-4)
    # root-aligned: the other 21 joints move 0.1 m relative to the pelvis
    assert float(ra / count) * 1000 == pytest.approx(100 * 21 / 22, rel=1e-4)
    g0, _, _ = joint_errors(x, x, mask, mean, std)
    assert float(g0) == 0.0


# -- training runs ------------------------------------------------------------------------


def _params(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path / "model.safetensors"))


def _losses(out: Path) -> list[str]:
    rows = (out / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    i = header.index("loss")
    return [r.split(",")[i] for r in rows[1:] if r.split(",")[i]]


def test_resume_continues_exactly(fake_data, tmp_path):
    model = VAEConfig(**TINY_MODEL)
    train = TrainConfig(**{**TINY_TRAIN, "max_steps": 6})  # 11 items / 3 = 3 batches an epoch
    a, b = tmp_path / "a", tmp_path / "b"
    train_vae_mod.train_vae(fake_data, a, model, train, quiet=True)
    # interrupted after 3 steps (same schedule), then resumed from b/last
    train_vae_mod.train_vae(fake_data, b, model, train, quiet=True, until_step=3)
    assert json.loads((b / "last" / "config.json").read_text())["meta"]["trainer"]["step"] == 3
    train_vae_mod.train_vae(fake_data, b, model, train, quiet=True, resume=True)
    pa, pb = _params(a / "last"), _params(b / "last")
    assert pa.keys() == pb.keys()
    for k in pa:
        assert torch.equal(pa[k], pb[k]), k
    assert len(_losses(a)) == 6
    assert _losses(a) == _losses(b)
    # the comparison can fail: another seed gives other weights
    c = tmp_path / "c"
    train_vae_mod.train_vae(fake_data, c, model, dataclasses.replace(train, seed=1), quiet=True)
    pc = _params(c / "last")
    assert any(not torch.equal(pa[k], pc[k]) for k in pa)


def test_cli_run_writes_checkpoints_and_evaluates(fake_data, tmp_path):
    cfg = _write_config(tmp_path / "cfg.json")
    out = tmp_path / "run"
    assert cli_train_vae.run(_args(fake_data, out, config=cfg, max_steps=8, val_every=4)) == 0
    for sub in ("last", "best"):
        assert (out / sub / "model.safetensors").is_file() and (out / sub / "mean.npy").is_file()
    assert (out / "last" / "optimizer.safetensors").is_file()
    assert not (out / "best" / "optimizer.safetensors").exists()
    header = (out / "metrics.csv").read_text().splitlines()[0].split(",")
    for col in ("step", "epoch", "lr", "loss", "recon", "vel", "joint_m", "commit", "wall_s"):
        assert col in header
    assert "val_mpjpe_mm" in header and "val_mpjpe_global_mm" in header
    model, mean, _ = load_vae(out / "best")
    assert model.config.width == 32 and mean.shape == (263,)

    res = evaluate_tokenizer(out / "best", fake_data, "test")
    assert res["num_motions"] == 2
    assert len(res["scale_curve"]["mpjpe_mm"]) == 10
    assert res["scale_curve"]["mpjpe_mm"][-1] == pytest.approx(res["mpjpe_mm"])
    assert len(res["codebook"]) == 10 and res["codebook"][0]["utilisation"] > 0
    assert res["mpjpe_mm"] > 0 and res["feature_l1"] > 0
    assert res["mpjpe_global_mm"] >= res["scale_curve"]["mpjpe_global_mm"][-1] - 1e-9
    assert len(res["scale_curve"]["mpjpe_global_mm"]) == 10
    png = plot_scale_curve({"a": res, "b": res}, tmp_path / "curve.png")
    assert png.stat().st_size > 1000


def test_cli_rejects_bad_window(fake_data, tmp_path):
    with pytest.raises(MosaError, match="window"):
        cli_train_vae.run(_args(fake_data, tmp_path / "x", window=50))


def test_build_configs_precedence(tmp_path):
    cfg = _write_config(tmp_path / "cfg.json", max_steps=11)
    args = _args(Path("unused"), tmp_path, config=cfg, batch_size=5)
    model, train = cli_train_vae.configs_from_args(args)
    assert model.width == 32
    assert train.max_steps == 11 and train.batch_size == 5 and train.window == 48
    assert dataclasses.asdict(train)["lr"] == pytest.approx(1e-3)


# -- distributed --------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, data: str, out: str) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
        WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
    )  # fmt: skip
    torch.set_num_threads(1)
    import mosa.train.common as common

    seen = {}
    original = common.Trainer.fit

    def fit_and_capture(self, *args, **kwargs):
        summary = original(self, *args, **kwargs)
        seen.update({k: v.detach().clone() for k, v in self.model.state_dict().items()})
        return summary

    common.Trainer.fit = fit_and_capture
    model = VAEConfig(**TINY_MODEL)
    train = TrainConfig(**{**TINY_TRAIN, "max_steps": 2, "batch_size": 2})
    train_vae_mod.train_vae(data, out, model, train, device="cpu", quiet=True)
    save_file(seen, str(Path(out) / f"rank{rank}.safetensors"))


def test_ddp_two_processes_keep_identical_weights(fake_data, tmp_path):
    out = tmp_path / "ddp"
    out.mkdir()
    mp.spawn(_ddp_worker, args=(2, _free_port(), str(fake_data), str(out)), nprocs=2, join=True)
    r0 = load_file(str(out / "rank0.safetensors"))
    r1 = load_file(str(out / "rank1.safetensors"))
    for k in r0:
        assert torch.equal(r0[k], r1[k]), k  # weights and codebook buffers agree
    assert bool(r0["quantizer.codebooks.0.initted"])
    init = load_file(str(out / "last" / "model.safetensors"))
    assert torch.equal(init["decoder.conv_out.weight"], r0["decoder.conv_out.weight"])
    meta = json.loads((out / "last" / "config.json").read_text())["meta"]["trainer"]
    assert meta["step"] == 2

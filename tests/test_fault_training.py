"""Training state under faults: damaged ``last/`` copies, ``kill -9`` during checkpoint writes,
temporaries left behind, and runs that must not be overwritten by mistake.

Every damaged ``last/`` either resumes exactly (bit-identical weights and losses) from an
intact older copy with a message, or stops with a ``MosaError`` naming the file and the fix.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import multiprocessing
import os
import random
import shutil
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from mosa.checkpoint import save_checkpoint
from mosa.cli import main as mosa_main
from mosa.errors import MosaError
from mosa.models.vae import CAQVAE, VAEConfig
from mosa.train.common import TrainConfig, Trainer
from mosa.train.rundir import LOCK_FILE, open_run, remove_temp_leftovers
from mosa.train.state import LAST_COPIES, Unusable, check_training_checkpoint
from mosa.train.vae import train_vae

TINY_MODEL = dict(
    width=32, depth=1, attn_blocks=1, attn_heads=2, code_dim=16, codebook_size=32, num_phi=2
)
TINY_TRAIN = dict(
    batch_size=3, lr=1e-3, warmup_steps=2, window=48, log_every=1, val_every=0, ckpt_every_s=1e9
)
STEPS = 4  # 11 training items / 3 = 3 batches an epoch
MODEL = VAEConfig(**TINY_MODEL)
TRAIN = TrainConfig(**{**TINY_TRAIN, "max_steps": STEPS})


@pytest.fixture(scope="module")
def data(hml_sample: Path, tmp_path_factory) -> Path:
    """A HumanML3D-layout folder cut from the two real sample clips (11 train, 2 val, 2 test)."""
    root = tmp_path_factory.mktemp("hml")
    (root / "new_joint_vecs").mkdir()
    (root / "texts").mkdir()
    names = []
    for c, clip_name in enumerate(("000612", "012314")):
        clip = np.load(hml_sample / f"{clip_name}_new_joint_vecs.npy").astype(np.float32)
        for j, start in enumerate(range(0, len(clip) - 60, 18)):
            name = f"c{c}_{j:02d}"
            np.save(root / "new_joint_vecs" / f"{name}.npy", clip[start : start + 60 + 4 * (j % 4)])
            (root / "texts" / f"{name}.txt").write_text(
                "a person moves.#a/DET person/NOUN#0.0#0.0\n"
            )
            names.append(name)
    for stat in ("Mean", "Std"):
        np.save(root / f"{stat}.npy", np.load(hml_sample / f"{stat}.npy"))
    (root / "train.txt").write_text("\n".join(names[:-4]) + "\n")
    (root / "val.txt").write_text("\n".join(names[-4:-2]) + "\n")
    (root / "test.txt").write_text("\n".join(names[-2:]) + "\n")
    return root


@pytest.fixture(scope="module")
def runs(data, tmp_path_factory) -> dict[str, Path]:
    """``ref``: an uninterrupted run of STEPS steps; ``seed``: the same run stopped twice, so it
    holds ``last`` (step 3) and ``last.prev`` (step 2)."""
    root = tmp_path_factory.mktemp("runs")
    train_vae(data, root / "ref", MODEL, TRAIN, quiet=True)
    train_vae(data, root / "seed", MODEL, TRAIN, quiet=True, until_step=2)
    train_vae(data, root / "seed", MODEL, TRAIN, quiet=True, until_step=3, resume=True)
    assert _step(root / "seed" / "last") == 3 and _step(root / "seed" / "last.prev") == 2
    return {"ref": root / "ref", "seed": root / "seed"}


def _step(folder: Path) -> int:
    return json.loads((folder / "config.json").read_text())["meta"]["trainer"]["step"]


def _losses(out: Path) -> list[str]:
    with (out / "metrics.csv").open() as fh:
        return [row["loss"] for row in csv.DictReader(fh) if row.get("loss")]


def _assert_same_run(a: Path, b: Path) -> None:
    _assert_same_weights(a, b)
    assert _losses(a) == _losses(b) and len(_losses(a)) == STEPS


def _assert_same_weights(a: Path, b: Path) -> None:
    wa = load_file(str(a / "last" / "model.safetensors"))
    wb = load_file(str(b / "last" / "model.safetensors"))
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


# -- damaged copies --------------------------------------------------------------------------


def _truncate(name):
    def damage(last: Path) -> None:
        raw = (last / name).read_bytes()
        (last / name).write_bytes(raw[: len(raw) // 3])

    return damage


def _edit_config(fn):
    def damage(last: Path) -> None:
        payload = json.loads((last / "config.json").read_text())
        fn(payload)
        (last / "config.json").write_text(json.dumps(payload))

    return damage


def _replace_folder(make):
    def damage(last: Path) -> None:
        shutil.rmtree(last)
        make(last)

    return damage


def _set_step(value):
    return _edit_config(lambda p: p["meta"]["trainer"].update(step=value))


# name -> (damage to last/, what the error names)
DAMAGE = {
    "truncated-model": (_truncate("model.safetensors"), "last/model.safetensors is corrupt"),
    "truncated-optimizer": (
        _truncate("optimizer.safetensors"),
        "last/optimizer.safetensors is corrupt",
    ),
    "truncated-rng": (_truncate("rng.safetensors"), "last/rng.safetensors is corrupt"),
    "empty-model": (
        lambda last: (last / "model.safetensors").write_bytes(b""),
        "model.safetensors",
    ),
    "truncated-config": (_truncate("config.json"), "last/config.json is not valid JSON"),
    "changed-width": (
        _edit_config(lambda p: p["config"].update(width=48)),
        "last/model.safetensors does not fit the model config",
    ),
    "no-meta-optimizer": (
        _edit_config(lambda p: p["meta"].pop("optimizer")),
        "last/config.json has no meta.optimizer",
    ),
    "step-fraction": (_set_step(2.5), "meta.trainer.step = 2.5"),
    "step-text": (_set_step("3"), "meta.trainer.step = '3'"),
    "step-negative": (_set_step(-1), "meta.trainer.step = -1"),
    "last-is-a-file": (_replace_folder(lambda p: p.write_text("x")), "last is a file"),
    "empty-last": (_replace_folder(lambda p: p.mkdir()), "last is empty"),
    "no-optimizer-file": (
        lambda last: (last / "optimizer.safetensors").unlink(),
        "last/optimizer.safetensors is missing",
    ),
    "no-rng-file": (lambda last: (last / "rng.safetensors").unlink(), "rng.safetensors is missing"),
    "no-model-file": (
        lambda last: (last / "model.safetensors").unlink(),
        "model.safetensors is missing",
    ),
}


def _damaged_copy(runs, tmp_path: Path, damage: str, keep_prev: bool) -> Path:
    out = tmp_path / "run"
    shutil.copytree(runs["seed"], out, symlinks=True)
    if not keep_prev:
        shutil.rmtree(out / "last.prev")
    DAMAGE[damage][0](out / "last")
    return out


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_last_without_an_intact_copy_is_a_clear_error(data, runs, tmp_path, damage):
    out = _damaged_copy(runs, tmp_path, damage, keep_prev=False)
    before = sorted(p.name for p in out.iterdir())
    with pytest.raises(MosaError) as info:
        train_vae(data, out, MODEL, TRAIN, quiet=True, resume=True)
    message = info.value.message.replace(str(out) + os.sep, "")
    assert DAMAGE[damage][1] in message
    assert "--force" in info.value.hint and "backup" in info.value.hint
    assert sorted(p.name for p in out.iterdir()) == before  # nothing written, nothing moved


# the damage the issue names run every time; the other kinds (each a resume of 2 steps) are slow
ISSUE_DAMAGE = ("truncated-model", "truncated-optimizer", "truncated-rng", "changed-width",
                "no-meta-optimizer", "step-fraction", "step-negative", "last-is-a-file",
                "empty-last", "no-optimizer-file")  # fmt: skip


@pytest.mark.parametrize(
    "damage", [d if d in ISSUE_DAMAGE else pytest.param(d, marks=pytest.mark.slow) for d in DAMAGE]
)
def test_damaged_last_resumes_exactly_from_the_copy_before(data, runs, tmp_path, damage, capsys):
    out = _damaged_copy(runs, tmp_path, damage, keep_prev=True)
    train_vae(data, out, MODEL, TRAIN, quiet=True, resume=True)
    err = capsys.readouterr().err
    assert f"resuming from {out / 'last.prev'} (step 2) instead" in err
    assert DAMAGE[damage][1] in err.replace(str(out) + os.sep, "")
    assert (out / "last.corrupt").exists()  # set aside, not deleted
    _assert_same_run(runs["ref"], out)


def test_a_kill_mid_swap_resumes_from_last_old(data, runs, tmp_path, capsys):
    """atomic_dir moved last to last.old and was killed before the new one took its place."""
    out = tmp_path / "run"
    shutil.copytree(runs["seed"], out)
    os.replace(out / "last", out / "last.old")
    train_vae(data, out, MODEL, TRAIN, quiet=True, resume=True)
    err = capsys.readouterr().err
    assert "last is missing" in err and f"resuming from {out / 'last.old'} (step 3)" in err
    _assert_same_run(runs["ref"], out)


@dataclasses.dataclass
class _TinyConfig:
    width: int = 4


class _TinyNet(torch.nn.Module):
    def __init__(self, config: _TinyConfig):
        super().__init__()
        self.config, self.lin = config, torch.nn.Linear(config.width, 1)

    def forward(self, x):
        return self.lin(x)


def _tiny_trainer(out: Path) -> Trainer:
    torch.manual_seed(0)
    net = _TinyNet(_TinyConfig())
    items = [{"x": torch.randn(4)} for _ in range(6)]

    def save_fn(path, meta=None, extra_tensors=None):
        save_checkpoint(path, "tiny", net.config, net.state_dict(), meta=meta,
                        extra_tensors=extra_tensors)  # fmt: skip

    cfg = TrainConfig(max_steps=6, batch_size=2, warmup_steps=0, log_every=1, val_every=0,
                      ckpt_every_s=0)  # fmt: skip
    return Trainer(net, cfg, out, dataset=items, save_fn=save_fn,
                   collate_fn=lambda b: {"x": torch.stack([i["x"] for i in b])})  # fmt: skip


def test_trainer_resume_finds_the_intact_copy_itself(tmp_path):
    """``Trainer.resume()`` without a point checks the copies on models of their own."""

    def step_fn(model, batch):
        return model(batch["x"]).pow(2).mean(), {}

    ref = _tiny_trainer(tmp_path / "ref")
    ref.fit(step_fn)
    _tiny_trainer(tmp_path / "run").fit(step_fn, until_step=3)
    _truncate("model.safetensors")(tmp_path / "run" / "last")
    again = _tiny_trainer(tmp_path / "run")
    assert again.resume() and again.step == 3  # last.prev: the step-3 checkpoint before the end
    again.fit(step_fn)
    for name, value in ref.model.state_dict().items():
        assert torch.equal(value, again.model.state_dict()[name]), name


def test_every_copy_damaged_names_each(data, runs, tmp_path):
    out = _damaged_copy(runs, tmp_path, "truncated-model", keep_prev=True)
    (out / "last.prev" / "optimizer.safetensors").unlink()
    with pytest.raises(MosaError) as info:
        train_vae(data, out, MODEL, TRAIN, quiet=True, resume=True)
    assert "last/model.safetensors is corrupt" in info.value.message
    assert "last.prev/optimizer.safetensors is missing" in info.value.message


def test_resume_with_nothing_to_resume_says_so(data, tmp_path, capsys):
    out = tmp_path / "fresh"
    out.mkdir()
    (out / "config.json").write_text("{}")  # a run killed before its first log: not a run
    summary = train_vae(data, out, MODEL, dataclasses.replace(TRAIN, max_steps=1), resume=True)
    assert summary["step"] == 1
    assert f"nothing to resume in {out}" in capsys.readouterr().err


# -- runs are never overwritten by mistake ------------------------------------------------------


TRAINER_ARGV = {
    "vae": ["--data", "DATA"],
    "gen": ["--vae", "nowhere", "--data", "DATA"],
    "length": ["--data", "DATA"],
    "evaluator": ["--data", "DATA"],
}


@pytest.mark.parametrize("trainer", list(TRAINER_ARGV))
def test_trainers_refuse_an_existing_run(tmp_path, capsys, trainer):
    out = tmp_path / "run"
    out.mkdir()
    marker = "log.csv" if trainer == "evaluator" else "metrics.csv"
    (out / marker).write_text("step,loss\n1,0.5\n")
    (out / "best").mkdir()
    argv = ["train", trainer, *TRAINER_ARGV[trainer], "--out", str(out)]
    assert mosa_main(argv) == 2
    err = capsys.readouterr().err
    assert f"a training run already exists in {out}" in err and marker in err and "--force" in err
    assert ("--resume" in err) == (trainer != "evaluator")
    assert (out / marker).read_text() == "step,loss\n1,0.5\n"
    if trainer != "evaluator":
        assert mosa_main([*argv, "--resume", "--force"]) == 2
        assert "contradict" in capsys.readouterr().err


def test_force_starts_a_fresh_run(data, runs, tmp_path, capsys):
    out = tmp_path / "run"
    shutil.copytree(runs["seed"], out)
    (out / "notes.txt").write_text("mine")  # not the run's: kept
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"model": TINY_MODEL, "train": {**TINY_TRAIN, "max_steps": STEPS}}))
    argv = ["train", "vae", "--data", str(data), "--out", str(out), "--config", str(cfg)]
    assert mosa_main([*argv, "--device", "cpu", "--force"]) == 0
    assert "--force: deleted the previous run" in capsys.readouterr().err
    assert (out / "notes.txt").read_text() == "mine"
    _assert_same_run(runs["ref"], out)  # metrics.csv holds the fresh run's rows only


def test_second_run_in_the_same_folder_is_refused(tmp_path):
    with (
        open_run(tmp_path / "run", resume=False, force=False),
        pytest.raises(MosaError, match="another training run is writing to"),
    ):
        open_run(tmp_path / "run", resume=True, force=False)
    with open_run(tmp_path / "run", resume=True, force=False):  # released with the first
        pass


# -- temporaries left by killed writers ----------------------------------------------------


needs_fork = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")


@needs_fork
def test_leftovers_removed_are_mosa_own_only(tmp_path):
    out = tmp_path / "run"
    for d in ("last", "cache", "best"):
        (out / d).mkdir(parents=True)
    dead = 4_194_304 + 12345  # above Linux's largest pid: never a live process
    with multiprocessing.get_context("fork").Pool(1) as pool:
        alive = pool.apply(os.getpid)  # a live process other than ours
        stale = [
            ".last.ab_12xyz.tmp/", ".best.k0k0k0k0.tmp/", ".metrics.q1w2e3r4.tmp.csv",
            f".metrics.{dead}-abcdefgh.tmp.csv", f".config.{dead}-abcdefgh.tmp.json",
            f"cache/.tokens_train_0a1b.{dead}-zzzzzzzz.tmp.safetensors",
            f"last/.pipeline.{dead}-abcdefgh.tmp.json",
        ]  # fmt: skip
        kept = [
            f".metrics.{alive}-abcdefgh.tmp.csv",  # its writer is alive
            ".mine.abcdefgh.tmp", ".last.tmp", ".last.notes", "last.tmp",  # not mosa's names
            "best/.something.abcdefgh.tmp.txt",
        ]  # fmt: skip
        for name in stale + kept:
            path = out / name.rstrip("/")
            path.mkdir() if name.endswith("/") else path.write_text("x")
        with open_run(out, resume=True, force=False) as run:
            assert run.notes == [
                f"removed {len(stale)} temporary file(s) an interrupted run left in {out}"
            ]
            left = {str(p.relative_to(out)) for p in out.rglob("*")}
            assert remove_temp_leftovers(out) == []  # the live writer's file stays
    assert not {n.rstrip("/") for n in stale} & left
    assert {n.rstrip("/") for n in kept} <= left and LOCK_FILE in left


# -- kill -9 at random moments, then --resume -------------------------------------------------


def _child(argv: list[str]) -> None:
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.dup2(null, 2)
    torch.set_num_threads(1)
    os._exit(mosa_main(argv))


def _logged_step(out: Path) -> int:
    try:
        with (out / "metrics.csv").open() as fh:
            return max((int(r["step"]) for r in csv.DictReader(fh) if r.get("loss")), default=0)
    except (OSError, ValueError, KeyError):
        return 0


def _intact_step(out: Path) -> int:
    """The step of the newest copy of the training state a resume would take."""
    steps = [0]
    for name in LAST_COPIES:
        try:
            point = check_training_checkpoint(out / name, lambda c: CAQVAE(VAEConfig.from_dict(c)))
            steps.append(point.step)
        except Unusable:
            pass
    return max(steps)


def _temp_names(out: Path) -> list[str]:
    return sorted(p.name for p in out.rglob(".*") if ".tmp" in p.name)


@needs_fork
def test_kill_during_checkpoints_then_resume_is_exact(data, tmp_path):
    """A run writing a checkpoint after every step is killed with SIGKILL three times (twice
    the moment a checkpoint write is seen under way, once at a random moment); each restart
    with --resume loses at most one step, and the finished run is the uninterrupted one."""
    steps = 12
    train = {**TINY_TRAIN, "max_steps": steps, "ckpt_every_s": 0}
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps({"model": TINY_MODEL, "train": train}))
    out = tmp_path / "run"
    argv = ["train", "vae", "--data", str(data), "--out", str(out), "--config", str(cfg),
            "--device", "cpu", "--resume"]  # fmt: skip
    ctx = multiprocessing.get_context("fork")  # torch is imported already: starts in ms
    rng = random.Random(0)
    during_write = 0
    for k, target in enumerate((2, 5, 8)):
        proc = ctx.Process(target=_child, args=(argv,), daemon=True)
        proc.start()
        deadline = time.time() + 30
        while _logged_step(out) < target and proc.is_alive() and time.time() < deadline:
            time.sleep(0.002)
        seen = set(os.listdir(out))
        if k == 1:
            time.sleep(rng.uniform(0, 0.05))
        else:  # kill the moment a checkpoint write is under way
            while proc.is_alive() and time.time() < deadline:
                names = set(os.listdir(out))
                if any(n.startswith(".last.") for n in names - seen) or "last" not in names:
                    during_write += 1
                    break
                seen = names
        assert proc.is_alive(), "the run ended before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.join()
        assert _intact_step(out) >= _logged_step(out) - 1  # at most one step lost
    assert during_write >= 1
    proc = ctx.Process(target=_child, args=(argv,), daemon=True)
    proc.start()
    proc.join(60)
    assert proc.exitcode == 0
    assert _temp_names(out) == []  # what the kills left was cleaned at the next start

    ref = tmp_path / "ref"
    train_vae(data, ref, MODEL, TrainConfig(**train), quiet=True)
    _assert_same_weights(ref, out)
    assert _losses(ref) == _losses(out) and len(_losses(out)) == steps

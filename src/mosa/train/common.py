"""Training infrastructure shared by ``mosa train vae`` / ``gen`` / ``evaluator``.

- ``TrainConfig``: optimisation and bookkeeping settings (JSON section ``"train"``).
- warm-up + cosine LR, gradient clipping, bf16/fp16 autocast on GPU (seeding, device choice and
  distributed setup from torchrun's env vars: ``mosa.train.distributed``).
- ``MetricsLogger``: a CSV of step, epoch, lr, losses, val metrics and wall time.
- ``Trainer``: the loop. Periodic atomic ``out/last`` checkpoints hold the model plus
  optimizer / step / RNG state (safetensors + JSON, no pickle: ``mosa.train.state``), the one
  before stays as ``out/last.prev``; ``out/best`` follows the validation metric; ``resume()``
  continues exactly where the newest intact copy stopped.

Exact resume: batches come from a ``DistributedSampler`` order that depends only on
(seed, epoch), and the global RNGs are re-seeded from (seed, rank, step) before every step, so
the data crops and any random op in step ``s`` are the same whether or not the run was
interrupted before ``s``. Items are loaded in the main process for the same reason.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import dataclasses
import inspect
import io
import json
import math
import os
import random
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import Dataset, DistributedSampler
from tqdm import tqdm

from mosa.checkpoint import config_from_dict
from mosa.errors import MosaError
from mosa.io import atomic_write_text
from mosa.train.distributed import DistEnv, step_seed
from mosa.train.state import (
    OPTIMIZER_FILE,
    ResumePoint,
    find_resume_point,
    keep_previous,
    load_optimizer_state,
    optimizer_state,
    rng_state,
    set_rng_state,
)


@dataclass
class TrainConfig:
    max_steps: int = 20000
    batch_size: int = 64
    lr: float = 2e-4
    min_lr_ratio: float = 0.05  # cosine decays to lr * min_lr_ratio at max_steps
    warmup_steps: int = 200
    weight_decay: float = 0.0
    beta1: float = 0.9
    beta2: float = 0.99
    grad_clip: float = 1.0  # max global grad norm; 0 disables
    precision: str = "auto"  # "auto" (bf16/fp16 on GPU, fp32 on CPU), "fp32", "bf16", "fp16"
    window: int = 64  # training crop length in frames
    min_len: int = 40  # shortest motion used
    log_every: int = 10  # steps between CSV rows / progress updates
    val_every: int = 500  # steps between validations (0: once per epoch)
    ckpt_every_s: float = 300.0  # seconds between ``last`` checkpoints
    max_time_s: float = 0.0  # stop after this much training time (0: no limit)
    seed: int = 0

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        cfg = config_from_dict(cls, data)
        if cfg.precision not in ("auto", "fp32", "bf16", "fp16"):
            raise MosaError(f"unknown precision {cfg.precision!r}", "use auto, fp32, bf16 or fp16")
        if cfg.batch_size < 1 or cfg.max_steps < 1 or cfg.lr <= 0:
            raise MosaError(
                "train config: batch_size and max_steps must be >= 1 and lr > 0",
                "fix the train section of the config",
            )
        return cfg


# --------------------------------------------------------------------------------------------
# schedule, precision


def lr_at(step: int, cfg: TrainConfig, elapsed_s: float = 0.0) -> float:
    """Linear warm-up to ``cfg.lr`` then cosine decay to ``cfg.lr * cfg.min_lr_ratio``.

    With a time budget (``max_time_s > 0``) the cosine follows whichever of steps or time is
    further along, so a run stopped by the clock still ends annealed.
    """
    if cfg.warmup_steps > 0 and step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    span = max(cfg.max_steps - cfg.warmup_steps, 1)
    t = min(max(step - cfg.warmup_steps, 0) / span, 1.0)
    if cfg.max_time_s > 0:
        t = max(t, min(elapsed_s / cfg.max_time_s, 1.0))
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t)))


def autocast_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    """Autocast dtype for ``precision`` on ``device`` (None: full fp32)."""
    if precision == "fp32" or (precision == "auto" and device.type != "cuda"):
        return None
    if precision == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if precision == "bf16" else torch.float16


def autocast(device: torch.device, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


# --------------------------------------------------------------------------------------------
# metrics CSV


class MetricsLogger:
    """Rows of metrics in a CSV, rewritten atomically so it is never half-written.

    Columns grow as new keys appear. ``truncate(step)`` drops rows after ``step`` (on resume).
    """

    def __init__(self, path: str | os.PathLike, enabled: bool = True):
        self.path = Path(path)
        self.enabled = enabled
        self.rows: list[dict[str, Any]] = []
        self.columns: list[str] = []
        if enabled and self.path.is_file():
            with self.path.open(newline="") as fh:
                reader = csv.DictReader(fh)
                self.columns = list(reader.fieldnames or [])
                self.rows = [dict(r) for r in reader]

    def truncate(self, step: int) -> None:
        self.rows = [r for r in self.rows if int(float(r.get("step") or 0)) <= step]

    def log(self, row: dict[str, Any]) -> None:
        if not self.enabled:
            return
        for key in row:
            if key not in self.columns:
                self.columns.append(key)
        self.rows.append({k: _fmt(v) for k, v in row.items()})
        self.flush()

    def flush(self) -> None:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=self.columns, restval="")
        writer.writeheader()
        writer.writerows(self.rows)
        atomic_write_text(self.path, buf.getvalue())


def _fmt(v: Any) -> Any:
    if isinstance(v, float):
        return f"{v:.6g}"
    return v


# --------------------------------------------------------------------------------------------
# the loop

StepFn = Callable[[nn.Module, dict], tuple[torch.Tensor, dict[str, float]]]
ValFn = Callable[[nn.Module], dict[str, float]]
SaveFn = Callable[..., Any]  # save_fn(path, meta=..., extra_tensors=...)


class Trainer:
    """Generic training loop over a map-style dataset.

    ``step_fn(model, batch) -> (loss, logs)`` runs under autocast with the (possibly DDP
    wrapped) model; ``val_fn(model) -> metrics`` runs on rank 0 with the bare model in eval
    mode; ``save_fn(path, meta=..., extra_tensors=...)`` writes a model checkpoint folder
    (e.g. ``CAQVAE.save`` with mean/std bound). ``best_metric`` (lower is better unless
    ``maximize``) selects ``out/best``.
    """

    def __init__(
        self,
        model: nn.Module,
        cfg: TrainConfig,
        out_dir: str | os.PathLike,
        *,
        dataset: Dataset,
        collate_fn: Callable[[list], dict],
        save_fn: SaveFn,
        env: DistEnv | None = None,
        device: torch.device | None = None,
        best_metric: str = "val_loss",
        maximize: bool = False,
        param_groups: Sequence[dict] | None = None,
    ):
        self.cfg = cfg
        self.env = env or DistEnv()
        self.device = device or torch.device("cpu")
        self.out = Path(out_dir)
        self.model = model.to(self.device)
        self.dataset, self.collate_fn, self.save_fn = dataset, collate_fn, save_fn
        self.best_metric, self.maximize = best_metric, maximize
        params = param_groups if param_groups is not None else model.parameters()
        self.optimizer = torch.optim.AdamW(
            params, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), weight_decay=cfg.weight_decay
        )
        self.amp_dtype = autocast_dtype(self.device, cfg.precision)
        self.scaler = torch.amp.GradScaler("cuda") if self.amp_dtype == torch.float16 else None
        self.ddp = self.model
        if self.env.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            # codebook buffers are kept in sync by the quantizer itself (all-reduced EMA stats),
            # so DDP need not broadcast them every forward
            sync = (
                {"forward_sync_buffers": False}
                if "forward_sync_buffers" in inspect.signature(DDP.__init__).parameters
                else {"broadcast_buffers": False}
            )
            self.ddp = DDP(self.model, device_ids=ids, **sync)
        self.step = 0
        self.epoch = 0
        self.batch_in_epoch = 0
        self.best: float | None = None
        self.best_step = -1
        self.elapsed = 0.0  # training seconds over all runs (resumes add up)
        self.metrics = MetricsLogger(self.out / "metrics.csv", enabled=self.env.is_main)
        if len(dataset) < cfg.batch_size * self.env.world_size:
            raise MosaError(
                f"the training set has {len(dataset)} items, fewer than one batch of "
                f"{cfg.batch_size} x {self.env.world_size} processes",
                "lower --batch-size or add data",
            )

    # -- checkpoints -------------------------------------------------------------------------
    def _trainer_meta(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "best": self.best,
            "best_step": self.best_step,
            "best_metric": self.best_metric,
            "elapsed_s": self.elapsed,
            "scaler": self.scaler.state_dict() if self.scaler else None,
        }

    def save_last(self) -> None:
        if not self.env.is_main:
            return
        opt_tensors, opt_meta = optimizer_state(self.optimizer)
        rng_tensors, rng_meta = rng_state()
        meta = {
            "trainer": self._trainer_meta(),
            "optimizer": opt_meta,
            "rng": rng_meta,
            "train_config": dataclasses.asdict(self.cfg),
        }
        last = keep_previous(self.out / "last")  # last.prev: what a damaged last falls back to
        self.save_fn(last, meta=meta, extra_tensors={"optimizer": opt_tensors, "rng": rng_tensors})

    def save_best(self, metrics: dict[str, float]) -> None:
        if self.env.is_main:
            meta = {
                "step": self.step,
                "metrics": metrics,
                "train_config": dataclasses.asdict(self.cfg),
            }
            self.save_fn(self.out / "best", meta=meta)

    def write_run_config(self, settings: dict[str, Any]) -> None:
        """Write the run's settings to ``out/config.json`` (what was trained, on what data)."""
        atomic_write_text(self.out / "config.json", json.dumps(settings, indent=2) + "\n")

    def resume(self, point: ResumePoint | None = None) -> bool:
        """Continue from ``point`` (``find_resume_point``; None: look for one in ``out``,
        checked against this trainer's model): model, optimizer, counters, RNG. False when
        the folder holds no checkpoint yet (the run starts at step 0)."""
        if point is None:
            point = find_resume_point(  # each copy is checked on a model of its own
                self.out, lambda config: copy.deepcopy(self.model), is_main=self.env.is_main
            )
        if point is None:
            self.metrics.truncate(0)  # rows of a run stopped before its first checkpoint
            return False
        if point.model is not self.model:
            self.model.load_state_dict(point.model.state_dict())
        meta = point.payload["meta"]
        try:
            load_optimizer_state(self.optimizer, point.optimizer, meta["optimizer"])
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise MosaError(
                f"{point.folder / OPTIMIZER_FILE} does not fit this run's optimizer ({exc})",
                "resume with the settings the run was started with, or start afresh with --force",
            ) from None
        t = meta["trainer"]
        self.step, self.epoch, self.batch_in_epoch = t["step"], t["epoch"], t["batch_in_epoch"]
        self.best, self.best_step, self.elapsed = t["best"], t["best_step"], t["elapsed_s"]
        if self.scaler and t.get("scaler"):
            self.scaler.load_state_dict(t["scaler"])
        if self.env.is_main:
            set_rng_state(point.rng, meta["rng"])
        self.metrics.truncate(self.step)
        return True

    # -- data --------------------------------------------------------------------------------
    def _batches(self, epoch: int) -> list[list[int]]:
        sampler = DistributedSampler(
            self.dataset,
            num_replicas=self.env.world_size,
            rank=self.env.rank,
            shuffle=True,
            seed=self.cfg.seed,
            drop_last=True,
        )
        sampler.set_epoch(epoch)
        idx = list(sampler)
        bs = self.cfg.batch_size
        return [idx[i : i + bs] for i in range(0, len(idx) - bs + 1, bs)]

    def _stream(self) -> Iterator[list[int]]:
        """Index batches from the current (epoch, batch_in_epoch) onwards, forever."""
        while True:
            batches = self._batches(self.epoch)
            for b in batches[self.batch_in_epoch :]:
                self.batch_in_epoch += 1  # counted as consumed before its step runs
                yield b
            self.epoch += 1
            self.batch_in_epoch = 0

    def _to_device(self, batch: dict) -> dict:
        return {k: v.to(self.device) if torch.is_tensor(v) else v for k, v in batch.items()}

    # -- loop --------------------------------------------------------------------------------
    def _validate(self, val_fn: ValFn | None) -> dict[str, float]:
        metrics: dict[str, float] = {}
        if val_fn is not None and self.env.is_main:
            self.model.eval()
            with torch.no_grad():
                metrics = val_fn(self.model)
            self.model.train()
            value = metrics.get(self.best_metric)
            if value is not None and math.isfinite(value):
                better = self.best is None or (
                    value > self.best if self.maximize else value < self.best
                )
                if better:
                    self.best, self.best_step = float(value), self.step
                    self.save_best(metrics)
        if self.env.enabled:
            dist.barrier()
        return metrics

    def _clock(self, start: float) -> float:
        """Training seconds so far, rank 0's value on every rank (drives LR and stopping)."""
        elapsed = torch.tensor(
            [self.elapsed + time.time() - start], dtype=torch.float64, device=self.device
        )  # on the device: NCCL cannot broadcast CPU tensors
        if self.env.enabled and self.cfg.max_time_s > 0:
            dist.broadcast(elapsed, 0)
        return float(elapsed.item())

    def _should_stop(self, clock: float) -> bool:
        if self.step >= self.cfg.max_steps:
            return True
        return self.cfg.max_time_s > 0 and clock >= self.cfg.max_time_s

    def fit(
        self, step_fn: StepFn, val_fn: ValFn | None = None, until_step: int | None = None
    ) -> dict[str, Any]:
        """Train until ``max_steps`` (or ``max_time_s``); returns a summary.

        ``until_step`` stops earlier without changing the LR schedule (training in chunks:
        a later ``resume()`` + ``fit`` continues as if never stopped).
        """
        cfg = self.cfg
        self.model.train()
        start = time.time()
        last_ckpt = time.time()
        bar = tqdm(
            total=cfg.max_steps,
            initial=self.step,
            disable=not self.env.is_main,
            dynamic_ncols=True,
            mininterval=1.0 if sys.stderr.isatty() else 30.0,
        )
        stream = self._stream()
        epoch_seen = self.epoch
        val_metrics: dict[str, float] = {}
        window: list[dict[str, float]] = []
        while until_step is None or self.step < until_step:
            clock = self._clock(start)
            if self._should_stop(clock):
                break
            idx = next(stream)
            if cfg.val_every == 0 and self.epoch != epoch_seen:
                epoch_seen = self.epoch
                val_metrics = self._validate(val_fn)
                self._log_val(val_metrics, start)
            s = step_seed(cfg.seed, self.env.rank, self.step)
            torch.manual_seed(s)
            np.random.seed(s % 2**32)
            random.seed(s)
            batch = self._to_device(self.collate_fn([self.dataset[i] for i in idx]))
            lr = lr_at(self.step, cfg, clock)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            logs = self._train_step(step_fn, batch)
            self.step += 1
            window.append(logs)
            bar.update(1)
            if self.step % cfg.log_every == 0 or self.step == cfg.max_steps:
                avg = {k: float(np.mean([w[k] for w in window if k in w])) for k in window[-1]}
                window = []
                bar.set_postfix(loss=f"{avg.get('loss', float('nan')):.4f}", lr=f"{lr:.2e}")
                row = {"step": self.step, "epoch": self.epoch, "lr": lr, **avg}
                row["wall_s"] = self.elapsed + time.time() - start
                self.metrics.log(row)
            if cfg.val_every > 0 and self.step % cfg.val_every == 0:
                val_metrics = self._validate(val_fn)
                self._log_val(val_metrics, start)
            if time.time() - last_ckpt >= cfg.ckpt_every_s:
                self._checkpoint(start)
                start, last_ckpt = time.time(), time.time()
        bar.close()
        finished = self.step >= cfg.max_steps or until_step is None
        if finished and val_fn is not None and (cfg.val_every == 0 or self.step % cfg.val_every):
            val_metrics = self._validate(val_fn)
            self._log_val(val_metrics, start)
        self._checkpoint(start)
        return {
            "step": self.step,
            "best": self.best,
            "best_step": self.best_step,
            "val": val_metrics,
            "elapsed_s": self.elapsed,
        }

    def _checkpoint(self, start: float) -> None:
        self.elapsed += time.time() - start
        self.save_last()

    def _log_val(self, metrics: dict[str, float], start: float) -> None:
        if not metrics or not self.env.is_main:
            return
        row = {"step": self.step, "epoch": self.epoch, **metrics}
        row["wall_s"] = self.elapsed + time.time() - start
        self.metrics.log(row)
        shown = ", ".join(f"{k} {v:.4g}" for k, v in metrics.items())
        tqdm.write(f"step {self.step}: {shown}")

    def _train_step(self, step_fn: StepFn, batch: dict) -> dict[str, float]:
        with autocast(self.device, self.amp_dtype):
            loss, logs = step_fn(self.ddp, batch)
        if not torch.isfinite(loss):
            raise MosaError(
                f"training diverged at step {self.step} (loss {float(loss)})",
                "lower --lr or resume from out/last with a smaller learning rate",
            )
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
        else:
            loss.backward()
        if self.cfg.grad_clip > 0:
            norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
            logs = {**logs, "grad_norm": float(norm)}
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        return {"loss": float(loss.detach()), **logs}


def read_json_config(path: str | os.PathLike | None) -> dict[str, Any]:
    """A JSON config file as a dict (``{}`` for None); errors name the file and line."""
    if path is None:
        return {}
    path = Path(path)
    if not path.is_file():
        raise MosaError(f"config file {path} does not exist", "pass an existing JSON file")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise MosaError(
            f"{path}:{exc.lineno}: invalid JSON ({exc.msg})", "fix the JSON syntax"
        ) from exc
    if not isinstance(data, dict):
        raise MosaError(f"{path}: expected a JSON object", 'use {"model": {...}, "train": {...}}')
    return data


def report_done(summary: dict[str, Any], out: str | os.PathLike, metric: str, fmt: str) -> None:
    """Print the closing line of a training run (rank 0 only), e.g. ``best val loss 2.4 ...``."""
    if int(os.environ.get("RANK", "0")) != 0:
        return
    best = summary["best"]
    best_text = "n/a" if best is None else f"{fmt.format(best)} at step {summary['best_step']}"
    print(
        f"done: {summary['step']} steps; best {metric} {best_text}; "
        f"checkpoints in {out}/best and {out}/last"
    )

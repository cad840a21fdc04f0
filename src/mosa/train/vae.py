"""``mosa train vae``: train the CAQ-VAE motion tokenizer on a HumanML3D-layout folder.

Losses (weights in the model config): smooth-L1 feature reconstruction, smooth-L1 on the
temporal difference of the features (velocity), L1 on global joint positions recovered from
the de-normalised features (metres), and the quantizer's commitment loss.

Writes ``out/last`` (model + optimizer/step/RNG state, every ``ckpt_every_s`` and at the end),
``out/best`` (lowest validation MPJPE, root-aligned as MoMask) and ``out/metrics.csv``. Works under
``torchrun --nproc_per_node N -m mosa.cli train vae ...`` (DDP, gloo on CPU / NCCL on GPU).
"""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from mosa.errors import MosaError
from mosa.eval.reconstruction import evaluate_model
from mosa.models.vae import CAQVAE, KIND, VAEConfig
from mosa.motion.features import recover_joints
from mosa.train.balance import RepeatedItems, balance_repeats, read_actions, resumed_balance
from mosa.train.common import TrainConfig, Trainer, read_json_config
from mosa.train.distributed import cleanup_distributed, init_distributed
from mosa.train.rundir import open_run
from mosa.train.state import find_resume_point


def build_configs(
    config: str | os.PathLike | None = None, overrides: dict[str, Any] | None = None
) -> tuple[VAEConfig, TrainConfig]:
    """Model and train configs: defaults < ``config`` JSON < ``overrides``.

    ``overrides``: ``TrainConfig`` fields (the command-line flags); ``None`` values are unset.
    """
    data = read_json_config(config)
    model = VAEConfig.from_dict(data.get("model", {}))
    train = TrainConfig.from_dict(data.get("train", {}))
    flags = overrides or {}
    train = dataclasses.replace(train, **{k: v for k, v in flags.items() if v is not None})
    train = TrainConfig.from_dict(dataclasses.asdict(train))
    if train.window < train.min_len or train.window % model.downsample:
        raise MosaError(
            f"--window {train.window} must be >= min_len {train.min_len} and a multiple of "
            f"{model.downsample}",
            "use e.g. --window 64",
        )
    return model, train


def _masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``x (B, T, ...)`` over valid frames ``mask (B, T)``."""
    m = mask.to(x.dtype).reshape(*mask.shape, *([1] * (x.ndim - 2)))
    per_frame = x[0, 0].numel()
    return (x * m).sum() / (m.sum() * per_frame).clamp(min=1)


def vae_losses(
    model: torch.nn.Module,
    batch: dict,
    mean: torch.Tensor,
    std: torch.Tensor,
    cfg: VAEConfig,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Total training loss of one batch and its parts (floats, for logging)."""
    x, mask, lengths = batch["motion"], batch["mask"], batch["lengths"]
    out = model(x, lengths)
    recon = out.recon.float()
    rec = _masked_mean(F.smooth_l1_loss(recon, x, reduction="none"), mask)
    vmask = mask[:, 1:] & mask[:, :-1]
    dv = F.smooth_l1_loss(recon[:, 1:] - recon[:, :-1], x[:, 1:] - x[:, :-1], reduction="none")
    vel = _masked_mean(dv, vmask)
    pj = recover_joints(recon * std + mean)  # (B, T, 22, 3) metres, global
    with torch.no_grad():
        tj = recover_joints(x * std + mean)
    joint = _masked_mean((pj - tj).abs(), mask)
    loss = (
        cfg.w_recon * rec + cfg.w_vel * vel + cfg.w_joint * joint + cfg.w_commit * out.commit_loss
    )
    logs = {
        "recon": float(rec.detach()),
        "vel": float(vel.detach()),
        "joint_m": float(joint.detach()),
        "commit": float(out.commit_loss.detach()),
    }
    for key in ("ppl_0", f"ppl_{cfg.num_scales - 1}"):
        if key in out.stats:
            logs[key] = out.stats[key]
    logs["restarts"] = sum(v for k, v in out.stats.items() if k.startswith("restarts_"))
    return loss, logs


def train_vae(
    data_dir: str | Path,
    out_dir: str | Path,
    model_cfg: VAEConfig,
    train_cfg: TrainConfig,
    *,
    resume: bool = False,
    force: bool = False,
    device: str | None = None,
    val_items: int | None = None,
    quiet: bool = False,
    until_step: int | None = None,
    init: str | Path | None = None,
    balance: tuple[str, float, int] | None = None,
) -> dict[str, Any]:
    """Train a tokenizer; returns the trainer's summary (step, best, last val metrics).

    ``init`` warm-starts from a tokenizer checkpoint folder: its weights, model config and
    normalisation (mean/std), so a fine-tuned tokenizer reads features as the old one did.
    ``balance = (pattern, power, cap)`` repeats the crops of rare groups of items
    (``mosa.train.balance.balance_repeats``; ``None``: every item once per epoch).

    A folder that holds a run is continued with ``resume`` (from the newest intact copy of
    its training state: ``mosa.train.state.find_resume_point``; the checkpoint's model config
    wins over ``model_cfg``) or deleted and started afresh with ``force``; otherwise
    ``MosaError`` (``mosa.train.rundir.open_run``).
    """
    from mosa.data.dataset import MotionDataset, collate_motions

    env, dev = init_distributed(device)
    out, run = Path(out_dir), None
    try:
        run = open_run(out, resume=resume, force=force, is_main=env.is_main)
        notes = list(run.notes)
        point = None
        if resume:
            point = find_resume_point(
                out, lambda c: CAQVAE(VAEConfig.from_dict(c)), kind=KIND, is_main=env.is_main
            )
            balance = resumed_balance(out, balance)
            if point is None:
                notes.append(f"nothing to resume in {out} (no checkpoint yet): starting at step 0")
            else:
                model_cfg = VAEConfig.from_dict(point.payload["config"])
                notes += point.notes
        start_model, mean, std = _start_from(init, point, data_dir)
        if start_model is not None and point is None:
            model_cfg = start_model.config
        if env.is_main:
            for note in notes:
                print(f"train vae: {note}", file=sys.stderr)
        torch.manual_seed(train_cfg.seed)  # same initial weights on every rank
        train_set = MotionDataset(
            data_dir,
            "train",
            min_len=train_cfg.min_len,
            max_len=train_cfg.window,
            unit=model_cfg.downsample,
            mean=mean,
            std=std,
            random_crop=True,
        )
        val_set = MotionDataset(data_dir, "val", mean=mean, std=std, random_crop=False, seed=0)
        if point is not None:
            model = point.model
        else:
            model = start_model if start_model is not None else CAQVAE(model_cfg)
        train_data = train_set
        if balance is not None:
            names = [it.name.split("@")[0] for it in train_set.items]
            repeats = balance_repeats(names, *balance, actions=read_actions(data_dir))
            train_data = RepeatedItems(train_set, repeats)
        mean_t = torch.as_tensor(mean, device=dev)
        std_t = torch.as_tensor(std, device=dev)

        def save_fn(path, meta=None, extra_tensors=None):
            meta = {**(meta or {}), "data": str(data_dir)}
            if init is not None:
                meta["init"] = str(init)
            if balance is not None:
                meta["balance"] = list(balance)
            model.save(path, mean, std, meta=meta, extra_tensors=extra_tensors)

        trainer = Trainer(
            model,
            train_cfg,
            out,
            dataset=train_data,
            collate_fn=collate_motions,
            save_fn=save_fn,
            env=env,
            device=dev,
            best_metric="val_mpjpe_mm",
        )
        resumed = trainer.resume(point) if resume else False
        if env.is_main and not quiet:
            n_params = model.num_parameters()
            print(
                f"train vae: {len(train_data)} train ({len(train_set)} motions) / "
                f"{len(val_set)} val motions, "
                f"{n_params / 1e6:.2f}M parameters, device {dev}, {env.world_size} process(es)"
                + (f", resumed at step {trainer.step}" if resumed else ""),
                file=sys.stderr,
            )
            cfg_text = {
                "model": dataclasses.asdict(model_cfg),
                "train": dataclasses.asdict(train_cfg),
                "init": None if init is None else str(init),
                "balance": list(balance) if balance else None,
            }
            trainer.write_run_config(cfg_text)

        def step_fn(m, batch):
            return vae_losses(m, batch, mean_t, std_t, model_cfg)

        def val_fn(m):
            res = evaluate_model(
                m, val_set, mean, std, device=dev, scale_curve=False, max_items=val_items
            )
            util = float(np.mean([c["utilisation"] for c in res["codebook"]]))
            return {
                "val_mpjpe_mm": res["mpjpe_mm"],  # root-aligned (MoMask's protocol)
                "val_mpjpe_global_mm": res["mpjpe_global_mm"],
                "val_feature_l1": res["feature_l1"],
                "val_code_util": util,
            }

        return trainer.fit(step_fn, val_fn, until_step=until_step)
    finally:
        if run is not None:
            run.close()
        cleanup_distributed()


def _start_from(init, point, data_dir) -> tuple[CAQVAE | None, np.ndarray, np.ndarray]:
    """The model to start from (``init``'s weights, or None) and the normalisation to train
    with: a resumed run's or ``init``'s own mean/std, else the dataset's ``Mean/Std.npy``."""
    from mosa.data.dataset import load_mean_std
    from mosa.models.vae import load_vae

    if point is not None and (Path(point.folder) / "mean.npy").is_file():
        folder = Path(point.folder)
        return None, np.load(folder / "mean.npy"), np.load(folder / "std.npy")
    if init is not None:
        model, mean, std = load_vae(init, "cpu")
        return (model if point is None else None), mean, std
    mean, std = load_mean_std(data_dir)
    return None, mean, std

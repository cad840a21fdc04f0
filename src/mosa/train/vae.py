"""``mosa train vae``: train the CAQ-VAE motion tokenizer on a HumanML3D-layout folder.

Losses (weights in the model config): smooth-L1 feature reconstruction, smooth-L1 on the
temporal difference of the features (velocity), L1 on global joint positions recovered from
the de-normalised features (metres), and the quantizer's commitment loss.

Writes ``out/last`` (model + optimizer/step/RNG state, every ``ckpt_every_s`` and at the end),
``out/best`` (lowest validation MPJPE, root-aligned as MoMask) and ``out/metrics.csv``. Works under
``torchrun --nproc_per_node N -m mosa.cli train vae ...`` (DDP, gloo on CPU / NCCL on GPU).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from mosa.errors import MosaError
from mosa.eval.reconstruction import evaluate_model
from mosa.models.vae import CAQVAE, VAEConfig
from mosa.motion.features import recover_joints
from mosa.train.common import (
    TrainConfig,
    Trainer,
    cleanup_distributed,
    init_distributed,
    module_main,
    read_json_config,
    report_done,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="HumanML3D-layout dataset folder")
    parser.add_argument("--out", required=True, help="output folder (last/, best/, metrics.csv)")
    parser.add_argument(
        "--config", help='JSON file {"model": {VAEConfig fields}, "train": {TrainConfig fields}}'
    )
    parser.add_argument(
        "--resume", action="store_true", help="continue from OUT/last (its model config wins)"
    )
    parser.add_argument("--max-steps", type=int, help="total optimisation steps")
    parser.add_argument("--batch-size", type=int, help="motions per batch per process")
    parser.add_argument("--lr", type=float, help="peak learning rate")
    parser.add_argument("--seed", type=int, help="random seed")
    parser.add_argument("--window", type=int, help="training crop length in frames")
    parser.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda if available)")
    parser.add_argument("--val-every", type=int, help="steps between validations")
    parser.add_argument("--max-minutes", type=float, help="stop after this much training time")
    parser.add_argument("--val-items", type=int, default=None, help="cap on validation motions")


def build_configs(args: argparse.Namespace) -> tuple[VAEConfig, TrainConfig]:
    """Model and train configs: defaults < --config JSON < command-line flags."""
    data = read_json_config(args.config)
    model = VAEConfig.from_dict(data.get("model", {}))
    train = TrainConfig.from_dict(data.get("train", {}))
    flags = {
        "max_steps": args.max_steps,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "seed": args.seed,
        "window": args.window,
        "val_every": args.val_every,
        "max_time_s": None if args.max_minutes is None else args.max_minutes * 60,
    }
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
    device: str | None = None,
    val_items: int | None = None,
    quiet: bool = False,
    until_step: int | None = None,
) -> dict[str, Any]:
    """Train a tokenizer; returns the trainer's summary (step, best, last val metrics)."""
    from mosa.data.dataset import MotionDataset, collate_motions, load_mean_std

    env, dev = init_distributed(device)
    try:
        out = Path(out_dir)
        if resume:
            from mosa.train.common import load_training_checkpoint

            last = out / "last"
            if (last / "config.json").is_file() or (out / "last.old").is_dir():
                _, payload = load_training_checkpoint(last)
                model_cfg = VAEConfig.from_dict(payload["config"])
        torch.manual_seed(train_cfg.seed)  # same initial weights on every rank
        mean, std = load_mean_std(data_dir)
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
        model = CAQVAE(model_cfg)
        mean_t = torch.as_tensor(mean, device=dev)
        std_t = torch.as_tensor(std, device=dev)

        def save_fn(path, meta=None, extra_tensors=None):
            meta = {**(meta or {}), "data": str(data_dir)}
            model.save(path, mean, std, meta=meta, extra_tensors=extra_tensors)

        trainer = Trainer(
            model,
            train_cfg,
            out,
            dataset=train_set,
            collate_fn=collate_motions,
            save_fn=save_fn,
            env=env,
            device=dev,
            best_metric="val_mpjpe_mm",
        )
        resumed = trainer.resume() if resume else False
        if env.is_main and not quiet:
            n_params = model.num_parameters()
            print(
                f"train vae: {len(train_set)} train / {len(val_set)} val motions, "
                f"{n_params / 1e6:.2f}M parameters, device {dev}, {env.world_size} process(es)"
                + (f", resumed at step {trainer.step}" if resumed else ""),
                file=sys.stderr,
            )
            cfg_text = {
                "model": dataclasses.asdict(model_cfg),
                "train": dataclasses.asdict(train_cfg),
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
        cleanup_distributed()


def run(args: argparse.Namespace) -> int:
    model_cfg, train_cfg = build_configs(args)
    summary = train_vae(
        args.data,
        args.out,
        model_cfg,
        train_cfg,
        resume=args.resume,
        device=args.device,
        val_items=args.val_items,
    )
    report_done(summary, args.out, "val MPJPE", "{:.1f} mm")
    return 0


def main(argv: list[str] | None = None) -> int:
    return module_main("python -m mosa.train.vae", __doc__, add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())

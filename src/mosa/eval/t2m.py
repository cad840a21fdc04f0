"""Load the official HumanML3D / KIT-ML evaluator of Guo et al. 2022 from local files.

``mosa eval --evaluator t2m:PATH`` points at the evaluator folder of the T2M / MoMask releases
(``checkpoints/t2m``, or ``checkpoints`` holding ``t2m/``)::

    PATH/text_mot_match/model/finest.tar      text_encoder, movement_encoder, motion_encoder weights
    PATH/Comp_v6_KLD005/meta/{mean,std}.npy   the normalisation the evaluator was trained with
                                              (any PATH/*/meta/ or PATH/meta/ is accepted)
    glove/our_vab_{data.npy,idx.pkl}          in PATH/glove or in a parent folder of PATH

The weights load into :class:`~mosa.eval.evaluator.TextMotionEvaluator`, whose layers carry the
official names and shapes (the sizes are read off the weight shapes). ``finest.tar`` is read
with ``torch.load(weights_only=True)``, which rebuilds tensors and plain containers only; the
GloVe index pickle is read by a plain-data unpickler (see :mod:`mosa.eval.wordvec`).
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from mosa.errors import MosaError
from mosa.eval.evaluator import Evaluator, EvaluatorConfig, TextMotionEvaluator
from mosa.eval.wordvec import GloVeWordVectors

WEIGHTS = Path("text_mot_match") / "model" / "finest.tar"
PARTS = ("movement_encoder", "motion_encoder", "text_encoder")
GLOVE_PREFIX = "our_vab"


def read_t2m_weights(file: str | Path) -> dict[str, dict[str, torch.Tensor]]:
    """The three state dicts of an official ``finest.tar``, keyed by part name."""
    file = Path(file)
    try:
        ckpt = torch.load(file, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as exc:
        raise MosaError(
            f"cannot read the T2M evaluator weights {file}: {exc}",
            "pass the unmodified finest.tar of the official evaluator release",
        ) from exc
    missing = [p for p in PARTS if not isinstance(ckpt, dict) or p not in ckpt]
    if missing:
        raise MosaError(
            f"{file} lacks {', '.join(missing)}",
            "pass the text_mot_match/model/finest.tar of the official evaluator",
        )
    return {p: ckpt[p] for p in PARTS}


def config_from_weights(states: dict[str, dict[str, torch.Tensor]]) -> EvaluatorConfig:
    """Official evaluator sizes read off the weight shapes (HumanML3D: 263-d, KIT: 251-d)."""
    try:
        mov = states["movement_encoder"]["main.0.weight"]  # (hidden, D - 4, 4)
        mov_out = states["movement_encoder"]["main.3.weight"]  # (movement_dim, hidden, 4)
        mot_in = states["motion_encoder"]["input_emb.weight"]  # (motion_hidden, movement_dim)
        mot_out = states["motion_encoder"]["output_net.3.weight"]  # (embed, motion_hidden)
        pos = states["text_encoder"]["pos_emb.weight"]  # (word_dim, pos_dim)
        txt_in = states["text_encoder"]["input_emb.weight"]  # (text_hidden, word_dim)
    except KeyError as exc:
        raise MosaError(
            f"T2M evaluator weights lack {exc}", "pass the official finest.tar"
        ) from exc
    contact_dims = 4
    return EvaluatorConfig(
        motion_dim=mov.shape[1] + contact_dims,
        contact_dims=contact_dims,
        word_dim=pos.shape[0],
        pos_dim=pos.shape[1],
        movement_hidden=mov.shape[0],
        movement_dim=mov_out.shape[0],
        motion_hidden=mot_in.shape[0],
        text_hidden=txt_in.shape[0],
        embed_dim=mot_out.shape[0],
        embed_norm=0.0,  # the official embeddings are used as they come
        word_vectors="glove",
    )


def build_t2m_model(states: dict[str, dict[str, torch.Tensor]]) -> TextMotionEvaluator:
    """A :class:`TextMotionEvaluator` holding the official weights (eval mode)."""
    model = TextMotionEvaluator(config_from_weights(states))
    for part in PARTS:
        try:
            getattr(model, part).load_state_dict(states[part])
        except RuntimeError as exc:
            raise MosaError(
                f"official {part} weights do not fit the T2M layout: {exc}",
                "pass the official finest.tar",
            ) from exc
    return model.eval()


def _evaluator_root(path: Path) -> Path:
    for root in (path, path / "t2m"):
        if (root / WEIGHTS).is_file():
            return root
    raise MosaError(
        f"no T2M evaluator at {path}: {WEIGHTS} not found",
        "pass t2m:PATH with PATH the evaluator folder of the official release (checkpoints/t2m)",
    )


def _find_stats(root: Path) -> Path:
    candidates = [root / "meta", root / "Comp_v6_KLD005" / "meta", root / "Comp_v6_KLD01" / "meta"]
    candidates += sorted(root.glob("*/meta"))
    for folder in candidates:
        if (folder / "mean.npy").is_file() and (folder / "std.npy").is_file():
            return folder
    raise MosaError(
        f"no mean.npy/std.npy for the T2M evaluator under {root}",
        "keep the release's Comp_v6_KLD005/meta folder beside text_mot_match",
    )


def _find_glove(root: Path) -> Path:
    for folder in (root, *root.parents):
        glove = folder / "glove"
        if (glove / f"{GLOVE_PREFIX}_data.npy").is_file():
            return glove
    raise MosaError(
        f"no glove/{GLOVE_PREFIX}_data.npy in {root} or its parent folders",
        "download the official GloVe files (our_vab_*) into a glove/ folder beside checkpoints/",
    )


def load_t2m_evaluator(path: str | Path) -> Evaluator:
    """The official evaluator at ``path`` as an :class:`Evaluator` (weights, stats, GloVe)."""
    root = _evaluator_root(Path(path).expanduser())
    model = build_t2m_model(read_t2m_weights(root / WEIGHTS))
    meta = _find_stats(root)
    mean = np.load(meta / "mean.npy", allow_pickle=False)
    std = np.load(meta / "std.npy", allow_pickle=False)
    if mean.shape != (model.config.motion_dim,) or std.shape != mean.shape:
        raise MosaError(
            f"T2M stats in {meta} have shape {mean.shape}, the evaluator expects "
            f"({model.config.motion_dim},)",
            "use the meta folder of the same release",
        )
    vectors = GloVeWordVectors(_find_glove(root), GLOVE_PREFIX)
    if vectors.dim != model.config.word_dim:
        raise MosaError(
            f"GloVe vectors are {vectors.dim}-d, the evaluator expects {model.config.word_dim}"
        )
    return Evaluator(model, mean, std, vectors, name=f"t2m:{root}")

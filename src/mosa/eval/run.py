"""``mosa eval``: the T2M protocol on a HumanML3D-layout test split, with 95% confidence intervals.

Rows (each over ``--replications`` passes with fresh random crops and caption choices):

- **Real**: test motions against their own captions; FID against a second, independently
  drawn pass over the same motions (so it measures sampling noise only).
- **Real (shuffled texts)**: the same motions with the captions permuted; R-Precision must fall
  to chance (1/32, 2/32, 3/32): a sanity check of the evaluator. Only the text-side metrics
  (R-Precision, MM-Dist) are reported; FID and Diversity would repeat the Real row.
- **Tokenizer reconstruction**: the motions encoded to tokens and decoded by a VAE checkpoint.
- **mosa (generation)**: motions generated from the captions and lengths by a ``generate``
  callable (plus MultiModality over repeated generations of the same captions); the CLI
  builds it from a generation pipeline folder (:func:`mosa.loading.load`).

Per pass, the shuffled loader order is cut into pools of 32 for R-Precision and MM-Dist
(the last incomplete pool dropped), Diversity draws 300 pairs, and the numbers are reported as
mean +- 1.96 std / sqrt(replications).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from mosa.errors import MosaError
from mosa.eval import metrics as M
from mosa.eval.evaluator import Evaluator
from mosa.eval.loading import load_evaluator

# generate(captions, lengths in frames, seed) -> one raw (un-normalised) (T_i, D) array per
# caption; motion i should depend only on (caption i, length i, seed + i)
GenerateFn = Callable[[list[str], list[int], int], list]

REAL, SHUFFLED, RECON, GENERATED = (
    "Real", "Real (shuffled texts)", "Tokenizer reconstruction", "mosa (generation)",
)  # fmt: skip
METRICS = ("fid", "top1", "top2", "top3", "mm_dist", "diversity", "multimodality")
HEADERS = {
    "fid": "FID ↓", "top1": "Top-1 ↑", "top2": "Top-2 ↑", "top3": "Top-3 ↑",
    "mm_dist": "MM-Dist ↓", "diversity": "Diversity →", "multimodality": "MultiModality ↑",
}  # fmt: skip


@dataclass
class EvalSettings:
    replications: int = 20
    pool: int = 32  # R-Precision pool (the protocol's batch size)
    diversity_times: int = 300
    mm_samples: int = 100  # captions for MultiModality
    mm_repeats: int = 30  # generations per caption
    mm_times: int = 10  # pairs per caption
    batch_size: int = 256  # chunk size for encoding and generation
    seed: int = 0


def _seed(*parts: int) -> int:
    return int(np.random.SeedSequence(list(parts)).generate_state(1)[0])


class VAERoundTrip:
    """Encode + decode raw features through a tokenizer checkpoint (``mosa.models.vae``)."""

    def __init__(self, path: str | os.PathLike):
        from mosa.models.vae import load_vae

        model, mean, std = load_vae(path)
        self._set(model, mean, std, str(path))

    def _set(self, model, mean, std, path: str) -> None:
        self.model = model
        self.mean = torch.as_tensor(np.asarray(mean)).float()
        self.std = torch.as_tensor(np.asarray(std)).float()
        self.path = path

    @classmethod
    def from_model(cls, model, mean, std, path: str = "") -> VAERoundTrip:
        """Wrap an already loaded tokenizer (e.g. a generation pipeline's)."""
        obj = cls.__new__(cls)
        obj._set(model, mean, std, path)
        return obj

    @torch.no_grad()
    def __call__(self, raw: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """``raw`` ``(B, T, D)`` -> reconstructed raw features ``(B, T, D)``."""
        if raw.shape[-1] != self.mean.shape[0]:
            raise MosaError(
                f"tokenizer {self.path} works on {self.mean.shape[0]}-d features, the data has "
                f"{raw.shape[-1]}",
                "evaluate a tokenizer trained on this dataset",
            )
        dev = next(self.model.parameters()).device
        x = ((raw - self.mean) / self.std).to(dev)
        out = self.model.decode(self.model.encode(x, lengths), lengths)[:, : raw.shape[1]]
        return out.float().cpu() * self.std + self.mean


def _chunks(n: int, size: int):
    for i in range(0, n, size):
        yield slice(i, min(i + size, n))


def _diversity_times(n: int, wanted: int) -> int:
    # The protocol uses 300 pairs, or 100 on sets of at most 300 samples.
    if n > wanted:
        return wanted
    return 100 if n > 100 else n - 1


def _draw(dataset, indices: np.ndarray, seed: int):
    """Items ``indices`` of the dataset with crop/caption randomness fixed by ``seed``.

    Returns raw features ``(B, T, D)``, lengths ``(B,)``, token lists and captions.
    """
    from mosa.data.dataset import collate_motions

    dataset.seed = seed  # items are a fixed function of (seed, index)
    batch = collate_motions([dataset[int(i)] for i in indices])
    mean = torch.as_tensor(dataset.mean)
    std = torch.as_tensor(dataset.std)
    raw = batch["motion"] * std + mean
    return raw, batch["lengths"], batch["tokens"], batch["caption"]


def _retrieval(text: np.ndarray, motion: np.ndarray, pool: int) -> dict[str, float]:
    out = M.r_precision(text, motion, top_k=3, pool=pool)
    return {k: out[k] for k in ("top1", "top2", "top3", "mm_dist")}


def evaluate(
    evaluator: Evaluator,
    dataset,
    *,
    vae: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    generate: GenerateFn | None = None,
    settings: EvalSettings | None = None,
    reference: bool = True,
    progress: bool = True,
) -> dict[str, dict[str, list[float]]]:
    """Run the protocol; returns ``{row: {metric: [value per replication]}}``.

    ``dataset`` is a :class:`mosa.data.dataset.MotionDataset` (its ``seed`` is set per pass);
    ``vae`` maps raw features + lengths to reconstructed raw features; ``generate`` maps
    captions + lengths to raw features. ``reference=False`` skips the second pass and FID.
    """
    s = settings or EvalSettings()
    n = len(dataset)
    if n < s.pool:
        raise MosaError(
            f"the split has {n} motions, fewer than one R-Precision pool of {s.pool}",
            "evaluate on a larger split",
        )
    rows = [REAL, SHUFFLED] + ([RECON] if vae else []) + ([GENERATED] if generate else [])
    results: dict[str, dict[str, list[float]]] = {r: {} for r in rows}
    for rep in tqdm(range(s.replications), desc="eval", unit="rep", disable=not progress):
        torch.manual_seed(_seed(s.seed, rep, 3))  # generator sampling
        rng = np.random.default_rng(_seed(s.seed, rep, 2))
        order = rng.permutation(n)  # the shuffled test loader
        emb: dict[str, list[np.ndarray]] = {
            "text": [],
            REAL: [],
            RECON: [],
            GENERATED: [],
            "ref": [],
        }
        for sl in _chunks(n, s.batch_size):
            raw, lengths, tokens, captions = _draw(dataset, order[sl], _seed(s.seed, rep, 0))
            emb["text"].append(evaluator.embed_texts(tokens))
            emb[REAL].append(evaluator.embed_motions(raw, lengths))
            if vae:
                emb[RECON].append(evaluator.embed_motions(vae(raw, lengths), lengths))
            if generate:
                seed = _seed(s.seed, rep, 5) + sl.start
                emb[GENERATED].append(
                    _embed_generated(evaluator, generate, captions, lengths, seed)
                )
            if reference:
                ref_raw, ref_len, _, _ = _draw(dataset, order[sl], _seed(s.seed, rep, 1))
                emb["ref"].append(evaluator.embed_motions(ref_raw, ref_len))
        cat = {k: np.concatenate(v) for k, v in emb.items() if v}
        text, times = cat["text"], _diversity_times(n, s.diversity_times)
        shuffled_text = text[rng.permutation(n)]
        for row, motion, texts in (
            (REAL, cat[REAL], text),
            (SHUFFLED, cat[REAL], shuffled_text),
            (RECON, cat.get(RECON), text),
            (GENERATED, cat.get(GENERATED), text),
        ):
            if row not in results:
                continue
            values = _retrieval(texts, motion, s.pool)
            if row != SHUFFLED:  # same motions as Real: only the text side is a new number
                values["diversity"] = M.diversity(motion, times, rng)
                if reference:
                    values["fid"] = M.fid(cat["ref"], motion)
            for k, v in values.items():
                results[row].setdefault(k, []).append(v)
        if generate:
            mm = _multimodality(evaluator, dataset, generate, s, rep, rng)
            results[GENERATED].setdefault("multimodality", []).append(mm)
    return results


def _embed_generated(evaluator, generate: GenerateFn, captions, lengths, seed: int) -> np.ndarray:
    """Generate one motion per caption and embed it with its own (generated) length."""
    motions = [torch.as_tensor(np.asarray(m), dtype=torch.float32)
               for m in generate(list(captions), [int(n) for n in lengths], seed)]  # fmt: skip
    if len(motions) != len(captions):
        raise MosaError(
            f"the generator returned {len(motions)} motions for {len(captions)} captions"
        )
    gen_len = torch.tensor([len(m) for m in motions])
    padded = torch.zeros(len(motions), int(gen_len.max()), motions[0].shape[-1])
    for i, m in enumerate(motions):
        padded[i, : len(m)] = m
    return evaluator.embed_motions(padded, gen_len)


def _multimodality(evaluator, dataset, generate, s: EvalSettings, rep: int, rng) -> float:
    """Generate ``mm_repeats`` motions for each of ``mm_samples`` captions; their spread."""
    picks = rng.choice(len(dataset), min(s.mm_samples, len(dataset)), replace=False)
    _, lengths, _, captions = _draw(dataset, picks, _seed(s.seed, rep, 4))
    caps = [c for c in captions for _ in range(s.mm_repeats)]
    lens = lengths.repeat_interleave(s.mm_repeats)
    seed = _seed(s.seed, rep, 6)
    emb = [
        _embed_generated(evaluator, generate, caps[sl], lens[sl], seed + sl.start)
        for sl in _chunks(len(caps), s.batch_size)
    ]
    feats = np.concatenate(emb).reshape(len(picks), s.mm_repeats, -1)
    return M.multimodality(feats, s.mm_times, rng)


def summarise(results: dict[str, dict[str, list[float]]]) -> dict[str, dict[str, dict]]:
    """``{row: {metric: {"mean", "ci95", "values"}}}`` from per-replication values."""
    out = {}
    for row, metrics in results.items():
        out[row] = {}
        for k, values in metrics.items():
            mean, half = M.mean_ci95(values)
            out[row][k] = {"mean": mean, "ci95": half, "values": [float(v) for v in values]}
    return out


def markdown_table(summary: dict[str, dict[str, dict]], digits: int = 3) -> str:
    """The summary as a Markdown table, ``mean ± ci95`` per cell."""
    cols = [m for m in METRICS if any(m in row for row in summary.values())]
    lines = [
        "| Method | " + " | ".join(HEADERS[m] for m in cols) + " |",
        "|---|" + "---|" * len(cols),
    ]
    for name, row in summary.items():
        cells = [
            f"{row[m]['mean']:.{digits}f} ± {row[m]['ci95']:.{digits}f}" if m in row else "-"
            for m in cols
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ------------------------------------------------------------------- checkpoints -> rows


def _kind(folder: Path) -> str | None:
    from mosa.checkpoint import read_checkpoint_config
    from mosa.io import resolve_checkpoint_dir

    if not (resolve_checkpoint_dir(folder) / "config.json").is_file():
        return None
    return str(read_checkpoint_config(folder).get("kind"))


def _is_pipeline(folder: Path) -> bool:
    from mosa.loading import PIPELINE_FILE

    return (folder / PIPELINE_FILE).is_file() or (folder / "sar").is_dir() or _kind(folder) == "sar"


def pipeline_generate_fn(pipe, **sampling) -> GenerateFn:
    """``generate(captions, lengths, seed)`` of a :class:`mosa.pipeline.Pipeline`.

    Lengths are clamped to the generator's supported range; motion i uses seed ``seed + i``.
    ``sampling``: cfg / temperature / top_k / top_p for ``Pipeline.generate`` (None: the
    checkpoint's defaults).
    """
    lo, hi = pipe.frame_range

    def generate(captions: list[str], lengths: list[int], seed: int) -> list[np.ndarray]:
        frames = [min(max(int(n), lo), hi) for n in lengths]
        motions = pipe.generate(captions, frames=frames, seed=seed, **sampling)
        return [m.features for m in motions]

    return generate


def load_models(
    checkpoint: str | os.PathLike | None,
    device: str | None = None,
    *,
    int8: bool = False,
    **sampling,
):
    """``(vae round trip or None, generate fn or None, folder used or None)`` for ``--checkpoint``.

    A ``vae`` checkpoint gives the reconstruction row; a generation pipeline folder gives the
    generation row and, through its tokenizer, the reconstruction row. Without ``checkpoint``
    the default checkpoint folder is used when it holds either, else no model rows. ``int8``:
    the generator samples with int8 weights (``mosa.loading.load``).
    """
    from mosa.loading import default_checkpoint_dir

    if checkpoint is None:
        folder = default_checkpoint_dir()
        if not (_is_pipeline(folder) or _kind(folder / "vae") == "vae"):
            return None, None, None
    else:
        folder = Path(checkpoint).expanduser()
        if not folder.exists() and not folder.with_name(folder.name + ".old").exists():
            raise MosaError(f"checkpoint {folder} does not exist", "pass an existing folder")
    kind = _kind(folder)
    if kind == "vae":
        return VAERoundTrip(folder), None, folder
    if _is_pipeline(folder):
        from mosa.loading import load

        pipe = load(folder, device, int8=int8)
        recon = VAERoundTrip.from_model(pipe.vae, pipe.mean, pipe.std, str(folder))
        return recon, pipeline_generate_fn(pipe, **sampling), folder
    if kind is None and _kind(folder / "vae") == "vae":
        return VAERoundTrip(folder / "vae"), None, folder / "vae"
    raise MosaError(
        f"{folder} is neither a tokenizer checkpoint nor a generation pipeline"
        + (f" (it holds a '{kind}' checkpoint)" if kind else ""),
        "pass a vae checkpoint folder or a folder with pipeline.json (sar/, vae/)",
    )


def _default_evaluator() -> str:
    from mosa.loading import default_checkpoint_dir

    return str(default_checkpoint_dir() / "evaluator")


def evaluate_checkpoint(
    data: str | os.PathLike,
    split: str = "test",
    *,
    evaluator: str | None = None,
    checkpoint: str | os.PathLike | None = None,
    device: str | None = None,
    int8: bool = False,
    sampling: dict[str, Any] | None = None,
    settings: EvalSettings | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """The protocol on ``data``'s ``split``: returns the report (``report_text`` shows it).

    ``evaluator``: our evaluator checkpoint folder or ``t2m:PATH`` (default: ``evaluator/`` in
    the default checkpoint folder); ``checkpoint``: the models, see :func:`load_models`;
    ``sampling``: cfg / temperature / top_k / top_p of the generator (None: the checkpoint's).
    """
    from mosa.data.dataset import MotionDataset

    s = settings or EvalSettings()
    if s.replications < 1:
        raise MosaError(f"--replications must be at least 1, got {s.replications}")
    spec = evaluator or _default_evaluator()
    if not _exists_or_t2m(spec):
        raise MosaError(
            f"no evaluator at {spec}",
            "train one with `mosa train evaluator --data DIR --out runs/evaluator` and pass "
            "--evaluator runs/evaluator, or use --evaluator t2m:PATH",
        )
    ev = load_evaluator(spec)
    dataset = MotionDataset(data, split, random_crop=True, seed=s.seed)
    if dataset.feature_dim != ev.config.motion_dim:
        raise MosaError(
            f"{data} has {dataset.feature_dim}-d features, the evaluator expects "
            f"{ev.config.motion_dim}",
            "use an evaluator trained on this kind of features",
        )
    sampling = dict(sampling or {})
    vae, generate, folder = load_models(checkpoint, device, int8=int8, **sampling)
    results = evaluate(ev, dataset, vae=vae, generate=generate, settings=s, progress=progress)
    return {
        "data": str(data),
        "split": split,
        "motions": len(dataset),
        "evaluator": ev.name,
        "checkpoint": str(folder) if folder else None,
        "settings": asdict(s),
        "sampling": {k: v for k, v in sampling.items() if v is not None},
        "int8": bool(int8),
        "rows": summarise(results),
    }


def report_text(report: dict[str, Any]) -> str:
    """What ``mosa eval`` prints of a report: a blank line, the setup, the Markdown table."""
    return (
        f"\nT2M metrics on {report['data']} [{report['split']}], {report['motions']} motions, "
        f"{report['settings']['replications']} replications, evaluator {report['evaluator']}"
        + (f", models from {report['checkpoint']}" if report["checkpoint"] else "")
        + "".join(f", {k} {v}" for k, v in report["sampling"].items())
        + (", int8 generator" if report["int8"] else "")
        + "\n"
        + markdown_table(report["rows"])
    )


def _exists_or_t2m(spec: str) -> bool:
    if spec.startswith("t2m:"):
        return True
    p = Path(spec)
    return p.exists() or p.with_name(p.name + ".old").exists()

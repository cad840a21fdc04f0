"""Assemble a pipeline folder (what ``mosa.load`` reads) from training runs' best checkpoints.

Copies the tokenizer, generator, length estimator and evaluator folders, puts the vocabulary
(``benchmarks/vocabulary_detector.py --save``) into the generator's folder, writes
``pipeline.json`` with the corpora (train-split clips per corpus, licences, citations) read
from the dataset's ``manifest.json``, and ``MODEL_CARD.md`` (what ``mosa info`` prints).

    python scripts/assemble_checkpoint.py --data data/merged --vae runs/vae_merged/best \\
        --sar runs/gen_merged/best --length runs/length_merged/best \\
        --evaluator checkpoints/evaluator --vocabulary runs/merged_vocab --out runs/pipeline_new

The output folder must not exist (a pipeline folder is never overwritten in place); move it
over ``checkpoints/`` by hand once it has been measured.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections import Counter
from pathlib import Path

from mosa.errors import MosaError
from mosa.loading import PIPELINE_FILE, model_card

NAMES = {
    "bandai-namco": "Bandai-Namco Research Motion dataset",
    "cmu": "CMU Graphics Lab Motion Capture Database (Daz-friendly BVH)",
    "deepmimic": "DeepMimic reference motions",
    "animated-drawings": "AnimatedDrawings example BVH",
}


def corpora(data: Path) -> tuple[list[dict], list[str]]:
    """Per corpus of ``data``'s train split: name, clips, licence; and the citations."""
    manifest = json.loads((data / "manifest.json").read_text())
    train = {n.strip() for n in (data / "train.txt").read_text().splitlines() if n.strip()}
    counts = Counter(c["corpus"] for n, c in manifest["clips"].items() if n in train)
    rows = [
        {"name": k, "title": NAMES.get(k, k), "clips": n, "licence": manifest["licences"][k]}
        for k, n in counts.most_common()
    ]
    return rows, list(manifest.get("citations", []))


def trained_on(rows: list[dict]) -> str:
    parts = ", ".join(f"{r['title']} ({r['clips']} train clips)" for r in rows)
    note = "; non-commercial use only" if any(r["name"] == "bandai-namco" for r in rows) else ""
    return f"{parts}{note}"


def assemble(args: argparse.Namespace) -> Path:
    out = args.out
    if out.exists():
        raise MosaError(f"{out} already exists", "pass a new --out (nothing is overwritten)")
    parts = {"vae": args.vae, "sar": args.sar, "length": args.length, "evaluator": args.evaluator}
    for name, src in parts.items():
        if not (src / "config.json").is_file():
            raise MosaError(f"--{name} {src} has no config.json", "pass a checkpoint folder")
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    for name, src in parts.items():
        shutil.copytree(
            src, tmp / name, ignore=shutil.ignore_patterns("optim*", "*.pt", PIPELINE_FILE)
        )
    for f in ("vocabulary.json", "vocabulary.safetensors"):
        shutil.copy2(args.vocabulary / f, tmp / "sar" / f)
    spec = json.loads((args.base / PIPELINE_FILE).read_text())
    rows, citations = corpora(args.data)
    spec.update(trained_on=trained_on(rows), corpora=rows, citations=citations)
    (tmp / PIPELINE_FILE).write_text(json.dumps(spec, indent=2) + "\n")
    tmp.rename(out)
    (out / "MODEL_CARD.md").write_text(model_card(out) + "\n")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, required=True, help="the dataset the models saw")
    for name in ("vae", "sar", "length", "evaluator", "vocabulary"):
        p.add_argument(f"--{name}", type=Path, required=True)
    p.add_argument("--base", type=Path, default=Path("checkpoints"), help="pipeline.json to extend")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    try:
        print(assemble(args))
    except MosaError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

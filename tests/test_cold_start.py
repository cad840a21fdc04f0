"""Cold start, structurally: what ``mosa generate`` imports and how checkpoints load.

No timings here (those are benchmarks/cold_start.py's); these check the causes: the generate
path must not import transformers, sentence-transformers, spaCy or torch._dynamo, and the
checkpoint loader must not keep a second copy of the weights.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from safetensors.torch import save_file

from mosa.checkpoint import _MetaProbe, map_safetensors
from mosa.errors import MosaError
from tiny_models import write_tiny_pipeline

HEAVY = ("transformers", "sentence_transformers", "spacy", "torch._dynamo", "sympy")


def _modules_after(code: str) -> list[str]:
    probe = (
        code + f"\nimport sys, json; print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         timeout=300)  # fmt: skip
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_parsing_generate_imports_nothing_heavy():
    code = (
        "from mosa.cli import build_parser\n"
        "argv = ['generate', 'a person waves', '-o', 'w.bvh']\n"
        "build_parser(argv).parse_args(argv)"
    )
    assert _modules_after(code) == []


def test_generate_path_imports_nothing_heavy(tmp_path):
    """Load a pipeline (tiny weights, the real MiniLM), generate and save one motion."""
    folder = write_tiny_pipeline(tmp_path / "ckpt")
    code = (
        "import mosa\n"
        f"pipe = mosa.load({str(folder)!r}, 'cpu')\n"
        "[m] = pipe.generate('a person waves', seconds=2, seed=1)\n"
        f"m.save({str(tmp_path / 'w.bvh')!r})"
    )
    assert _modules_after(code) == []
    assert (tmp_path / "w.bvh").is_file()


def test_meta_probe_gives_the_shapes_of_a_plain_meta_build():
    from mosa.models.length import LengthConfig, LengthEstimator
    from mosa.models.sar import SARConfig, SARTransformer
    from mosa.models.vae import CAQVAE, VAEConfig

    for cls, cfg in ((SARTransformer, SARConfig()), (CAQVAE, VAEConfig()),
                     (LengthEstimator, LengthConfig())):  # fmt: skip
        with torch.device("meta"), _MetaProbe():
            fast = cls(cfg).state_dict()
        with torch.device("meta"):
            plain = cls(cfg).state_dict()
        assert {k: (v.shape, v.dtype) for k, v in fast.items()} == {
            k: (v.shape, v.dtype) for k, v in plain.items()
        }


def test_load_takes_the_file_tensors_and_keeps_the_model_dtype(tmp_path):
    """``load_model`` assigns the loaded tensors (no second copy) in the model's dtype, aligned."""
    from mosa.checkpoint import load_checkpoint
    from mosa.models.sar import load_sar

    folder = write_tiny_pipeline(tmp_path / "ckpt")
    sar = load_sar(folder / "sar")
    _, state, _ = load_checkpoint(folder / "sar", type(sar.config), "sar")
    for k, v in sar.state_dict().items():
        assert torch.equal(v, state[k]) and v.dtype == state[k].dtype
    assert all(not p.is_meta for p in sar.parameters())
    # aligned as torch allocates: kernels round differently on safetensors' 8-byte offsets
    assert all(p.data_ptr() % 64 == 0 for p in sar.parameters())


def test_map_safetensors_matches_load_file(tmp_path):
    from safetensors.torch import load_file

    tensors = {
        "a": torch.randn(3, 5),
        "b": torch.arange(7, dtype=torch.int64),
        "c": torch.randn(2, 2).to(torch.bfloat16),
        "empty": torch.zeros(0, 4),
        "flag": torch.tensor([True, False]),
    }
    save_file(tensors, str(tmp_path / "t.safetensors"))
    mapped = map_safetensors(tmp_path / "t.safetensors")
    ref = load_file(str(tmp_path / "t.safetensors"))
    assert set(mapped) == set(ref)
    for k in ref:
        assert mapped[k].dtype == ref[k].dtype and torch.equal(mapped[k], ref[k])
    mapped["a"].mul_(0)  # copy-on-write: the file keeps its numbers
    assert torch.equal(load_file(str(tmp_path / "t.safetensors"))["a"], ref["a"])


@pytest.mark.parametrize("content", [b"", b"\x10\x00\x00\x00\x00\x00\x00\x00{not json", b"abc"])
def test_map_safetensors_corrupt(tmp_path, content):
    f = tmp_path / "bad.safetensors"
    f.write_bytes(content)
    with pytest.raises(MosaError, match="corrupt"):
        map_safetensors(f)

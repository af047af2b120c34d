"""Benign files written by real libraries (issue #15 item 1), one module per library family.

`SOURCES` maps a source name to its `LibSource` (library = the distribution name, which the
manifest records so evaluation can leave one library out). A source whose library is not
installed is skipped and listed by `unavailable()`; the pinned set is the `corpus` extra of
pyproject.toml. Objects are built in code from small synthetic data and saved the way users
save them; nothing is downloaded and no file shipped inside a package is copied.
"""

from __future__ import annotations

from ._base import LibSource
from .archives import ENCRYPTED
from .archives import SOURCES as _ARCHIVES
from .misc import SOURCES as _MISC
from .ml import SOURCES as _ML
from .nlp import SOURCES as _NLP
from .sci import SOURCES as _SCI
from .torch_eco import SOURCES as _TORCH

__all__ = ["ENCRYPTED", "SOURCES", "STAMPED", "LibSource", "unavailable"]

SOURCES: dict[str, LibSource] = {
    s.name: s for s in (*_SCI, *_ML, *_NLP, *_TORCH, *_MISC, *_ARCHIVES)
}


# Sources whose files carry wall-clock stamps or timings, as the real ones do (gensim lifecycle
# events, optuna trial times, skorch epoch durations, catboost/matplotlib/sentence-transformers
# run metadata), or fresh random salts (AES archives), or (sklearn-crfsuite) a trained model file
# whose bytes differed once between two processes of a full test run: every other source's bytes
# are fixed by the seed (tests/train/test_benign_libs.py builds twice in two processes).
STAMPED = frozenset({"catboost_models", "crfsuite_taggers", "gensim_models", "matplotlib_figures",
                     "optuna_studies", "sentence_transformers_models", "skorch_nets",
                     *ENCRYPTED})  # fmt: skip


def unavailable() -> dict[str, list[str]]:
    """Source name -> the modules it needs that are not installed (absent: all there)."""
    return {name: missing for name, s in SOURCES.items() if (missing := s.missing())}

"""The shipped index on the issue-15 FS109 cases and issue 14's section-F bar (every listed
callable counted, absent ones included)."""

from __future__ import annotations

import pytest

from fastscan.index.evaluate import f_rows


@pytest.fixture(scope="module")
def idx():  # type: ignore[no-untyped-def]
    from fastscan.index import shipped_index

    return shipped_index()


def test_runtime_names_live_in_open_namespaces(idx) -> None:  # type: ignore[no-untyped-def]
    # mpmath/__init__.py sets ctx_mp_python.mpf/mpc (through an `if BACKEND == 'sage'` alias)
    assert "assigned from mpmath" in idx.open_reasons("mpmath.ctx_mp_python")
    assert idx.lookup("mpmath.ctx_mp_python", "mpf") is None  # not listed, but not a typo
    # tokenizers.models re-exports the Rust extension's submodule
    word_level = idx.lookup("tokenizers.models", "WordLevel")
    assert word_level is not None and word_level.kind == "builtin"
    assert word_level.origin.startswith("tokenizers.tokenizers.")
    # pure-Python modules whose names are all statements stay closed
    for module in ("json", "torch.serialization", "pickle", "collections"):
        assert idx.open_reasons(module) == [], module


def test_threats_f_at_least_90_percent_of_every_listed_callable(idx) -> None:  # type: ignore[no-untyped-def]
    rows = f_rows(idx)
    hits = {r.name for r in rows if r.hit}
    assert len(rows) >= 120 and len(hits) / len(rows) >= 0.9, (len(hits), len(rows))
    for name in (
        "collections.ChainMap",  # SETITEMS/lookups forwarded to the maps it was handed
        "string.Template.substitute",  # hands the mapping to ChainMap
        "_pyrepl.pager.pipe_pager",  # 3.13's stdlib
        "_aix_support._read_cmd_output",  # 3.12's
    ):
        assert name in hits, name

"""The corpus generator: payload builders, containers, threat matrix, benign realism, manifest.

Malicious samples are only ever inspected with `pickletools.genops` (never unpickled). Benign
files, which these tests generate with the real libraries, are loaded back to prove realism.
"""

from __future__ import annotations

import io
import json
import pickle
import pickletools
import random
import re
import warnings
from pathlib import Path
from typing import Any

import pytest

from fastscan.train import benign, corpus, matrix, payloads, wrappers

HAS_TORCH = benign.torch_available()
needs_torch = pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed")
KEYS = sorted(payloads.PAYLOADS)
_STRING_OPS = {"STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "BINUNICODE",
               "SHORT_BINUNICODE", "BINUNICODE8"}  # fmt: skip
_BYTES_OPS = {"BINBYTES", "SHORT_BINBYTES", "BINBYTES8", "BYTEARRAY8"}


def genops_view(data: bytes, depth: int = 0) -> tuple[set[str], set[str], list[str]]:
    """Literal imports and string operands genops sees: every pickle in turn, nested bytes
    operands that are pickles, stopping at the first parse error (the payload comes first)."""
    names: set[str] = set()
    strings: set[str] = set()
    errors: list[str] = []
    stream = io.BytesIO(data)
    while stream.tell() < len(data):
        start = stream.tell()
        try:
            for op, arg, _pos in pickletools.genops(stream):
                if op.name in ("GLOBAL", "INST"):
                    module, name = str(arg).split(" ", 1)
                    names.add(f"{'builtins' if module == '__builtin__' else module}.{name}")
                elif op.name in _STRING_OPS:
                    strings.add(str(arg))
                elif op.name in _BYTES_OPS and depth < 3 and bytes(arg or b"")[:1] == b"\x80":
                    inner_names, inner_strings, _ = genops_view(bytes(arg or b""), depth + 1)
                    names |= inner_names
                    strings |= inner_strings
        except Exception as exc:  # a malformed tail is part of several techniques
            errors.append(repr(exc))
            break
        if stream.tell() == start:
            break
    return names, strings, errors


def visible(data: bytes, qualname: str) -> bool:
    """GLOBAL/INST spelled out, or STACK_GLOBAL operands present as string literals."""
    names, strings, _ = genops_view(data)
    if qualname in names:
        return True
    strings = {("builtins" if s == "__builtin__" else s) for s in strings}
    cuts = [m.start() for m in re.finditer(r"\.", qualname)]
    return any(qualname[:i] in strings and qualname[i + 1 :] in strings for i in cuts)


# -- threat matrix ------------------------------------------------------------------------------
THREAT_IDS = (
    [f"A{i}" for i in range(1, 19)] + [f"B{i}" for i in range(1, 8)]
    + [f"C{i}" for i in range(1, 17)] + [f"D{i}" for i in range(1, 10)]
    + [f"E{i}" for i in range(1, 9)] + ["F"] + [f"G{i}" for i in range(1, 7)]
    + [f"H{i}" for i in range(1, 5)] + [f"I{i}" for i in range(1, 6)]
)  # fmt: skip


def test_matrix_has_one_row_per_threat_id() -> None:
    assert [r.id for r in matrix.ROWS] == THREAT_IDS


@pytest.mark.parametrize("row", matrix.ROWS, ids=lambda r: r.id)
def test_every_row_has_a_builder_or_a_reason(row: matrix.Row) -> None:
    if row.not_applicable:
        assert not row.payloads and len(row.not_applicable) > 20
        return
    assert row.payloads or row.fixtures
    assert all(key in payloads.PAYLOADS for key in row.payloads)
    assert all(c in wrappers.CONTAINERS for c in row.containers)
    assert all(f in benign.SOURCES or f in wrappers.FIXTURES for f in row.fixtures)
    assert row.expected in ("malicious", "clean", "encrypted", "unsupported")
    assert (row.expected == "malicious") == bool(row.payloads)


def test_every_payload_belongs_to_a_row() -> None:
    used = {key for row in matrix.ROWS for key in row.payloads}
    assert set(payloads.PAYLOADS) == used
    assert len([k for k in payloads.PAYLOADS if k.startswith("F:")]) == len(matrix.F_CALLABLES)


@pytest.mark.parametrize("row", [r for r in matrix.ROWS if r.expected_globals], ids=lambda r: r.id)
def test_row_expected_globals_appear_in_every_sample(row: matrix.Row) -> None:
    for key in row.payloads:
        for seed in range(6):
            sample = payloads.PAYLOADS[key](random.Random(seed))
            if row.id != "A5":  # A5's magic global comes from the container, not the payload
                assert set(row.expected_globals) <= set(sample.globals), (key, seed)


# -- payload builders ---------------------------------------------------------------------------
@pytest.mark.parametrize("key", KEYS)
def test_builder_is_deterministic_and_labelled(key: str) -> None:
    first = payloads.PAYLOADS[key](random.Random(7))
    again = payloads.PAYLOADS[key](random.Random(7))
    assert first == again
    assert first.key == key and key.startswith(first.threat)
    assert first.family in payloads.FAMILIES
    assert first.globals or first.hidden, "every sample names what it reaches"
    assert all("." in g and not g.startswith("__builtin__.") for g in first.globals)


@pytest.mark.parametrize("key", KEYS)
def test_expected_globals_are_visible_to_genops(key: str) -> None:
    for seed in range(5):
        sample = payloads.PAYLOADS[key](random.Random(seed))
        if not sample.oracle_sees_all:
            continue
        missing = [g for g in sample.globals if not visible(sample.data, g)]
        assert not missing, (seed, missing, genops_view(sample.data)[2])


def test_well_formed_payloads_parse_to_stop() -> None:
    """Builders meant to be well formed are single pickles genops reads to STOP."""
    for key in ("C7", "C8", "C10", "D1", "D5", "E5", "E6", "H1", "G6", "I3", "F:os.system"):
        for seed in range(5):
            data = payloads.PAYLOADS[key](random.Random(seed)).data
            ops = list(pickletools.genops(data))
            assert ops[-1][0].name == "STOP" and ops[-1][2] == len(data) - 1, key


def test_protocols_vary_across_seeds() -> None:
    protos = set()
    for seed in range(40):
        data = payloads.PAYLOADS["F:os.system"](random.Random(seed)).data
        protos.add(data[1] if data[:1] == b"\x80" else 0)
    assert {0, 2, 3, 4, 5} <= protos  # protocol 1 has no PROTO opcode: it counts as 0 here


def test_structural_payloads_break_where_they_should() -> None:
    rng = random.Random(3)
    c1 = payloads.PAYLOADS["C1"](rng)
    assert genops_view(c1.data)[2], "C1 must not be a well-formed stream"
    c16 = payloads.PAYLOADS["C16"](random.Random(1))
    assert c16.data[:2] == b"BZ"
    g5 = payloads.PAYLOADS["G5.memo_expansion"](random.Random(1))
    assert len(g5.data) < 4096
    d6 = payloads.PAYLOADS["D6"](random.Random(1))
    assert d6.hidden and not any(visible(d6.data, h) for h in d6.hidden)


@pytest.mark.parametrize("key", sorted(payloads.INJECTABLE))
def test_snippets_are_stack_neutral(key: str) -> None:
    """A snippet between PROTO and a benign object leaves exactly that object for STOP."""
    sample = payloads.PAYLOADS[key](random.Random(2))
    snippet = payloads.as_snippet(sample.data)
    benign_tail = pickle.dumps({"ok": [1, 2]}, protocol=2)[2:]
    spliced = b"\x80\x02" + snippet + benign_tail
    depth = 0
    marks: list[int] = []
    for op, _arg, _pos in pickletools.genops(spliced):
        if op.name == "MARK":
            marks.append(depth)
            continue
        if pickletools.markobject in op.stack_before:  # pops to the mark, plus what lies below
            below = op.stack_before.index(pickletools.markobject)
            depth = marks.pop() - below + len(op.stack_after)
        else:
            depth += len(op.stack_after) - len(op.stack_before)
    assert depth == 0 and not marks
    assert all(visible(spliced, g) for g in sample.globals)


# -- containers ---------------------------------------------------------------------------------
BENIGN_OBJ = {"weights": [0.5, 1.5], "name": "fastscan-benign", "n": 3}
BENIGN_PICKLE = pickle.dumps(BENIGN_OBJ, protocol=2)


def _load_back(container: str, data: bytes) -> Any:
    """Load a benign payload back through the loader that CONTAINERS says reaches it."""
    import joblib
    import numpy as np

    if container == "raw":
        return pickle.loads(data)
    if container == "npy_object":
        return np.load(io.BytesIO(data), allow_pickle=True)
    if container.startswith("npz"):
        with np.load(io.BytesIO(data), allow_pickle=True) as npz:
            member = next(n for n in npz.files if not n.startswith("x"))
            return npz[member]
    if container.startswith("joblib_") or container in ("gzip", "bz2", "xz", "lz4"):
        return joblib.load(io.BytesIO(data))
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.load(io.BytesIO(data), weights_only=False)


LOADABLE = ["raw", "npy_object", "npz_stored", "npz_deflated", "gzip", "bz2", "xz", "lz4"]
LOADABLE += [
    c for c in wrappers.CONTAINERS if c.startswith("joblib_") and c != "joblib_after_array"
]
TORCH_LOADABLE = ["torch_zip", "zip_crc_mismatch", "zip_name_mismatch"]


@pytest.mark.parametrize("container", LOADABLE + TORCH_LOADABLE)
def test_container_reaches_a_benign_payload(container: str) -> None:
    if container in TORCH_LOADABLE and not HAS_TORCH:
        pytest.skip("torch is not installed")
    assert wrappers.CONTAINERS[container].reaches
    data, _ext = wrappers.wrap(container, BENIGN_PICKLE, random.Random(4))
    assert data != BENIGN_PICKLE or container == "raw"
    assert _load_back(container, data) == BENIGN_OBJ


@needs_torch
@pytest.mark.parametrize("flag", ["0x1", "0x20", "0x40"])
def test_current_torch_refuses_flagged_members(flag: str) -> None:
    """B1/B2 payloads only reach older torch versions; CONTAINERS must say so."""
    assert not wrappers.CONTAINERS[f"zip_flag_{flag}"].reaches
    data, _ext = wrappers.wrap(f"zip_flag_{flag}", BENIGN_PICKLE, random.Random(4))
    with pytest.raises(RuntimeError, match="unsupported"):
        _load_back(f"zip_flag_{flag}", data)


def test_joblib_after_array_keeps_the_real_dump_loadable() -> None:
    import joblib
    import numpy as np

    snippet_source = pickle.dumps({"side": "effect-free"}, protocol=2)
    data, _ = wrappers.wrap("joblib_after_array", snippet_source, random.Random(1))
    original, array_bytes = benign.joblib_with_array(random.Random(1).randrange(16))
    assert len(data) > len(original)
    loaded = joblib.load(io.BytesIO(data))
    assert loaded["weights"].tobytes() == array_bytes and isinstance(loaded["weights"], np.ndarray)


@needs_torch
@pytest.mark.parametrize("position", corpus.POSITIONS)
def test_injection_into_a_real_torch_zip_is_invisible_to_the_loader(position: str) -> None:
    import torch

    archive, _ = benign.torch_state_dict(random.Random(5), "small")
    snippet = payloads.as_snippet(pickle.dumps(BENIGN_OBJ, protocol=4))
    spliced = wrappers.inject_into_torch_zip(archive, snippet, position)
    before = torch.load(io.BytesIO(archive), weights_only=True)
    after = torch.load(io.BytesIO(spliced), weights_only=False)
    assert list(before) == list(after)
    assert all(torch.equal(before[k], after[k]) for k in before)


@needs_torch
def test_zip_writer_reproduces_torch_archives_byte_for_byte() -> None:
    for index in range(2):
        real = benign.torch_zip_base(index)
        assert wrappers.build_zip(wrappers._zip_members(real)) == real


def test_archive_fixtures() -> None:
    import zipfile

    encrypted = wrappers.FIXTURES["zip_encrypted"][0](random.Random(0))
    with zipfile.ZipFile(io.BytesIO(encrypted)) as zf:
        info = zf.infolist()[0]
        assert info.flag_bits & 0x1
        with pytest.raises(RuntimeError, match="password"):
            zf.read(info)
    bomb = wrappers.FIXTURES["zip_bomb"][0](random.Random(0))
    assert len(bomb) < 1 << 20


# -- benign realism -----------------------------------------------------------------------------
def _quiet_torch_load(data: bytes, weights_only: bool) -> Any:
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.load(io.BytesIO(data), weights_only=weights_only)


@needs_torch
@pytest.mark.parametrize("source", [s for s in benign.TORCH_SOURCES if s != "torchscript"])
def test_benign_torch_files_load_with_torch(source: str) -> None:
    for seed in range(3):
        data, _ = benign.SOURCES[source](random.Random(seed), "small")
        whole_module = source in {"torch_full_model", "torch_legacy"}
        assert _quiet_torch_load(data, weights_only=not whole_module) is not None


@needs_torch
def test_legacy_files_are_deterministic_and_equal_to_the_model() -> None:
    import torch

    model = benign._torch_model(random.Random(11), "small", "mlp")
    data = benign._legacy_bytes(model.state_dict())
    assert data == benign._legacy_bytes(model.state_dict())
    loaded = _quiet_torch_load(data, weights_only=True)
    assert all(torch.equal(loaded[k], v) for k, v in model.state_dict().items())


@needs_torch
def test_torchscript_loads_and_runs() -> None:
    import torch

    data, _ = benign.torchscript(random.Random(2), "small")
    module = torch.jit.load(io.BytesIO(data))
    assert isinstance(module, torch.jit.ScriptModule)


@pytest.mark.parametrize("seed", range(3))
def test_sklearn_and_joblib_files_load(seed: int) -> None:
    import joblib

    est = pickle.loads(benign.sklearn_pickle(random.Random(seed), "small")[0])
    assert hasattr(est, "fit")
    for compressor in benign.JOBLIB_COMPRESSORS:
        rng = _RiggedChoice(random.Random(seed), compressor)
        assert hasattr(joblib.load(io.BytesIO(benign.sklearn_joblib(rng, "small")[0])), "fit")


class _RiggedChoice(random.Random):
    """A Random whose choice() picks `value` when offered it (to force a compressor)."""

    def __init__(self, base: random.Random, value: Any) -> None:
        super().__init__(base.random())
        self.value = value

    def choice(self, seq: Any) -> Any:
        return self.value if self.value in seq else super().choice(seq)


def test_numpy_pandas_and_function_pickles_load() -> None:
    import dill
    import numpy as np
    import pandas as pd

    rng = random.Random(1)
    assert np.load(io.BytesIO(benign.numpy_npy(rng, "small")[0])).size > 0
    arr = np.load(io.BytesIO(benign.numpy_npy_object(rng, "small")[0]), allow_pickle=True)
    assert arr.dtype == object
    with np.load(io.BytesIO(benign.numpy_npz(rng, "small")[0])) as npz:
        assert npz.files
    for seed in range(5):
        data, ext = benign.pandas_pickle(random.Random(seed), "small")
        compression = {".gz": "gzip", ".bz2": "bz2", ".xz": "xz", ".zip": "zip"}
        method = next((v for k, v in compression.items() if ext.endswith(k)), None)
        assert len(pd.read_pickle(io.BytesIO(data), compression=method)) > 0
    fn = dill.loads(benign.dill_function(random.Random(3), "small")[0])
    assert callable(fn)
    assert benign.cloudpickle_function(random.Random(4), "small")[0][:1] == b"\x80"


def test_hand_written_benign_quirks_load() -> None:
    for source in ("quirk_stack_global_in_proto2", "quirk_readonly_buffer", "plain_python"):
        data, _ = benign.SOURCES[source](random.Random(0), "small")
        assert pickle.loads(data) is not None


# -- corpus -------------------------------------------------------------------------------------
SUBSET = ["C1", "D1", "E4", "F:os.system", "plain_python", "numpy_npy", "zip_bomb"]


def _manifest(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_generate_is_deterministic_and_well_labelled(tmp_path: Path) -> None:
    first = _manifest(corpus.generate(tmp_path / "a", seed=3, families=SUBSET))
    second = _manifest(corpus.generate(tmp_path / "b", seed=3, families=SUBSET))
    assert [(r["path"], r["sha256"]) for r in first] == [(r["path"], r["sha256"]) for r in second]
    other = _manifest(corpus.generate(tmp_path / "c", seed=4, families=SUBSET))
    assert {r["sha256"] for r in other} != {r["sha256"] for r in first}

    labels = {r["label"] for r in first}
    assert labels == {"benign", "malicious"}
    for r in first:
        assert {"path", "label", "family", "group", "container", "sha256", "size"} <= set(r)
        data = (tmp_path / "a" / r["path"]).read_bytes()
        assert len(data) == r["size"]
        if r["label"] == "malicious":
            assert r["family"] in SUBSET and r["group"] in payloads.FAMILIES
            assert r["path"].startswith(f"malicious/{r['group']}/")
            assert r["container"] in wrappers.CONTAINERS
        else:
            assert r["path"].startswith("benign/") and r["family"] in SUBSET
    raw = [r for r in first if r["label"] == "malicious" and r["container"] == "raw"]
    assert raw
    for r in raw:
        data = (tmp_path / "a" / r["path"]).read_bytes()
        if r["family"] != "C1":
            assert all(visible(data, g) for g in r["globals"])


def test_cli_entry_point(tmp_path: Path) -> None:
    assert corpus.main([str(tmp_path), "--seed", "1", "--families", "C8,plain_python"]) == 0
    rows = _manifest(tmp_path / "manifest.jsonl")
    assert {r["family"] for r in rows} == {"C8", "plain_python"}


@pytest.mark.slow
def test_small_scale_corpus(tmp_path: Path) -> None:
    rows = _manifest(corpus.generate(tmp_path, seed=0, scale="small"))
    assert 200 <= len(rows) <= 1000
    families = {r["family"] for r in rows if r["label"] == "malicious"}
    assert families >= {key for key in payloads.PAYLOADS if not key.startswith("F:")}

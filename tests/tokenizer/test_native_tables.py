"""The tokenizer's generated native sources follow their Python homes (native/gen_tables.py),
and the Walker's class chain keeps every walk method a direct C call."""

from __future__ import annotations

import ast
import importlib
import re
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest

from fastscan import _bytescan, _tokenizer, facts
from fastscan.tokenizer import tokenize

ROOT = Path(__file__).resolve().parents[2]
NATIVE = ROOT / "native"


def _check(root: Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, str(root / "native/gen_tables.py"), "--check"], capture_output=True
    )


def _copy_sources(tmp_path: Path) -> None:
    (tmp_path / "native").mkdir()
    (tmp_path / "fastscan").mkdir()
    for path in [
        NATIVE / "gen_tables.py",
        NATIVE / "_tok_hot.tmpl",
        *NATIVE.glob("*.pyx"),
        *NATIVE.glob("*.pxi"),
    ]:
        shutil.copy(path, tmp_path / "native")
    for name in ("facts.py", "opcodes.py"):
        shutil.copy(ROOT / "fastscan" / name, tmp_path / "fastscan")
    assert _check(tmp_path).returncode == 0


def test_check_reports_a_stale_status_table(tmp_path: Path) -> None:
    _copy_sources(tmp_path)
    facts_py = tmp_path / "fastscan/facts.py"
    facts_py.write_text(
        facts_py.read_text().replace('STATUS_BUDGET = "budget"', 'STATUS_BUDGET = "b"')
    )
    proc = _check(tmp_path)
    assert proc.returncode == 1
    assert b"_tables.pxi is stale" in proc.stderr


def test_hot_cases_follow_the_opcode_table(tmp_path: Path) -> None:
    _copy_sources(tmp_path)
    hot = (tmp_path / "native/_tok_hot.pxi").read_text()
    assert "@STEP" not in hot
    # each fixed-size hot case steps over its table size; the others only check the frame
    for name, size in (("BINGET", 1), ("BININT2", 2), ("BININT", 4), ("BINFLOAT", 8)):
        case = hot.split(f"elif op == OP_{name}:\n", 1)[1]
        assert case.startswith(f"                pos += {size}\n                if pos > lim:\n")
    assert hot.split("elif op == OP_MARK:\n", 1)[1].startswith("                if pos > lim:\n")
    assert hot.count("self.pcounts[op] += 1") == 18
    # a case whose opcodes have different layouts cannot get one operand step
    tmpl = tmp_path / "native/_tok_hot.tmpl"
    tmpl.write_text(
        tmpl.read_text().replace("op == OP_BINFLOAT:", "op == OP_BINFLOAT or op == OP_BININT:")
    )
    proc = _check(tmp_path)
    assert proc.returncode == 1 and b"different argument layouts" in proc.stderr


def test_a_changed_table_size_reaches_the_hot_case(tmp_path: Path) -> None:
    _copy_sources(tmp_path)
    sys.path.insert(0, str(tmp_path / "native"))
    try:
        import gen_tables  # the copy, reading the copied opcode table
    finally:
        sys.path.pop(0)
    opcodes_py = tmp_path / "fastscan/opcodes.py"
    text = opcodes_py.read_text()
    assert "def _arg_layout" in text
    # pretend BINFLOAT's operand were 9 bytes: the generated step follows
    opcodes_py.write_text(
        text.replace(
            "def _arg_layout(op: pickletools.OpcodeInfo) -> tuple[int, int]:\n",
            "def _arg_layout(op: pickletools.OpcodeInfo) -> tuple[int, int]:\n"
            "    if op.name == 'BINFLOAT':\n        return ARG_FIXED, 9\n",
            1,
        )
    )
    hot = gen_tables.render_hot()
    assert hot.split("elif op == OP_BINFLOAT:\n", 1)[1].startswith("                pos += 9\n")
    assert "OP_BINFLOAT: (ARG_FIXED, 9)," in hot


def test_native_anomaly_codes_must_be_declared_in_facts(tmp_path: Path) -> None:
    _copy_sources(tmp_path)
    ops = tmp_path / "native/_tok_ops.pxi"
    ops.write_text(ops.read_text().replace("A_STOP_WITH_STACK", "A_STOP_WITH_STACKS"))
    proc = _check(tmp_path)
    assert proc.returncode == 1 and b"stop_with_stacks" in proc.stderr


def test_native_names_are_the_facts_vocabularies() -> None:
    emitted = set(_tokenizer.ANOMALY_NAMES)
    in_facts_order = tuple(c for c in facts.ALL_ANOMALY_CODES if c in emitted)
    assert in_facts_order == _tokenizer.ANOMALY_NAMES
    assert {"stack_underflow", "bad_text_operand", "resync_budget"} <= emitted
    assert "non_utf8_name" not in emitted  # a Python-side code has no native number
    walk = (facts.STATUS_OK, facts.STATUS_TRUNCATED, facts.STATUS_BAD_OPCODE, facts.STATUS_BUDGET)
    assert _tokenizer.STATUS_NAMES == _bytescan.STATUS_NAMES == walk


def test_native_codes_decode_to_their_names() -> None:
    # a STOP with two items left, then bytes that are no pickle; a second pickle cut short
    assert [a.code for a in tokenize(b"\x80\x02NN.\xff\xff").anomalies] == [
        "stop_with_stack",
        "trailing_junk",
    ]
    assert tokenize(b"\x80\x02N").status == facts.STATUS_TRUNCATED
    assert tokenize(b"\x80\x02N.").status == facts.STATUS_OK


def test_bytescan_is_its_own_extension() -> None:
    assert not hasattr(_tokenizer, "find") and not hasattr(_tokenizer, "list_opcodes")
    assert _bytescan.find(b"abcabc", b"ca", 0) == 2
    codes, offsets, _, _, end, status = _bytescan.list_opcodes(b"\x80\x02N.")
    assert (codes, offsets, end, status) == (b"\x80N.", [0, 2, 3], 4, "ok")
    assert _bytescan.list_opcodes(b"\x80\x02N")[-1] == facts.STATUS_TRUNCATED


def test_every_walker_method_is_final() -> None:
    # The Walker is a chain of internal classes (one per .pxi); a cdef method that is not final
    # would be called through the vtable, which gcc cannot inline.
    methods = 0
    for pxi in sorted(NATIVE.glob("_tok_*.pxi")):
        lines = pxi.read_text().splitlines()
        for i, line in enumerate(lines):
            if re.match(r"^    cdef [^=]*\(self\b", line):
                methods += 1
                in_final_class = any(
                    lines[j] == "@cython.final" and lines[j + 1].startswith("cdef class Walker")
                    for j in range(i)
                )
                assert in_final_class or lines[i - 1] == "    @cython.final", f"{pxi.name}: {line}"
    assert methods > 50
    assert [n for n in dir(_tokenizer) if "Walker" in n] == ["Walker"]  # the chain is internal


def test_every_extension_has_a_stub_naming_its_public_api() -> None:
    built = sorted({p.name.split(".")[0] for p in (ROOT / "fastscan").glob("_*.so")})
    declared = set(
        re.findall(r"for name in \(([^)]*)\)", (ROOT / "setup.py").read_text())[0]
        .replace('"', "")
        .replace(" ", "")
        .split(",")
    )
    assert set(built) == declared
    for name in built:
        stub = ROOT / "fastscan" / f"{name}.pyi"
        assert stub.exists(), name
        tree = ast.parse(stub.read_text())
        names = {n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.ClassDef)}
        names |= {
            n.target.id
            for n in tree.body
            if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)
        }
        module = importlib.import_module(f"fastscan.{name}")
        public = {
            n
            for n, v in vars(module).items()
            if not n.startswith("_") and not isinstance(v, types.ModuleType)
        }
        assert public <= names, (name, sorted(public - names))


@pytest.mark.skipif(shutil.which("nm") is None, reason="needs binutils' nm")
def test_the_hot_walk_starts_on_a_cache_line() -> None:
    # setup.py builds the tokenizer with -falign-functions=64: the walk's speed must not depend
    # on how much code precedes walk_one
    (so,) = (ROOT / "fastscan").glob("_tokenizer.*.so")
    symbols = subprocess.run(["nm", str(so)], capture_output=True, text=True, check=True).stdout
    (address,) = [
        line.split()[0]
        for line in symbols.splitlines()
        if "walk_one" in line and not line.rstrip().endswith(".cold")
    ]
    assert int(address, 16) % 64 == 0

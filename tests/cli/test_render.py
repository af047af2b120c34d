"""fastscan.render: pickles shown as the Python the loader would run (issue #14 item 6).

Benign objects are pickled here from real libraries; malicious ones reduce to harmless `echo`.
Rendering only walks opcodes: a module named in a pickle is never imported."""

from __future__ import annotations

import collections
import io
import os
import pickle
import sys
import zipfile

import pytest

from fastscan.explain import render
from fastscan.render import MAX_ITEMS, MAX_STATEMENTS, render_pickles
from fastscan.rules import RuleSet
from fastscan.rules.knowledge import load_shipped
from fastscan.scan import Scanner
from tests.index_fake import sample


class _Shell:
    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, ("echo hi",))


def _py(data: bytes) -> list[str]:
    return render_pickles(data, [0])


@pytest.mark.parametrize("proto", range(pickle.HIGHEST_PROTOCOL + 1))
def test_reduce_is_a_call_in_every_protocol(proto: int) -> None:
    lines = _py(pickle.dumps(_Shell(), protocol=proto))
    assert lines == ["import posix", "result = posix.system('echo hi')"]


def test_sklearn_estimator_reads_as_new_then_setstate() -> None:
    np = pytest.importorskip("numpy")
    lm = pytest.importorskip("sklearn.linear_model")
    model = lm.LinearRegression().fit(np.arange(6.0).reshape(3, 2), [1.0, 2.0, 3.0])
    lines = _py(pickle.dumps(model, protocol=4))
    assert "from sklearn.linear_model._base import LinearRegression" in lines
    assert lines[lines.index("obj1 = LinearRegression.__new__(LinearRegression)") + 1 :]
    state = next(line for line in lines if line.startswith("obj1.__setstate__("))
    assert "'fit_intercept': True" in state and "more)" in state  # 11 attributes, 6 shown
    assert lines[-1] == "result = obj1"


def test_torch_state_dict_shows_tensor_rebuilds_and_persistent_ids() -> None:
    torch = pytest.importorskip("torch")
    buf = io.BytesIO()
    torch.save(torch.nn.Linear(2, 3).state_dict(), buf)
    with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as z:
        data = z.read(next(n for n in z.namelist() if n.endswith("data.pkl")))
    lines = _py(data)
    assert "obj1 = OrderedDict()" in lines
    weight = next(line for line in lines if line.startswith("obj1['weight'] = "))
    assert "torch._utils._rebuild_tensor_v2(persistent_load(('storage', FloatStorage, '0'" in weight
    assert lines[-1] == "result = obj1"


def test_long_values_and_many_statements_are_elided_with_counts() -> None:
    big = collections.OrderedDict((f"k{i}", i) for i in range(500))
    lines = _py(pickle.dumps([big, "x" * 5000, b"\0" * 9000], protocol=4))
    assert any("…(5000 chars)" in line for line in lines)
    assert any("…(9000 bytes)" in line for line in lines)
    assert sum(line.startswith("obj1[") for line in lines) == MAX_ITEMS
    assert f"# … (+{500 - MAX_ITEMS} more)" in lines
    many = _py(pickle.dumps([_Shell() for _ in range(3 * MAX_STATEMENTS)], protocol=0))
    assert len(many) < MAX_STATEMENTS + 10


def test_protocol_0_inst_obj_and_memo_sharing() -> None:
    # INST and OBJ both call the class; a value used twice becomes a variable
    inst = b"(S'echo hi'\nisubprocess\nPopen\np0\n(g0\ng0\nl."
    lines = _py(inst)
    assert lines[:2] == ["from subprocess import Popen", "obj1 = Popen('echo hi')"]
    assert lines[-1] == "result = [obj1, obj1]"
    obj = b"(cbuiltins\nexec\nS'print(1)'\no."
    assert _py(obj)[-1] == "result = builtins.exec('print(1)')"


def test_newobj_ex_build_setitems_appends_additems_on_objects() -> None:
    data = (
        b"\x80\x04\x8c\x03lib\x8c\x01C\x93)}\x92"  # C.__new__(C, **{})
        b"(\x8c\x01a\x8c\x01bu"  # SETITEMS on the object
        b"(K\x01e"  # APPENDS
        b"(K\x02\x90"  # ADDITEMS
        b"}b."  # BUILD
    )
    lines = _py(data)
    assert lines[0] == "from lib import C"
    assert lines[1:] == [
        "obj1 = C.__new__(C, **{})",
        "obj1['a'] = 'b'",
        "obj1.extend([1])",
        "obj1.add(2)",
        "obj1.__setstate__({})",
        "result = obj1",
    ]


def test_broken_streams_are_described_not_raised() -> None:
    assert _py(b"R.")[-1].startswith("# offset 0: stack underflow")
    assert _py(b"\x80\x02cos\nsystem\n")[-1].startswith("# the pickle ends without STOP")
    assert "getattr(import_module(" in "".join(_py(b"\x80\x04K\x01K\x02\x93."))
    assert "<memo 7 never stored>" in _py(b"h\x07.")[-1]


def test_rendering_imports_nothing() -> None:
    assert "fastscan_test_never_imported" not in sys.modules
    lines = _py(b"cfastscan_test_never_imported\nboom\n(S'x'\ntR.")
    assert lines[-1] == "result = fastscan_test_never_imported.boom('x')"
    assert "fastscan_test_never_imported" not in sys.modules


def test_explain_shows_python_and_what_the_index_knows(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "w.pkl"
    path.write_bytes(b"\x80\x02cacme.pipes\nSerializationWrapper\n)\x81}b.")
    scanner = Scanner(model=None, rules=RuleSet(load_shipped(), index=sample()))
    analysis, result = scanner.explain_source(str(path), str(path), keep_data=1 << 20)
    assert analysis is not None
    text = "\n".join(render(analysis, result, analysis.data, scanner.rules))
    assert "obj1 = SerializationWrapper.__new__(SerializationWrapper)" in text
    assert "obj1.__setstate__({})" in text
    assert "index: class of acme" in text
    assert (
        "load-time setstate -> [nested_loader] acme.pipes.SerializationWrapper.__setstate__"
        " -> pickle.loads" in text
    )
    assert result.verdict == "malicious" and "FS110" in text


def test_rendering_budget_is_said_not_mistaken_for_a_broken_stream(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import fastscan.render as render_module

    monkeypatch.setattr(render_module, "MAX_OPS", 10)
    lines = render_module.render_pickles(pickle.dumps(list(range(100)), protocol=2), [0])
    assert lines[-1] == "# rendering stopped after 10 opcodes; the pickle goes on"


def test_mutated_pickles_render_and_attribute_without_raising() -> None:
    import random

    from fastscan.rules.fills import container_targets
    from fastscan.rules.indexed import RECONSTRUCTORS

    seeds = [
        pickle.dumps(obj, protocol=p)
        for p in range(pickle.HIGHEST_PROTOCOL + 1)
        for obj in (
            {"a": [1, 2.5, "x" * 300, b"y" * 50, None, True], "b": (1, (2, (3,)))},
            collections.OrderedDict(a={1, 2}, b=frozenset([3])),
            [[]] * 3,
            10**30,
        )
    ]
    rng = random.Random(0)
    for _ in range(3000):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 6)):
            i = rng.randrange(len(data) + 1)
            kind = rng.randrange(3)
            if kind == 0 and i < len(data):
                data[i] = rng.randrange(256)
            elif kind == 1:
                data[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
            else:
                del data[i : i + rng.randint(1, 8)]
        render_pickles(bytes(data), [0])
        container_targets(bytes(data), [0], RECONSTRUCTORS, 10_000)

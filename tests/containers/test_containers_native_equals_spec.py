"""Stage 2's native and fast paths against their specifications.

- the native joblib walk (`fastscan._joblibwalk`) against tests/specs/joblib_walk.py, the
  pre-native implementation: the same segments and the same anomalies (codes and detail strings)
  on real dumps (numpy, object and sklearn arrays; compressed or not; protocols 0..5; aligned or
  not), on truncated and bit-flipped copies of them, on hostile hand-made streams and on
  hypothesis-generated opcode soups;
- the zip listing's per-member `routable` bit (`fastscan._zipdir`) against tests/specs/may_route.py,
  and that one against `sniff`; torch-zip name searches against a set; the npy header fast path
  against ast.literal_eval;
- the joblib wrapper search is the marker regex.
"""

from __future__ import annotations

import io
import random
import struct
import zipfile
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastscan import _joblibwalk
from fastscan.containers import joblib_dump, npy, open_container, sniff
from fastscan.containers.base import ContainerAnomaly
from fastscan.train import benign, wrappers
from tests.containers_helpers import splice_after_array, stack_call
from tests.specs import joblib_walk as spec
from tests.specs.may_route import may_route

joblib = pytest.importorskip("joblib")

Split = tuple[list[tuple[int, int, str]], list[tuple[str, str]]]


def spec_split(data: bytes, max_ops: int = spec.MAX_WALK_OPCODES) -> Split:
    segments, anomalies = spec.split_dump(memoryview(data), max_ops=max_ops)
    return [(s.start, s.end, s.kind) for s in segments], anomalies


def native_split(data: bytes, max_ops: int = spec.MAX_WALK_OPCODES) -> Split:
    segments, anomalies = _joblibwalk.split(memoryview(data), max_ops)
    return segments, anomalies


def assert_same(data: bytes, max_ops: int = spec.MAX_WALK_OPCODES) -> Split:
    expected = spec_split(data, max_ops)
    assert native_split(data, max_ops) == expected, data[:200]
    return expected


def split_inputs(data: bytes, name: str = "m.joblib") -> list[bytes]:
    """The (decompressed) buffers the container pipeline hands to `split_dump` for one file."""
    seen: list[bytes] = []
    real = joblib_dump.split_dump

    def record(view: memoryview) -> tuple[list[joblib_dump._Segment], list[tuple[str, str]]]:
        seen.append(bytes(view))
        return real(view)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(joblib_dump, "split_dump", record)
        with open_container(data, name=name):
            pass
    return seen


def dump(obj: object, compress: object = 0, protocol: int | None = None) -> bytes:
    out = io.BytesIO()
    joblib.dump(obj, out, compress=compress, protocol=protocol)
    return out.getvalue()


def _objects() -> list[object]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler
    from sklearn.tree import DecisionTreeClassifier

    x = np.arange(40, dtype=np.float64).reshape(20, 2)
    y = np.arange(20) % 2
    return [
        np.arange(100, dtype=np.float32),
        {"a": np.arange(50, dtype=np.float64), "o": np.array([1, "x"], dtype=object), "z": 7},
        [np.zeros((3, 4), dtype=np.int8, order="F"), np.array(["ab", "c"]), np.array([], "f8")],
        {"t": np.array([1, 2], dtype="datetime64[s]"), "c": np.ones(3, dtype=np.complex64)},
        np.zeros(4, dtype=[("x", "<i4"), ("y", "<f8")]),
        np.array([b"xy", b"z"]),
        np.array([True, False]),
        [np.array([None, {"k": np.arange(3)}], dtype=object), np.arange(5)],
        DecisionTreeClassifier(max_depth=3).fit(x, y),
        LogisticRegression().fit(x, y),
        StandardScaler().fit(x),
    ]


@pytest.fixture(scope="module")
def real_dumps() -> list[bytes]:
    """Plain pickle bytes of real joblib dumps, as `split_dump` receives them."""
    out: list[bytes] = []
    for i, obj in enumerate(_objects()):
        for compress, protocol in ((0, None), (3, None), (0, 2 + i % 4), (("zlib", 3), 5 - i % 4)):
            out.extend(split_inputs(dump(obj, compress, protocol)))
    out.extend(split_inputs(dump(_objects()[1], 0, 0)))  # protocol 0: text operands
    out.extend(split_inputs(dump(_objects()[8], 0, 1)))
    rng = random.Random(7)
    for _ in range(3):
        out.extend(split_inputs(benign.sklearn_joblib(rng, "small")[0]))
    out.append(benign.joblib_with_array(3)[0])
    return out


@pytest.fixture(scope="module")
def hostile_dumps() -> list[bytes]:
    data = dump([np.arange(100, dtype=np.float32), "x"])
    shape_at = data.index(b"K\x64\x85")  # BININT1 100, TUPLE1: the shape (100,)
    snippet = b"\x8c\x02os\x8c\x06system\x93\x8c\x04echo\x85R."
    return [
        splice_after_array(stack_call(b"os", b"system", b"echo fastscan-test")),
        splice_after_array(stack_call(b"collections", b"OrderedDict", None)),
        data[:shape_at] + b"K\x63" + data[shape_at + 2 :],  # one element short
        data[:shape_at] + b"K\x65" + data[shape_at + 2 :],  # one element long
        data[:shape_at] + b"J" + struct.pack("<i", 1 << 27) + data[shape_at + 2 :],  # 1 GB
        data[:shape_at] + b"\x8a\x21" + b"\x7f" * 33 + data[shape_at + 2 :],  # a 2**263 shape
        data[:shape_at] + b"J" + struct.pack("<i", -1) + data[shape_at + 2 :],  # negative
        data[:shape_at] + b"N" + data[shape_at + 2 :],  # shape (None,)
        data.replace(b"<f4", b"<q4", 1),  # dtype letter without a size
        data.replace(b"<f4", b"<f9", 1),
        data + b"\x80\x04N.",  # trailing pickle
        data + b"\x00junk",
        wrappers.wrap("joblib_after_array", snippet, random.Random(1))[0],
    ]


def test_real_dumps_are_split_identically(real_dumps: list[bytes]) -> None:
    assert len(real_dumps) > 40
    for data in real_dumps:
        segments, anomalies = assert_same(data)
        assert not anomalies, anomalies
        assert segments[-1][1] == len(data)


def test_split_dump_wraps_the_native_result(real_dumps: list[bytes]) -> None:
    data = next(d for d in real_dumps if "npy_object" in {kind for *_, kind in spec_split(d)[0]})
    segments, anomalies = joblib_dump.split_dump(memoryview(data))
    assert [(s.start, s.end, s.kind) for s in segments] == spec_split(data)[0]
    assert all(isinstance(s, joblib_dump._Segment) for s in segments) and anomalies == []
    assert len(segments) >= 3  # cut around the float array and into the object array's pickle


def test_hostile_dumps_are_split_identically(hostile_dumps: list[bytes]) -> None:
    codes = set()
    for data in hostile_dumps:
        codes.update(code for code, _ in assert_same(data)[1])
    assert {"joblib_array_extent_mismatch", "trailing_data", "joblib_unparsed"} <= codes


def test_a_gigabyte_extent_in_a_small_file_is_an_anomaly(hostile_dumps: list[bytes]) -> None:
    data = hostile_dumps[4]  # 2**27 float32 elements (512 MiB) declared in a 658-byte dump
    segments, anomalies = native_split(data)
    assert len(data) < 1000
    # 16 bytes of padding (alignment) plus the padding-length byte come before the array bytes
    assert anomalies == [
        ("joblib_array_extent_mismatch", "array at 226 needs 536870929 bytes, file ends")
    ]
    assert segments == [(0, 226, "joblib")]


@pytest.mark.parametrize("max_ops", [1, 2, 3, 7, 20, 60])
def test_walk_budget_matches(real_dumps: list[bytes], max_ops: int) -> None:
    for data in real_dumps[:12]:
        assert_same(data, max_ops)
    assert spec_split(real_dumps[0], 3)[1][0][0] == "joblib_walk_budget"


def test_truncated_copies_match(real_dumps: list[bytes]) -> None:
    rng = random.Random(3)
    for data in real_dumps[::3]:
        cuts = {*range(min(len(data), 300)), *(rng.randrange(len(data)) for _ in range(40))}
        for cut in sorted(cuts):
            assert_same(data[:cut])


def test_bit_flipped_copies_match(real_dumps: list[bytes]) -> None:
    rng = random.Random(4)
    for data in real_dumps[::2]:
        for _ in range(60):
            at = rng.randrange(min(len(data), 2000))
            flipped = bytearray(data)
            flipped[at] ^= 1 << rng.randrange(8)
            assert_same(bytes(flipped))


def _raw(body: bytes) -> bytes:
    return b"\x80\x04" + body


def _wrapper_with_state(state: bytes) -> bytes:
    head = b"\x8c\x13joblib.numpy_pickle\x8c\x11NumpyArrayWrapper\x93)\x81"
    return _raw(head + state + b"b.")


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b".",
        b"\x80\x04.",
        _raw(b"t."),  # TUPLE without a mark
        _raw(b"R."),  # stack underflow
        _raw(b"(o."),  # OBJ without class
        _raw(b"\x8c\x01\xff."),  # undecodable SHORT_BINUNICODE
        _raw(b"\x58\x02\x00\x00\x00\xed\xa0."),  # a lone surrogate: decodes (surrogatepass)
        _raw(b"Ixyz\n."),  # junk text INT
        _raw(b"I01\n\x94."),
        _raw(b"F1e999\n."),
        _raw(b"cos\nsystem\n."),
        _raw(b"(ios\nsystem\n."),
        _raw(b"P123\nQ."),
        _raw(b"\x82\x01\x83\x01\x00\x84\x01\x00\x00\x00\x97\x98."),
        _raw(b"T\xff\xff\xff\xff."),  # negative BINSTRING length: bad opcode
        _raw(b"\x8b\xff\xff\xff\xff."),  # negative LONG4 length
        _raw(b"B\xff\xff\xff\x7fab."),  # BINBYTES longer than the file
        _raw(b"\x96\x03\x00\x00\x00\x00\x00\x00\x00abc}\x94h\x00(ds."),  # bytearray key: unhashable
        _raw(b"}(K\x01K\x02K\x01K\x03u\x8c\x01a\x85\x94h\x00\x86\x94."),
        _raw(b"\xff"),
        _wrapper_with_state(b"N"),
        _wrapper_with_state(b"}\x8c\x05shape\x8c\x01a\x8c\x01b\x93)R\x94h\x00\x85bs"),  # cycle
        _wrapper_with_state(
            b"}(\x8c\x05shape\x8c\x01x\x8c\x05dtype\x8c\x05numpy\x8c\x05dtype\x93\x8c\x02f8\x85Ru"
        ),
        _wrapper_with_state(
            b"}(\x8c\x05shape\x8c\x01x\x8c\x05dtype\x8c\x05numpy\x8c\x05dtype\x93\x8c\x02O8\x85Ru"
        ),
        _wrapper_with_state(
            b"}(\x8c\x05shape)\x8c\x05dtype\x8c\x05numpy\x8c\x05dtype\x93\x8c\x02f"
            + b"9" * 5000
            + b"\x85Ru"
        ),  # a size beyond int()'s digit limit
    ],
    ids=lambda data: f"{len(data)}B",
)
def test_hand_made_streams_match(data: bytes) -> None:
    assert_same(data)


def _doubled(levels: int) -> bytes:
    """A tuple whose every level holds the previous one twice (shared via the memo): tiny on
    disk, 2**levels leaves when hashed or printed naively."""
    out = b"N\x94"
    for level in range(levels):
        out += b"h" + bytes([level]) + b"h" + bytes([level]) + b"\x86\x94"
    return out


@pytest.mark.parametrize(
    "data",
    [
        _raw(b"(N" + b"\x85" * 100_000 + b"d\x94."),  # DICT key nested 100,000 deep
        _raw(b"}N" + b"\x85" * 100_000 + b"Ns."),  # SETITEM key
        _raw(b"(N" + b"\x85" * 65 + b"Nd."),  # just past MAX_DEPTH
        _raw(b"(N" + b"\x85" * 63 + b"Nd."),  # just inside
        _raw(_doubled(60) + b"(h\x3cNd."),
        _raw(_doubled(60) + b"h\x3ch\x3c\x93."),  # STACK_GLOBAL of the doubled tuple
        _wrapper_with_state(b"}\x8c\x05shape" + _doubled(60) + b"h\x3cs"),
        _wrapper_with_state(b"}\x8c\x05shape(" + b"K\x01" * 65 + b"ts"),  # 65 dimensions
        _wrapper_with_state(b"}\x8c\x05shape(" + b"K\x01" * 64 + b"ts"),
    ],
    ids=lambda data: f"{len(data)}B",
)
def test_values_too_large_to_hash_or_print_are_bounded(data: bytes) -> None:
    _, anomalies = assert_same(data)
    assert all(len(detail) < 2000 for _, detail in anomalies)


def test_bounds_are_the_specifications() -> None:
    for name in ("MAX_DEPTH", "MAX_NODES", "MAX_DIMS", "TOO_LARGE"):
        assert getattr(_joblibwalk, name) == getattr(spec, name)


def test_reprs_in_details_match_the_dataclass_ones() -> None:
    shape = b"\x8c\x01a\x8c\x01b\x93)R(K\x01\x8c\x01x}tb"
    _, anomalies = assert_same(_wrapper_with_state(b"}\x8c\x05shape" + shape + b"s"))
    printed = "_Obj(cls=_Global(module='a', name='b'), args=(), state=(1, 'x', {}))"
    assert anomalies == [("joblib_array_extent_mismatch", f"wrapper at 73: shape {printed}")]
    cyclic = _wrapper_with_state(b"}\x8c\x05shape\x8c\x01a\x8c\x01b\x93)R\x94h\x00\x85bs")
    _, anomalies = assert_same(cyclic)
    assert anomalies == [
        ("joblib_array_extent_mismatch", "wrapper at 69: shape <too large to print>")
    ]


# -- generated streams ----------------------------------------------------------------------

_WORDS = [
    b"shape",
    b"dtype",
    b"order",
    b"C",
    b"numpy_array_alignment_bytes",
    b"allow_mmap",
    b"joblib.numpy_pickle",
    b"NumpyArrayWrapper",
    b"numpy",
    b"copyreg",
    b"_reconstructor",
    b"<f8",
    b"f4",
    b"|O",
    b"U3",
]
_FIXED = [
    *b"(}])N\x88\x89.tldaeu\x85\x86\x87RbsqP0120\x81\x92\x93\x94\x90\x91\x97\x98\x8f",
]


def _fragment() -> object:
    word = st.sampled_from(_WORDS).map(_short)
    return st.one_of(
        _wrapper(),
        st.sampled_from(_FIXED).map(lambda b: bytes([b])),
        word,
        word,
        st.integers(0, 255).map(lambda i: b"K" + bytes([i])),
        st.integers(-(2**31), 2**31 - 1).map(lambda i: b"J" + struct.pack("<i", i)),
        st.integers(0, 4).map(lambda i: b"h" + bytes([i])),
        st.integers(0, 4).map(lambda i: b"q" + bytes([i])),
        st.sampled_from([b"cnumpy\ndtype\n", b"cjoblib.numpy_pickle\nNumpyArrayWrapper\n"]),
        st.sampled_from([b"I7\n", b"I00\n", b"p1\n", b"g1\n", b"Vx\n", b"S'a'\n", b"\x8a\x01\xff"]),
        st.binary(max_size=6),
    )


def _short(text: bytes) -> bytes:
    return b"\x8c" + bytes([len(text)]) + text


@st.composite
def _wrapper(draw: Callable[[object], object]) -> bytes:
    """A NumpyArrayWrapper as joblib writes it, with a drawn shape/dtype, then drawn raw bytes."""
    dims = draw(st.lists(st.integers(0, 6), max_size=3))
    shape = b"".join(b"K" + bytes([d]) for d in dims) if len(dims) != 0 else b""
    shape = (b"(" + shape + b"t") if len(dims) != 0 and draw(st.booleans()) else shape
    shape += {0: b")", 1: b"\x85", 2: b"\x86", 3: b"\x87"}[len(dims)] if b"(" not in shape else b""
    code = draw(st.sampled_from([b"f8", b"<f4", b"O8", b"i2", b"U3", b"b1", b"q", b"V0"]))
    dtype = _short(b"numpy") + _short(b"dtype") + b"\x93" + _short(code) + b"\x89\x88\x87R"
    if draw(st.booleans()):
        elsize = draw(st.sampled_from([b"J\xff\xff\xff\xff", b"K\x03", b"K\x00"]))
        flags = draw(st.sampled_from([b"K\x00", b"K\x3f", b"N"]))
        dtype += b"(K\x03" + _short(b"<") + b"NNN" + elsize + b"J\xff\xff\xff\xff" + flags + b"tb"
    align = draw(st.sampled_from([b"K\x10", b"N", b""]))
    state = b"}(" + _short(b"shape") + shape + _short(b"dtype") + dtype
    state += _short(b"order") + _short(b"C")
    if align:
        state += _short(b"numpy_array_alignment_bytes") + align
    head = _short(b"joblib.numpy_pickle") + _short(b"NumpyArrayWrapper") + b"\x93)\x81"
    return head + state + b"ub" + draw(st.binary(max_size=40))


def _soup(draw: Callable[[object], object]) -> bytes:
    parts = draw(st.lists(_fragment(), max_size=60))
    return b"\x80\x04" + b"".join(parts)  # type: ignore[arg-type]


@settings(max_examples=400, deadline=None, derandomize=True)
@given(st.composite(_soup)())
def test_generated_opcode_soups_match(data: bytes) -> None:
    assert_same(data)
    assert_same(data, 5)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(
    index=st.integers(0, 15),
    edits=st.lists(st.tuples(st.integers(0, 10**6), st.binary(max_size=4), st.integers(0, 3))),
)
def test_edited_real_dumps_match(index: int, edits: list[tuple[int, bytes, int]]) -> None:
    data = bytearray(benign.joblib_with_array(index)[0])
    for offset, insert, delete in edits:
        at = offset % (len(data) + 1)
        data[at : at + delete] = insert
    assert_same(bytes(data))


# -- zip member routing, torch zip names, npy headers ---------------------------------------------

_ROUTED = {"raw_pickle", "torch_legacy", "zip", "tar", "7z", "npy", "empty"} | {
    "gzip",
    "bz2",
    "xz",
    "lzma",
    "lz4",
    "zlib",
    "joblib_zfile",
}


@settings(max_examples=400, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=2048),
        st.builds(
            lambda b, t: b + t,
            st.sampled_from([b"PK\x05\x06", b"ustar", b"\x80\x02"]),
            st.binary(max_size=600),
        ),
        st.builds(
            lambda t, b: t + b"PK\x05\x06" + b, st.binary(max_size=600), st.binary(max_size=64)
        ),
    )
)
def test_may_route_never_skips_what_sniff_would_route(data: bytes) -> None:
    # the zip fast path skips members with may_route False: sniff must agree they go nowhere
    if not may_route(data, 0, len(data)):
        assert sniff(data) not in _ROUTED
    if not may_route(memoryview(data), 0, len(data)):  # the copying branch
        assert sniff(data) not in _ROUTED


_MEMBER_BODIES = st.one_of(
    st.binary(max_size=1200),
    st.builds(
        lambda h, t: h + t,
        st.sampled_from([b"PK\x05\x06", b"\x80\x04", b"ZF0x"]),
        st.binary(max_size=700),
    ),
    # old-style tar headers: a checksum field made of octal-ish characters at offset 148
    st.builds(
        lambda a, c, b: a[:148].ljust(148, b"a") + c + b,
        st.binary(min_size=1, max_size=148),
        st.text("01234567 +-_o\0", min_size=8, max_size=8).map(str.encode),
        st.binary(min_size=356, max_size=600),
    ),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_MEMBER_BODIES, min_size=1, max_size=4), st.integers(16, 2048))
def test_native_listing_routable_matches_may_route(bodies: list[bytes], window: int) -> None:
    from fastscan.containers import zipread

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for i, body in enumerate(bodies):
            zf.writestr(f"archive/data/{i}", body)
    data = buf.getvalue()
    listing = zipread.list_zip(data, window)
    assert len(listing.entries) == len(bodies)
    for e in listing.entries:  # the native `plain` bit skips exactly what reports nothing
        found: list[ContainerAnomaly] = []
        zipread._entry_anomalies(e, set(), found)
        assert e.plain == (found == [])
    for e, body in zip(listing.entries, bodies, strict=True):
        end = min(len(data), e.data_offset + e.compressed_size, e.data_offset + window)
        assert bytes(memoryview(data)[e.data_offset : e.data_offset + len(body)]) == body
        # the native answer may say "routable" more often (conservative), never less
        if not e.routable:
            assert not may_route(data, e.data_offset, end)
        if not may_route(data, e.data_offset, end) and end - e.data_offset < 512:
            assert not e.routable  # below a tar header's size both answers are exact


_NAME_PARTS = st.sampled_from(
    ["a", "arch", "/", "code/", "data/", "data.pkl", "constants.pkl", "byteorder", "version",
     ".data/version", ".npy", "x.npy", "\n", "", "0"]
)  # fmt: skip


@settings(max_examples=600, deadline=None)
@given(st.lists(st.lists(_NAME_PARTS, max_size=5).map("".join), max_size=12))
def test_torch_zip_name_searches_match_the_set_specification(names: list[str]) -> None:
    from fastscan.containers import torch_zip
    from fastscan.containers.zipread import ZipEntry

    assert torch_zip.classify(names) == torch_zip._classify_by_sets(names)
    entries = [ZipEntry(n, n, 0, 0, 0, 0, 0, 0, 0) for n in names]
    endings = ("byteorder", "version")
    expected = [e for e in entries if "code/" in e.name or e.name.endswith(endings)]
    assert [id(e) for e in torch_zip._record_candidates(entries)] == [id(e) for e in expected]


_HEADER_PARTS = st.sampled_from(
    ["{'descr': '", "<f4", "|O", "<M8[s]", "', 'fortran_order': ", "True", "False", "Fals",
     ", 'shape': (", ")", ", }", "3", "0", "07", "12", ",", ", ", " ", "\n", "'", "}", "\\'"]
)  # fmt: skip


@settings(max_examples=1500, deadline=None)
@given(st.lists(_HEADER_PARTS, max_size=14).map("".join))
def test_npy_header_fast_path_is_literal_eval(text: str) -> None:
    import ast

    fast = npy._numpy_written(text)
    if fast is not None:
        assert fast == ast.literal_eval(text)
        assert type(fast["shape"]) is tuple


@pytest.mark.parametrize("shape", [(), (0,), (5,), (3, 4), (2, 3, 4)])
@pytest.mark.parametrize("order", ["C", "F"])
def test_npy_headers_numpy_writes_take_the_fast_path(shape: tuple[int, ...], order: str) -> None:
    import ast

    out = io.BytesIO()
    np.save(out, np.zeros(shape, dtype="<f4", order=order))
    data = out.getvalue()
    hlen = int.from_bytes(data[8:10], "little")
    text = data[10 : 10 + hlen].decode("latin-1")
    assert npy._numpy_written(text) == ast.literal_eval(text)


_WRAPPER_SOUP = st.lists(
    st.sampled_from([b"Numpy", b"ND", b"ArrayWrapper", b"Array", b"Wrapper", b"x", b"\x80"]),
    max_size=8,
).map(b"".join)


@settings(max_examples=500, deadline=None)
@given(_WRAPPER_SOUP)
def test_wrapper_search_matches_the_marker_regex(data: bytes) -> None:
    import re

    from fastscan.containers.joblib_dump import WRAPPER_MARKERS, buffer_has_wrapper

    marker = re.compile(b"|".join(re.escape(m) for m in WRAPPER_MARKERS))
    assert buffer_has_wrapper(data) == (marker.search(data) is not None)

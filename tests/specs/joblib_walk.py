"""The Python specification of the joblib split: `split_dump` as it was before the native walk.

`fastscan.containers.joblib_dump.split_dump` now runs `fastscan._joblibwalk`;
tests/containers/test_containers_native_equals_spec.py checks that it returns exactly what this
code returns (segments, anomaly codes and details) on real dumps, mutated dumps and hostile
streams. Kept verbatim except: the walk budget is a parameter; the MARK/UNKNOWN sentinels are the
native module's, so details that print them match; and (session 3) symbolic values are only
hashed, printed or str()-ed when `_bounded` (see there), shapes have at most MAX_DIMS dimensions.
"""

from __future__ import annotations

import math
import pickletools
import re
from dataclasses import dataclass, field
from typing import Any

from fastscan._joblibwalk import MARK as _MARK
from fastscan._joblibwalk import UNKNOWN as _UNKNOWN
from fastscan.containers._probe import iter_ops

KIND = "joblib"
MAX_WALK_OPCODES = 5_000_000
MAX_DEPTH = 64  # containers a hashed or printed symbolic value may nest
MAX_NODES = 10_000  # nodes (counted along every path) a hashed or printed value may have
MAX_DIMS = 64  # numpy's own limit on dimensions
TOO_LARGE = "<too large to print>"

_DTYPE_CODE = re.compile(r"^[<>|=]?([a-zA-Z])(\d*)")
_FIXED_SIZES = {"b": 1, "B": 1, "?": 1, "M": 8, "m": 8, "O": 8, "e": 2, "g": 16, "G": 32}


@dataclass(frozen=True, slots=True)
class _Global:
    module: str
    name: str


@dataclass(slots=True)
class _Obj:
    cls: Any
    args: Any
    state: Any = None


@dataclass(slots=True)
class _Segment:
    start: int
    end: int
    kind: str


_CONTAINERS = (tuple, list, dict, _Obj)


class _Confused(Exception):
    """The symbolic stack cannot follow this stream (underflow, odd shapes)."""


@dataclass(slots=True)
class _Interp:
    """Just enough of an unpickler to see a wrapper's state dict, without importing anything."""

    stack: list[Any] = field(default_factory=list)
    memo: dict[int, Any] = field(default_factory=dict)

    def pop(self) -> Any:
        if not self.stack:
            raise _Confused("stack underflow")
        return self.stack.pop()

    def pop_mark(self) -> list[Any]:
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i] is _MARK:
                items = self.stack[i + 1 :]
                del self.stack[i:]
                return items
        raise _Confused("no mark")

    def step(self, name: str, arg: Any) -> None:
        kind = _STEP_KIND[name]
        s = self.stack
        if kind == _PUSH_ARG:
            s.append(arg)
        elif kind == _PUT:
            if s:
                self.memo[len(self.memo) if name == "MEMOIZE" else int(arg)] = s[-1]
        elif kind == _GET:
            s.append(self.memo.get(int(arg), _UNKNOWN))
        elif kind == _CONST:
            s.append(_CONSTANTS[name]())
        elif kind == _SKIP:
            return
        else:
            self._structural(name, arg)

    def _structural(self, name: str, arg: Any) -> None:
        s = self.stack
        if name == "MARK":
            s.append(_MARK)
        elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
            n = int(name[-1])
            items = [self.pop() for _ in range(n)][::-1]
            s.append(tuple(items))
        elif name == "TUPLE":
            s.append(tuple(self.pop_mark()))
        elif name in ("LIST", "FROZENSET"):
            s.append(self.pop_mark())
        elif name == "DICT":
            items = self.pop_mark()
            s.append(dict(zip(items[::2], items[1::2], strict=False)) if _hashable(items) else {})
        elif name == "APPEND":
            self.pop()
        elif name in ("APPENDS", "ADDITEMS"):
            self.pop_mark()
        elif name == "SETITEM":
            value, key = self.pop(), self.pop()
            if s and isinstance(s[-1], dict) and _hashable([key]):
                s[-1][key] = value
        elif name == "SETITEMS":
            items = self.pop_mark()
            if s and isinstance(s[-1], dict) and _hashable(items[::2]):
                s[-1].update(zip(items[::2], items[1::2], strict=False))
        elif name == "GLOBAL":
            module, _, attr = str(arg).partition(" ")
            s.append(_Global(module, attr))
        elif name == "STACK_GLOBAL":
            attr, module = self.pop(), self.pop()
            s.append(_Global(_text(module), _text(attr)))
        elif name == "INST":
            module, _, attr = str(arg).partition(" ")
            s.append(_Obj(_Global(module, attr), tuple(self.pop_mark())))
        elif name == "OBJ":
            items = self.pop_mark()
            if not items:
                raise _Confused("OBJ without class")
            s.append(_Obj(items[0], tuple(items[1:])))
        elif name in ("REDUCE", "NEWOBJ"):
            args = self.pop()
            s.append(_Obj(self.pop(), args))
        elif name == "NEWOBJ_EX":
            self.pop()
            args = self.pop()
            s.append(_Obj(self.pop(), args))
        elif name == "BUILD":
            state = self.pop()
            if s and isinstance(s[-1], _Obj):
                s[-1].state = state
        elif name == "POP":
            self.pop()
        elif name == "POP_MARK":
            self.pop_mark()
        elif name == "DUP":
            s.append(s[-1] if s else _UNKNOWN)
        elif name == "BINPERSID":
            self.pop()
            s.append(_UNKNOWN)
        else:  # PERSID, EXT1/2/4, NEXT_BUFFER: a value we cannot know
            s.append(_UNKNOWN)


# How `_Interp.step` treats each opcode; names not listed push their operand.
_PUSH_ARG, _PUT, _GET, _CONST, _SKIP, _STRUCT = range(6)
_CONSTANTS: dict[str, Any] = {
    "EMPTY_DICT": dict,
    "EMPTY_LIST": list,
    "EMPTY_SET": list,
    "EMPTY_TUPLE": tuple,
    "NONE": lambda: None,
    "NEWTRUE": lambda: True,
    "NEWFALSE": lambda: False,
}
# Operand-carrying opcodes whose operand is not the value they push.
_NOT_LITERAL = frozenset(("GLOBAL", "INST", "PERSID", "EXT1", "EXT2", "EXT4"))
_STEP_KIND: dict[str, int] = {
    **{
        op.name: _PUSH_ARG if op.arg is not None and op.name not in _NOT_LITERAL else _STRUCT
        for op in pickletools.opcodes
    },
    **dict.fromkeys(("PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"), _PUT),
    **dict.fromkeys(("GET", "BINGET", "LONG_BINGET"), _GET),
    **dict.fromkeys(_CONSTANTS, _CONST),
    **dict.fromkeys(("PROTO", "FRAME", "STOP", "READONLY_BUFFER"), _SKIP),
}


def _bounded(value: Any) -> bool:
    """Whether hashing or printing `value` is cheap and safe: at most MAX_DEPTH containers deep and
    MAX_NODES nodes counted along every path. Hashing a deeply nested tuple recurses in C without a
    depth check (a segfault), and memo references can share sub-tuples so that hashing or printing
    a small stream's value takes exponential time."""
    if type(value) not in _CONTAINERS:
        return True
    todo = [(value, 0)]
    nodes = 0
    while todo:
        item, depth = todo.pop()
        nodes += 1
        if nodes > MAX_NODES or depth > MAX_DEPTH:
            return False
        kind = type(item)
        if kind is tuple or kind is list:
            todo.extend((child, depth + 1) for child in item)
        elif kind is dict:
            todo.extend((child, depth + 1) for pair in item.items() for child in pair)
        elif kind is _Obj:
            todo.extend(((item.cls, depth + 1), (item.args, depth + 1), (item.state, depth + 1)))
    return True


def _shown(value: Any) -> str:
    return repr(value) if _bounded(value) else TOO_LARGE


def _text(value: Any) -> str:
    return str(value) if _bounded(value) else TOO_LARGE


def _hashable(items: list[Any]) -> bool:
    try:
        for item in items:
            if not _bounded(item):
                return False
            hash(item)
    except TypeError:
        return False
    return True


def _class_of(obj: _Obj) -> Any:
    cls = obj.cls
    # Protocols 0/1 build instances via copyreg._reconstructor(cls, base, state); protocol 2
    # via copyreg.__newobj__ when NEWOBJ is not used.
    if isinstance(cls, _Global) and cls.module in ("copyreg", "copy_reg"):
        args = obj.args
        return args[0] if isinstance(args, tuple) and args else None
    return cls


def _wrapper_kind(top: Any) -> str:
    if not isinstance(top, _Obj):
        return ""
    cls = _class_of(top)
    if isinstance(cls, _Global) and cls.module.endswith("numpy_pickle"):
        return cls.name if cls.name in ("NumpyArrayWrapper",) else ""
    return ""


def _dtype_info(dtype: Any) -> tuple[int, bool]:
    """(itemsize, hasobject) of a pickled numpy dtype object; raises _Confused if unknown."""
    if not isinstance(dtype, _Obj) or not isinstance(dtype.args, tuple) or not dtype.args:
        raise _Confused("dtype not resolvable")
    code = dtype.args[0]
    state = dtype.state if isinstance(dtype.state, tuple) else ()
    flags = state[7] if len(state) > 7 and isinstance(state[7], int) else 0
    has_object = bool(flags & 1) or (isinstance(code, str) and code.lstrip("<>|=")[:1] == "O")
    if len(state) > 5 and isinstance(state[5], int) and state[5] > 0:
        return state[5], has_object  # flexible/structured types carry elsize in the state
    match = _DTYPE_CODE.match(code) if isinstance(code, str) else None
    if not match:
        raise _Confused(f"dtype code {_shown(code)}")
    letter, digits = match.groups()
    if digits:
        return int(digits), has_object
    if letter in _FIXED_SIZES:
        return _FIXED_SIZES[letter], has_object
    raise _Confused(f"dtype code {_shown(code)}")


def array_extent(wrapper: _Obj) -> tuple[int, bool, bool]:
    """(data bytes, has padding byte, object dtype) for a built NumpyArrayWrapper."""
    state = wrapper.state
    if isinstance(state, tuple) and len(state) == 2:  # (dict, slots) form
        state = state[0]
    if not isinstance(state, dict):
        raise _Confused("wrapper state is not a dict")
    shape = state.get("shape")
    if (
        not isinstance(shape, tuple)
        or len(shape) > MAX_DIMS
        or not all(isinstance(d, int) and d >= 0 for d in shape)
    ):
        raise _Confused(f"shape {_shown(shape)}")
    itemsize, has_object = _dtype_info(state.get("dtype"))
    padded = state.get("numpy_array_alignment_bytes") is not None
    return math.prod(shape) * itemsize, padded, has_object


def split_dump(
    view: memoryview, max_ops: int = MAX_WALK_OPCODES
) -> tuple[list[_Segment], list[tuple[str, str]]]:
    """Cut a joblib dump into pickle segments around inline arrays; also return anomalies."""
    segments: list[_Segment] = []
    anomalies: list[tuple[str, str]] = []
    interps = [_Interp()]
    kinds = [KIND]
    seg_start = pos = 0
    confused = False
    walked = 0
    n = len(view)
    while pos < n:
        restart = None
        ops_in_run = 0
        try:
            for op, arg, _p, end in iter_ops(view, pos):
                ops_in_run += 1
                walked += 1
                if walked > max_ops:
                    anomalies.append(("joblib_walk_budget", f"stopped at offset {end}"))
                    segments.append(_Segment(seg_start, n, kinds[-1]))
                    return segments, anomalies
                if not confused:
                    try:
                        interps[-1].step(op.name, arg)
                    except _Confused as exc:
                        confused = True
                        anomalies.append(("joblib_symbolic_lost", f"offset {_p}: {exc}"))
                if op.name == "STOP":
                    segments.append(_Segment(seg_start, end, kinds[-1]))
                    seg_start = restart = end
                    if len(interps) > 1:  # an object array's inner pickle ended
                        interps.pop()
                        kinds.pop()
                    else:
                        interps.clear()
                    break
                if op.name == "BUILD" and not confused and interps[-1].stack:
                    top = interps[-1].stack[-1]
                    if _wrapper_kind(top):
                        restart = _after_wrapper(
                            view,
                            top,
                            end,
                            segments,
                            seg_start,
                            anomalies=anomalies,
                            interps=interps,
                            kinds=kinds,
                        )
                        seg_start = restart if restart >= 0 else seg_start
                        if restart < 0:  # extent unknown: stop cutting, stream the rest
                            confused = True
                            restart = None
                            continue
                        break
        except (ValueError, UnicodeDecodeError, IndexError, OverflowError) as exc:
            after_array = ops_in_run == 0 and bool(segments) and seg_start == pos
            code = "joblib_array_extent_mismatch" if after_array else "joblib_unparsed"
            anomalies.append((code, f"offset {pos}: {exc}"))
            start = segments[-1].end if code == "joblib_array_extent_mismatch" else seg_start
            segments.append(_Segment(start, n, KIND))
            return segments, anomalies
        if restart is None:
            break
        pos = restart
        if not interps:  # the outer pickle ended: anything after is no longer joblib's
            if pos < n:
                anomalies.append(("trailing_data", f"{n - pos} bytes after the joblib pickle"))
                segments.append(_Segment(pos, n, "pickle"))
            return segments, anomalies
    if seg_start < n and (not segments or segments[-1].end < n):
        segments.append(_Segment(seg_start, n, kinds[-1] if kinds else KIND))
    return segments, anomalies


def _after_wrapper(
    view: memoryview,
    wrapper: _Obj,
    end: int,
    segments: list[_Segment],
    seg_start: int,
    *,
    anomalies: list[tuple[str, str]],
    interps: list[_Interp],
    kinds: list[str],
) -> int:
    """Close the segment at the wrapper's BUILD; return where pickling resumes (-1: unknown)."""
    try:
        nbytes, padded, has_object = array_extent(wrapper)
    except _Confused as exc:
        anomalies.append(("joblib_array_extent_mismatch", f"wrapper at {end}: {exc}"))
        return -1
    segments.append(_Segment(seg_start, end, kinds[-1]))
    if has_object:
        interps.append(_Interp())  # a nested pickle with its own stack and memo
        kinds.append("npy_object")
        return end
    skip = nbytes
    if padded:
        skip += 1 + (view[end] if end < len(view) else 0)
    resume = end + skip
    interps[-1].stack[-1] = _UNKNOWN  # the loader replaces the wrapper by the array
    if resume > len(view):
        anomalies.append(
            ("joblib_array_extent_mismatch", f"array at {end} needs {skip} bytes, file ends")
        )
        return len(view)
    return resume

# cython: language_level=3, boundscheck=True, wraparound=True
"""Native symbolic walk behind fastscan.containers.joblib_dump.split_dump.

A joblib dump is a pickle interrupted by raw array bytes, one extent after each
`NumpyArrayWrapper` BUILD. Finding those extents means following the pickle's stack far enough to
read the wrapper's state dict; doing that in Python (pickletools readers + a dict-dispatched
interpreter) was the largest per-file cost on a hub mirror. Here one C loop finds opcode bounds
(the same rules as the tokenizer's `list_opcodes`), decodes binary operands inline and dispatches
on the opcode byte. Symbolic values stay ordinary Python objects (ints, strs, tuples, dicts, the
`_Global`/`_Obj` records below, the MARK/UNKNOWN sentinels), so every decision, and every
anomaly detail string, is the one the Python specification (tests/specs/joblib_walk.py) makes.
Nothing here imports or calls anything named by the scanned data.

Indexing Python lists and tuples keeps its Python meaning (negative indices, IndexError) as in the
specification, so this module turns wraparound and boundscheck back on.
"""

from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memchr, memcpy

# pickletools decodes protocol-0 UNICODE operands with this codec: imported now, not lazily in the
# middle of a scan (an import on hostile input).
import encodings.raw_unicode_escape  # no-cython-lint
import io
import math
import pickletools
import re
import threading

include "_opcodes.pxi"
include "_newline.pxi"

cdef enum:
    C_MAX_DEPTH = 64  # containers a hashed or printed symbolic value may nest
    C_MAX_NODES = 10_000  # nodes (counted along every path) a hashed or printed value may have
    C_MAX_DIMS = 64  # numpy's own limit on dimensions

MAX_DEPTH = C_MAX_DEPTH
MAX_NODES = C_MAX_NODES
MAX_DIMS = C_MAX_DIMS
TOO_LARGE = "<too large to print>"
MARK = object()
UNKNOWN = object()
KIND = "joblib"

cdef object _MARK = MARK
cdef object _UNKNOWN = UNKNOWN
cdef object _DTYPE_CODE = re.compile(r"^[<>|=]?([a-zA-Z])(\d*)")
cdef dict _FIXED_SIZES = {"b": 1, "B": 1, "?": 1, "M": 8, "m": 8, "O": 8, "e": 2, "g": 16, "G": 32}
# Text (protocol 0) operands are rare in joblib dumps and their parsing rules are subtle: they go
# through pickletools' own readers, so values and error messages are the reference ones.
cdef dict _TEXT_READERS = {
    op.code.encode("latin-1")[0]: op.arg.reader
    for op in pickletools.opcodes
    if op.arg is not None and ARG_KIND[op.code.encode("latin-1")[0]] in (ARG_LINE, ARG_LINE2)
}
# Opcodes `_Walk.run` steps inline, reading their operand bytes itself.
cdef bint _FAST[256]
for _code in (OP_BINGET, OP_LONG_BINGET, OP_BINPUT, OP_LONG_BINPUT, OP_BININT1):
    _FAST[_code] = True
cdef set _REPR_RUNNING = set()  # (id, thread) of _Obj reprs in progress: cycles print "..."


class Confused(Exception):
    """The symbolic stack cannot follow this stream (underflow, odd shapes)."""


cdef class _Global:
    """A GLOBAL/STACK_GLOBAL/INST reference, by name only (equal and hashed by its two names)."""

    cdef readonly str module
    cdef readonly str name

    def __init__(self, str module, str name):
        self.module = module
        self.name = name

    def __eq__(self, other):
        if type(other) is _Global:
            return (self.module, self.name) == ((<_Global>other).module, (<_Global>other).name)
        return NotImplemented

    def __hash__(self):
        return hash((self.module, self.name))

    def __repr__(self):
        return f"_Global(module={self.module!r}, name={self.name!r})"


cdef class _Obj:
    """A REDUCE/NEWOBJ/OBJ/INST result: callable, arguments and the state BUILD gave it."""

    cdef public object cls
    cdef public object args
    cdef public object state

    def __init__(self, cls, args, state=None):
        self.cls = cls
        self.args = args
        self.state = state

    def __hash__(self):
        raise TypeError("unhashable type: '_Obj'")  # mutable (BUILD sets state), like a dataclass

    def __repr__(self):
        key = (id(self), threading.get_ident())
        if key in _REPR_RUNNING:
            return "..."
        _REPR_RUNNING.add(key)
        try:
            return f"_Obj(cls={self.cls!r}, args={self.args!r}, state={self.state!r})"
        finally:
            _REPR_RUNNING.discard(key)


cdef inline _Obj _new_obj(object cls, object args):
    cdef _Obj obj = _Obj.__new__(_Obj)
    obj.cls = cls
    obj.args = args
    obj.state = None
    return obj


cdef inline uint64_t _le(const uint8_t* q, int width) noexcept nogil:
    cdef uint64_t value = 0
    cdef int i
    for i in range(width - 1, -1, -1):
        value = (value << 8) | q[i]
    return value


cdef double _be_double(const uint8_t* q) noexcept nogil:
    cdef uint64_t bits = 0
    cdef double value
    cdef int i
    for i in range(8):
        bits = (bits << 8) | q[i]
    memcpy(&value, &bits, 8)
    return value


cdef bint _bounded(object value):
    """Whether hashing or printing `value` is cheap and safe: at most MAX_DEPTH containers deep and
    MAX_NODES nodes counted along every path. Hashing a deeply nested tuple recurses in C without a
    depth check (a segfault), and memo references can share sub-tuples so that hashing or printing
    a small stream's value takes exponential time."""
    cdef list todo
    cdef Py_ssize_t nodes = 0, depth
    kind = type(value)
    if kind is not tuple and kind is not list and kind is not dict and kind is not _Obj:
        return True
    todo = [(value, 0)]
    while todo:
        item, depth = todo.pop()
        nodes += 1
        if nodes > C_MAX_NODES or depth > C_MAX_DEPTH:
            return False
        kind = type(item)
        if kind is tuple or kind is list:
            for child in item:
                todo.append((child, depth + 1))
        elif kind is dict:
            for key, child in (<dict>item).items():
                todo.append((key, depth + 1))
                todo.append((child, depth + 1))
        elif kind is _Obj:
            todo.append(((<_Obj>item).cls, depth + 1))
            todo.append(((<_Obj>item).args, depth + 1))
            todo.append(((<_Obj>item).state, depth + 1))
    return True


cdef str _shown(object value):
    return repr(value) if _bounded(value) else TOO_LARGE


cdef str _text(object value):
    return str(value) if _bounded(value) else TOO_LARGE


cdef bint _hashable(list items):
    try:
        for item in items:
            if not _bounded(item):
                return False
            hash(item)
    except TypeError:
        return False
    return True


cdef class _Interp:
    """Just enough of an unpickler to see a wrapper's state dict, without importing anything."""

    cdef list stack
    cdef dict memo

    def __cinit__(self):
        self.stack = []
        self.memo = {}

    cdef inline object pop(self):
        if not self.stack:
            raise Confused("stack underflow")
        return self.stack.pop()

    cdef list pop_mark(self):
        cdef list s = self.stack
        cdef Py_ssize_t i
        for i in range(len(s) - 1, -1, -1):
            if s[i] is _MARK:
                items = s[i + 1 :]
                del s[i:]
                return items
        raise Confused("no mark")

    cdef int step(self, uint8_t op, object arg) except -1:
        cdef list s = self.stack
        cdef uint8_t kind = ARG_KIND[op]
        if op == OP_PUT or op == OP_BINPUT or op == OP_LONG_BINPUT or op == OP_MEMOIZE:
            if s:
                self.memo[len(self.memo) if op == OP_MEMOIZE else int(arg)] = s[-1]
        elif op == OP_GET or op == OP_BINGET or op == OP_LONG_BINGET:
            s.append(self.memo.get(int(arg), _UNKNOWN))
        elif (op == OP_PROTO or op == OP_FRAME or op == OP_STOP or op == OP_READONLY_BUFFER):
            pass
        elif kind != ARG_NONE and not (op == OP_GLOBAL or op == OP_INST or op == OP_PERSID
                                       or op == OP_EXT1 or op == OP_EXT2 or op == OP_EXT4):
            s.append(arg)  # a literal: its operand is the value
        elif op == OP_EMPTY_DICT:
            s.append({})
        elif op == OP_EMPTY_LIST or op == OP_EMPTY_SET:
            s.append([])
        elif op == OP_EMPTY_TUPLE:
            s.append(())
        elif op == OP_NONE:
            s.append(None)
        elif op == OP_NEWTRUE:
            s.append(True)
        elif op == OP_NEWFALSE:
            s.append(False)
        else:
            self.structural(op, arg)
        return 0

    cdef int structural(self, uint8_t op, object arg) except -1:
        cdef list s = self.stack
        cdef list items
        cdef Py_ssize_t n, i
        if op == OP_MARK:
            s.append(_MARK)
        elif op == OP_TUPLE1 or op == OP_TUPLE2 or op == OP_TUPLE3:
            n = op - OP_TUPLE1 + 1
            items = [self.pop() for _ in range(n)]
            items.reverse()
            s.append(tuple(items))
        elif op == OP_TUPLE:
            s.append(tuple(self.pop_mark()))
        elif op == OP_LIST or op == OP_FROZENSET:
            s.append(self.pop_mark())
        elif op == OP_DICT:
            items = self.pop_mark()
            s.append(dict(zip(items[::2], items[1::2])) if _hashable(items) else {})
        elif op == OP_APPEND:
            self.pop()
        elif op == OP_APPENDS or op == OP_ADDITEMS:
            self.pop_mark()
        elif op == OP_SETITEM:
            value = self.pop()
            key = self.pop()
            if s and type(s[-1]) is dict and _hashable([key]):
                (<dict>s[-1])[key] = value
        elif op == OP_SETITEMS:
            items = self.pop_mark()
            if s and type(s[-1]) is dict and _hashable(items[::2]):
                target = <dict>s[-1]
                for i in range(0, len(items) - 1, 2):  # an odd last key is dropped, as zip does
                    target[items[i]] = items[i + 1]
        elif op == OP_GLOBAL:
            module, _, attr = str(arg).partition(" ")
            s.append(_Global(module, attr))
        elif op == OP_STACK_GLOBAL:
            attr = self.pop()
            module = self.pop()
            s.append(_Global(_text(module), _text(attr)))
        elif op == OP_INST:
            module, _, attr = str(arg).partition(" ")
            s.append(_new_obj(_Global(module, attr), tuple(self.pop_mark())))
        elif op == OP_OBJ:
            items = self.pop_mark()
            if not items:
                raise Confused("OBJ without class")
            s.append(_new_obj(items[0], tuple(items[1:])))
        elif op == OP_REDUCE or op == OP_NEWOBJ:
            args = self.pop()
            s.append(_new_obj(self.pop(), args))
        elif op == OP_NEWOBJ_EX:
            self.pop()
            args = self.pop()
            s.append(_new_obj(self.pop(), args))
        elif op == OP_BUILD:
            state = self.pop()
            if s and type(s[-1]) is _Obj:
                (<_Obj>s[-1]).state = state
        elif op == OP_POP:
            self.pop()
        elif op == OP_POP_MARK:
            self.pop_mark()
        elif op == OP_DUP:
            s.append(s[-1] if s else _UNKNOWN)
        elif op == OP_BINPERSID:
            self.pop()
            s.append(_UNKNOWN)
        else:  # PERSID, EXT1/2/4, NEXT_BUFFER: a value we cannot know
            s.append(_UNKNOWN)
        return 0


cdef object _binary_arg(uint8_t op, const uint8_t* a, int64_t length):
    """The operand pickletools' reader would return, for the binary opcodes whose value is used."""
    if op == OP_BININT1 or op == OP_BINGET or op == OP_BINPUT:
        return a[0]
    if op == OP_BININT2:
        return <uint16_t>_le(a, 2)
    if op == OP_BININT:
        return <int32_t><uint32_t>_le(a, 4)
    if op == OP_LONG_BINGET or op == OP_LONG_BINPUT:
        return <uint32_t>_le(a, 4)
    if op == OP_BINFLOAT:
        return _be_double(a)
    if op == OP_LONG1 or op == OP_LONG4:
        return int.from_bytes((<const char*>a)[:length], "little", signed=True)
    if op == OP_SHORT_BINSTRING or op == OP_BINSTRING:
        return (<const char*>a)[:length].decode("latin-1")
    if op == OP_SHORT_BINBYTES or op == OP_BINBYTES or op == OP_BINBYTES8:
        return (<const char*>a)[:length]
    if op == OP_BYTEARRAY8:
        return bytearray((<const char*>a)[:length])
    if op == OP_SHORT_BINUNICODE or op == OP_BINUNICODE or op == OP_BINUNICODE8:
        return (<const char*>a)[:length].decode("utf-8", "surrogatepass")
    return None  # PROTO, FRAME, EXT1/2/4: the walk never looks at these operands


cdef object _class_of(_Obj obj):
    cls = obj.cls
    # Protocols 0/1 build instances via copyreg._reconstructor(cls, base, state); protocol 2
    # via copyreg.__newobj__ when NEWOBJ is not used.
    if type(cls) is _Global and (<_Global>cls).module in ("copyreg", "copy_reg"):
        args = obj.args
        return args[0] if isinstance(args, tuple) and args else None
    return cls


cdef bint _is_wrapper(object top):
    if type(top) is not _Obj:
        return False
    cls = _class_of(<_Obj>top)
    return (type(cls) is _Global and (<_Global>cls).module.endswith("numpy_pickle")
            and (<_Global>cls).name == "NumpyArrayWrapper")


cdef tuple _dtype_info(object dtype):
    """(itemsize, hasobject) of a pickled numpy dtype object; raises Confused if unknown."""
    if type(dtype) is not _Obj or not isinstance((<_Obj>dtype).args, tuple) or not (
        <_Obj>dtype
    ).args:
        raise Confused("dtype not resolvable")
    code = (<_Obj>dtype).args[0]
    state = (<_Obj>dtype).state if isinstance((<_Obj>dtype).state, tuple) else ()
    flags = state[7] if len(state) > 7 and isinstance(state[7], int) else 0
    has_object = bool(flags & 1) or (isinstance(code, str) and code.lstrip("<>|=")[:1] == "O")
    if len(state) > 5 and isinstance(state[5], int) and state[5] > 0:
        return state[5], has_object  # flexible/structured types carry elsize in the state
    match = _DTYPE_CODE.match(code) if isinstance(code, str) else None
    if not match:
        raise Confused(f"dtype code {_shown(code)}")
    letter, digits = match.groups()
    if digits:
        return int(digits), has_object
    if letter in _FIXED_SIZES:
        return _FIXED_SIZES[letter], has_object
    raise Confused(f"dtype code {_shown(code)}")


def array_extent(_Obj wrapper):
    """(data bytes, has padding byte, object dtype) for a built NumpyArrayWrapper."""
    state = wrapper.state
    if isinstance(state, tuple) and len(state) == 2:  # (dict, slots) form
        state = state[0]
    if not isinstance(state, dict):
        raise Confused("wrapper state is not a dict")
    shape = state.get("shape")
    if not isinstance(shape, tuple) or len(shape) > C_MAX_DIMS or not all(
        isinstance(d, int) and d >= 0 for d in shape
    ):
        raise Confused(f"shape {_shown(shape)}")
    itemsize, has_object = _dtype_info(state.get("dtype"))
    padded = state.get("numpy_array_alignment_bytes") is not None
    return math.prod(shape) * itemsize, padded, has_object


cdef class _Walk:
    """One split: the state `split_dump` threads through its runs (one run per pickle piece)."""

    cdef const uint8_t* p
    cdef int64_t n
    cdef object view
    cdef list segments
    cdef list anomalies
    cdef list interps
    cdef list kinds
    cdef int64_t seg_start
    cdef bint confused
    cdef int64_t walked
    cdef int64_t max_ops

    cdef object text_arg(self, uint8_t op, int64_t op_start, int64_t stop):
        return _TEXT_READERS[op](io.BytesIO(self.view[op_start + 1 : stop]))

    cdef int64_t run(self, int64_t pos) except -2:
        """Walk one run from `pos`; return where the next starts, -1 when the split is over."""
        cdef const uint8_t* p = self.p
        cdef int64_t n = self.n, at = pos, op_start, arg_off, arg_len, nl, restart
        cdef uint64_t ulen
        cdef uint8_t op, kind
        cdef int width
        cdef _Interp interp = <_Interp>self.interps[-1]  # fixed for a run: changes end runs
        cdef list stack
        while True:
            # Opcode bounds: the rules of the tokenizer's list_opcodes, message of _probe.iter_ops.
            if at >= n:
                raise ValueError(f"pickle truncated at offset {at}")
            op_start = at
            op = p[at]
            kind = ARG_KIND[op]
            if kind == ARG_INVALID:
                raise ValueError(f"pickle bad_opcode at offset {op_start}")
            arg_off = at + 1
            arg_len = 0
            if kind == ARG_FIXED:
                arg_len = ARG_FIXED_LEN[op]
                if arg_len > n - arg_off:
                    raise ValueError(f"pickle truncated at offset {op_start}")
            elif kind == ARG_LINE or kind == ARG_LINE2:
                nl = find_newline(p, n, arg_off)
                if kind == ARG_LINE2 and nl >= 0:
                    nl = find_newline(p, n, nl + 1)
                if nl < 0:
                    raise ValueError(f"pickle truncated at offset {op_start}")
                arg_len = nl + 1 - arg_off
            elif kind == ARG_LEN1:
                if arg_off >= n:
                    raise ValueError(f"pickle truncated at offset {op_start}")
                arg_len = p[arg_off]
                arg_off += 1
                if arg_len > n - arg_off:
                    raise ValueError(f"pickle truncated at offset {op_start}")
            elif kind != ARG_NONE:
                width = 8 if kind == ARG_LEN8U else 4
                if width > n - arg_off:
                    raise ValueError(f"pickle truncated at offset {op_start}")
                ulen = _le(p + arg_off, width)
                arg_off += width
                if kind == ARG_LEN4S and <int32_t><uint32_t>ulen < 0:
                    raise ValueError(f"pickle bad_opcode at offset {op_start}")
                if ulen > <uint64_t>(n - arg_off):
                    raise ValueError(f"pickle truncated at offset {op_start}")
                arg_len = <int64_t>ulen
            at = arg_off + arg_len
            if kind == ARG_NONE or _FAST[op]:
                arg = None  # no operand, or one the fast path below reads itself
            elif kind == ARG_LINE or kind == ARG_LINE2:
                arg = self.text_arg(op, op_start, at)
            else:
                arg = _binary_arg(op, p + arg_off, arg_len)

            self.walked += 1
            if self.walked > self.max_ops:
                self.anomalies.append(("joblib_walk_budget", f"stopped at offset {at}"))
                self.segments.append((self.seg_start, n, self.kinds[-1]))
                return -1
            if not self.confused:
                # The commonest opcodes inline (memo traffic, small ints, marks): same effect as
                # `_Interp.step`, without its exception frame.
                stack = interp.stack
                if op == OP_BINGET or op == OP_LONG_BINGET:
                    stack.append(interp.memo.get(_le(p + arg_off, <int>arg_len), _UNKNOWN))
                elif op == OP_BINPUT or op == OP_LONG_BINPUT:
                    if stack:
                        interp.memo[_le(p + arg_off, <int>arg_len)] = stack[-1]
                elif op == OP_MEMOIZE:
                    if stack:
                        interp.memo[len(interp.memo)] = stack[-1]
                elif op == OP_BININT1:
                    stack.append(p[arg_off])
                elif op == OP_MARK:
                    stack.append(_MARK)
                else:
                    try:
                        interp.step(op, arg)
                    except Confused as exc:
                        self.confused = True
                        self.anomalies.append(
                            ("joblib_symbolic_lost", f"offset {op_start}: {exc}")
                        )
            if op == OP_STOP:
                self.segments.append((self.seg_start, at, self.kinds[-1]))
                self.seg_start = at
                if len(self.interps) > 1:  # an object array's inner pickle ended
                    self.interps.pop()
                    self.kinds.pop()
                else:
                    self.interps.clear()
                return at
            if op == OP_BUILD and not self.confused:
                if interp.stack and _is_wrapper(interp.stack[-1]):
                    restart = self.after_wrapper(<_Obj>interp.stack[-1], at)
                    if restart < 0:  # extent unknown: stop cutting, stream the rest
                        self.confused = True
                        continue
                    self.seg_start = restart
                    return restart

    cdef int64_t after_wrapper(self, _Obj wrapper, int64_t end) except -2:
        """Close the segment at the wrapper's BUILD; return where pickling resumes (-1: unknown)."""
        try:
            nbytes, padded, has_object = array_extent(wrapper)
        except Confused as exc:
            self.anomalies.append(("joblib_array_extent_mismatch", f"wrapper at {end}: {exc}"))
            return -1
        self.segments.append((self.seg_start, end, self.kinds[-1]))
        if has_object:
            self.interps.append(_Interp())  # a nested pickle with its own stack and memo
            self.kinds.append("npy_object")
            return end
        skip = nbytes
        if padded:
            skip += 1 + (self.p[end] if end < self.n else 0)
        resume = end + skip
        (<_Interp>self.interps[-1]).stack[-1] = _UNKNOWN  # the loader replaces it by the array
        if resume > self.n:
            self.anomalies.append(
                ("joblib_array_extent_mismatch", f"array at {end} needs {skip} bytes, file ends")
            )
            return self.n
        return resume

    cdef tuple split(self):
        cdef int64_t pos = 0, restart, n = self.n
        cdef int64_t walked_before
        cdef bint after_array
        while pos < n:
            walked_before = self.walked
            try:
                restart = self.run(pos)
            except (ValueError, UnicodeDecodeError, IndexError, OverflowError) as exc:
                after_array = (self.walked == walked_before and bool(self.segments)
                               and self.seg_start == pos)
                code = "joblib_array_extent_mismatch" if after_array else "joblib_unparsed"
                self.anomalies.append((code, f"offset {pos}: {exc}"))
                start = self.segments[-1][1] if after_array else self.seg_start
                self.segments.append((start, n, KIND))
                return self.segments, self.anomalies
            if restart < 0:
                return self.segments, self.anomalies
            pos = restart
            if not self.interps:  # the outer pickle ended: anything after is no longer joblib's
                if pos < n:
                    self.anomalies.append(
                        ("trailing_data", f"{n - pos} bytes after the joblib pickle")
                    )
                    self.segments.append((pos, n, "pickle"))
                return self.segments, self.anomalies
        if self.seg_start < n and (not self.segments or self.segments[-1][1] < n):
            self.segments.append((self.seg_start, n, self.kinds[-1] if self.kinds else KIND))
        return self.segments, self.anomalies


def split(const uint8_t[::1] data, int64_t max_ops):
    """(segments as (start, end, kind) tuples, anomalies as (code, detail)) of one joblib dump."""
    cdef _Walk walk = _Walk.__new__(_Walk)
    walk.n = data.shape[0]
    walk.p = &data[0] if walk.n > 0 else NULL
    walk.view = memoryview(data)
    walk.segments = []
    walk.anomalies = []
    walk.interps = [_Interp()]
    walk.kinds = [KIND]
    walk.seg_start = 0
    walk.confused = False
    walk.walked = 0
    walk.max_ops = max_ops
    return walk.split()

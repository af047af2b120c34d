# cython: language_level=3
# distutils: language = c++
"""Native pickle tokenizer: one nogil pass over a buffer, returning flat facts.

The loop never raises on input. It keeps a small symbolic stack (mark | string ref | global |
call result | other) and memo so STACK_GLOBAL operands are resolved the way the loader resolves
them, not by searching backwards. Strings are kept as (offset, length, encoding) into the caller's
buffer; `fastscan/tokenizer.py` decodes them and builds the typed records.

This file is the include root, one .pxi per topic: _tok_types (enums, records, tables),
_tok_bytes (byte helpers), then the Walker as a chain of internal classes, one per file, since
Cython refuses `include` in a class body: _tok_stack (state, stack, memo, records), _tok_ops
(per-opcode semantics), _tok_rare (the table-driven path), _tok_hot (walk_one, the hot walk),
_tok_walk (the whole buffer) and _tok_walker (the Walker: Python surface). Every method is
final, so each call is the same direct C call as in one final class and the walk's C is the
same. native/gen_tables.py writes _opcodes.pxi, _tables.pxi and _tok_hot.pxi (from
_tok_hot.tmpl). `find`/`list_opcodes` live in _bytescan.pyx.
"""

cimport cython
from cpython.ref cimport PyObject, Py_DECREF
from libc.stdint cimport int32_t, int64_t, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memchr, memset
from libcpp.unordered_map cimport unordered_map
from libcpp.vector cimport vector

include "_opcodes.pxi"
include "_tables.pxi"
include "_records.pxi"
include "_newline.pxi"

include "_tok_types.pxi"
include "_operand_text.pxi"
include "_tok_bytes.pxi"
include "_tok_stack.pxi"
include "_tok_ops.pxi"
include "_tok_rare.pxi"
include "_tok_hot.pxi"
include "_tok_walk.pxi"
include "_tok_walker.pxi"


# HOT_LAYOUT (generated into _tok_hot.pxi) is checked against the compiled opcode table.
def _check_hot_layout():
    for op, layout in HOT_LAYOUT.items():
        if (ARG_KIND[op], ARG_FIXED_LEN[op]) != layout:
            raise ImportError(f"walk_one hard-codes {layout} for opcode {op}; the opcode table "
                              f"says {(ARG_KIND[op], ARG_FIXED_LEN[op])}: run native/gen_tables.py")


_check_hot_layout()


def arg_layout():
    """(arg_kind, fixed_len) per byte value, as compiled in; tested against fastscan.opcodes."""
    return tuple((ARG_KIND[i], ARG_FIXED_LEN[i]) for i in range(256))

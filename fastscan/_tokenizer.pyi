# Stub for the compiled native/_tokenizer.pyx (the Walker and the loader's number check).
from collections.abc import Callable
from typing import Any

from .facts import CallSite

STATUS_NAMES: tuple[str, ...]  # facts.STATUS_* by the walk's status code (native/gen_tables.py)
ANOMALY_NAMES: tuple[str, ...]  # the facts.ALL_ANOMALY_CODES the walk emits, in that order
ENCODING_NAMES: tuple[str, ...]
HOT_LAYOUT: dict[int, tuple[int, int]]  # opcode -> (arg kind, size) walk_one was generated for

def arg_layout() -> tuple[tuple[int, int], ...]: ...
def loader_rejects_number(op: int, text: bytes) -> bool: ...

_Fallback = Callable[[bytes, int], tuple[str, bool]]

class Walker:
    n_ops: int
    n_strings: int
    long_strings: int
    memo_puts: int
    memo_gets: int
    max_depth: int
    junk_bytes: int
    payload_bytes: int
    resync_ops: int
    nested_dropped: int
    status: int  # an index into STATUS_NAMES
    error_offset: int
    budget: str
    def __init__(
        self,
        data: Any,  # any contiguous byte buffer
        max_opcodes: int = ...,
        max_stack: int = ...,
        max_memo: int = ...,
        max_globals: int = ...,
        max_calls: int = ...,
        max_strings: int = ...,
        max_string_len: int = ...,
        max_nested: int = ...,
        max_resync_opcodes: int = ...,
        max_pickles: int = ...,
        max_str_digits: int = ...,
    ) -> None: ...
    def run(self) -> Walker: ...
    def opcode_counts(self) -> tuple[int, ...]: ...
    def pickle_list(self) -> list[tuple[int, int]]: ...
    # (offset, pickle_index, opcode, resolved, via_memo, mod_off, mod_len, mod_enc, name_off,
    #  name_len, name_enc, ext_code)
    def global_list(self) -> list[tuple[int, ...]]: ...
    def call_list(self, names: tuple[str, ...], cls: type[CallSite]) -> list[CallSite]: ...
    def string_list(self) -> list[tuple[int, int, int]]: ...
    def text(self, off: int, length: int, enc: int, fallback: _Fallback) -> tuple[str, bool]: ...
    def string_texts(self, fallback: _Fallback) -> tuple[str, ...]: ...
    def encoded_candidates(self) -> list[int]: ...
    def text_checks(self) -> list[tuple[int, int, int, int, int]]: ...
    def nested_list(self) -> list[tuple[int, int, int]]: ...
    def anomaly_list(self) -> list[tuple[int, int, int, int]]: ...

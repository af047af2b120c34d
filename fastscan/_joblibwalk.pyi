# Stub for the compiled native/_joblibwalk.pyx (joblib dumps cut around their inline arrays).
from typing import Any

MAX_DEPTH: int
MAX_NODES: int
MAX_DIMS: int
TOO_LARGE: str
MARK: object
UNKNOWN: object
KIND: str

class Confused(Exception): ...

# (segments as (start, end, kind), anomalies as (code, detail))
def split(data: Any, max_ops: int) -> tuple[list[tuple[int, int, str]], list[tuple[str, str]]]: ...
def array_extent(wrapper: Any) -> tuple[int, bool, bool]: ...

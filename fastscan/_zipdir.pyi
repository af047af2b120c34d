# Stub for the compiled native/_zipdir.pyx (the central-directory walk of zipread).
from typing import Any

ODD_DECODE: int
ODD_DIR: int
ODD_NOT_PLAIN: int
ODD_DUPLICATE: int

# (rows of `cls`, oddities (ODD_* bits), quiet_bytes, first_header)
def central_entries(
    buf: Any, real_cd: int, delta: int, window: int, route_first: Any, cls: type[Any]
) -> tuple[list[Any], int, int, int]: ...

"""PyTorch zip checkpoints (torch.save >= 1.6) and TorchScript archives (torch.jit.save).

Both are zips under one top folder: `data.pkl` (the object graph), `data/<key>` tensor storages,
`byteorder`, `version` / `.data/version`; TorchScript adds `code/**.py` (executed by
torch.jit.load), `constants.pkl` and `extra/`. The generic zip walk in `archive` already probes
every member and reads whole only the pickles; this module names the format, tags stream kinds
and records the small text records as notes.
"""

from __future__ import annotations

from . import formats as F
from ._context import ScanState
from .base import Buffer
from .zipread import ZipEntry, read_member

_RECORDS = {"byteorder": "byteorder", "version": "torch_version", ".data/version": "torch_version"}
_RECORD_ENDINGS = tuple(_RECORDS)
MAX_RECORD = 64  # these records hold a word or a number


def _tail(name: str) -> str:
    """Member name below the archive's top folder ("archive/data.pkl" -> "data.pkl")."""
    return name.split("/", 1)[1] if "/" in name else name


def _lines(names: list[str]) -> str | None:
    """The names as "\n"-framed lines, or None when a name holds a newline itself."""
    lines = "\n" + "\n".join(names) + "\n"
    return lines if lines.count("\n") == len(names) + 1 else None


def classify(names: list[str]) -> str:
    """torchscript | torch_zip | npz | zip, from member names (content is probed elsewhere)."""
    lines = _lines(names)
    top = names[0].partition("/")[0] if names else ""
    folder = f"\n{top}/"
    if lines is None or not names or lines.count(folder) != len(names):
        return _classify_by_sets(names)

    # Every name sits in one top folder (as torch writes them): a checkpoint lists a member
    # per tensor, so substring searches over all names beat a Python pass per name.
    def tail_is(t: str) -> bool:
        return f"{folder}{t}\n" in lines

    if f"{folder}code/" in lines and (tail_is("constants.pkl") or tail_is("data.pkl")):
        return F.TORCHSCRIPT
    if tail_is("data.pkl") or (tail_is("byteorder") and f"{folder}data/" in lines):
        return F.TORCH_ZIP
    return F.NPZ if lines.count(".npy\n") == len(names) else F.ZIP


def _classify_by_sets(names: list[str]) -> str:
    """`classify` for any names (the specification of the line searches above)."""
    tails = {n.partition("/")[2] for n in names if "/" in n}  # torch writes one top folder
    if any(t.startswith("code/") for t in tails) and (
        "constants.pkl" in tails or "data.pkl" in tails
    ):
        return F.TORCHSCRIPT
    if "data.pkl" in tails or ("byteorder" in tails and any(t.startswith("data/") for t in tails)):
        return F.TORCH_ZIP
    if names and all(n.endswith(".npy") for n in names):
        return F.NPZ
    return F.ZIP


def stream_kind(fmt: str, name: str) -> str:
    if fmt == F.TORCHSCRIPT and _tail(name) == "constants.pkl":
        return F.KIND_TORCHSCRIPT_CONSTANTS
    return F.KIND_PICKLE


def _record_candidates(entries: list[ZipEntry]) -> list[ZipEntry]:
    """Entries that may be a record or TorchScript code (not a tensor storage), in order."""
    lines = _lines([e.name for e in entries])
    if lines is None:
        return [e for e in entries if "code/" in e.name or e.name.endswith(_RECORD_ENDINGS)]
    hits: set[int] = set()
    for needle in ("code/", "byteorder\n", "version\n"):  # every _RECORD_ENDINGS ends so
        pos = lines.find(needle)
        while pos >= 0:
            hits.add(lines.count("\n", 0, pos) - 1)  # the line holding the match
            pos = lines.find(needle, pos + 1)
    return [entries[i] for i in sorted(hits)]


def note_records(state: ScanState, buf: Buffer, entries: list[ZipEntry], member: str) -> None:
    """Record byteorder/version and count TorchScript code members."""
    prefix = f"{member}/" if member else ""
    code = 0
    for e in _record_candidates(entries):
        tail = _tail(e.name)
        if tail.startswith("code/"):
            code += 1
        key = _RECORDS.get(tail)
        if key is None:
            continue
        try:
            data, _ = read_member(buf, e, MAX_RECORD, prefix=True)
        except Exception:  # a broken record is only a note, never a failure
            continue
        state.container.notes[prefix + key] = bytes(data).decode("ascii", "replace").strip()
    if code:
        state.container.notes[prefix + "torchscript_code_members"] = str(code)

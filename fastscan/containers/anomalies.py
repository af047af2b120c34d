"""Every container anomaly code: what it means, the finding rule it raises, its feature slot.

Readers record the constants below (`ScanState.anomaly`, `ScanState.hit_budget`); the rules
(`rules/structure.container_findings`) and the feature row (`features.CONTAINER_ANOMALIES`)
read this table, so a code is written once, here. The native joblib walk emits its codes as literals
(native/_joblibwalk.pyx); tests/test_vocabularies.py checks that each of them is listed here.

`FEATURE_SLOTS` is the model's contract (the `canom_*` columns, in order): a code added later
counts into a declared existing slot, usually `other`, until a new feature schema gives it one.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import findings as R
from ..findings import FindingRule

# The `canom_<slot>` feature columns, in the frozen order of FEATURE_SCHEMA_VERSION 3.
FEATURE_SLOTS = (
    "zip_crc_mismatch", "zip_flag_encrypted", "zip_flag_patched", "zip_flag_strong_encryption",
    "zip_encrypted_member", "zip_name_mismatch", "zip_duplicate_name", "zip_prefix_data",
    "zip_no_central_directory", "zip_bad_local_header", "zip_unknown_method", "zip_path_traversal",
    "zip_symlink_member", "zip_unreadable", "trailing_data", "polyglot_tar_zip",
    "tar_duplicate_name", "tar_link_member", "tar_path_traversal", "tar_unreadable",
    "7z_encrypted", "7z_unreadable", "legacy_magic_forged", "legacy_pickle_broken",
    "legacy_tar_unparsed", "npy_bad_header", "npy_truncated", "decompress_error",
    "member_unreadable", "reader_error", "budget", "other",
)  # fmt: skip
OTHER_SLOT = "other"
BUDGET_SLOT = "budget"
_BUDGET_PREFIX = "budget_"


@dataclass(frozen=True, slots=True)
class AnomalyKind:
    code: str  # what `ContainerAnomaly.code` and the finding's subject carry
    rule: FindingRule  # the finding it raises (rules/structure.container_findings)
    slot: str  # its `canom_<slot>` feature column (FEATURE_SLOTS)
    description: str
    budget: str = ""  # budget_* codes: the ContainerLimits budget, as `Container.budget` names it


BY_CODE: dict[str, AnomalyKind] = {}


def _anomaly(code: str, rule: FindingRule, description: str, *, slot: str = "") -> AnomalyKind:
    """Register a code; its slot is its own column unless one is declared (never a guess)."""
    if code in BY_CODE:
        raise ValueError(f"duplicate container anomaly code {code}")
    slot = slot or code
    if slot not in FEATURE_SLOTS:
        raise ValueError(f"container anomaly {code}: no feature slot {slot!r}; declare one")
    budget = code.removeprefix(_BUDGET_PREFIX) if code.startswith(_BUDGET_PREFIX) else ""
    kind = AnomalyKind(code, rule, slot, description, budget)
    BY_CODE[code] = kind
    return kind


def _budget(budget: str, description: str) -> AnomalyKind:
    return _anomaly(_BUDGET_PREFIX + budget, R.CONTAINER_BUDGET, description, slot=BUDGET_SLOT)


# Zip structure (containers/zipread.py, archive.read_zip).
ZIP_CRC_MISMATCH = _anomaly("zip_crc_mismatch", R.ZIP_CRC_MISMATCH, "member CRC does not match")
ZIP_FLAG_ENCRYPTED = _anomaly("zip_flag_encrypted", R.ZIP_FLAG, "flag bit 0x1 (encrypted)")
ZIP_FLAG_PATCHED = _anomaly("zip_flag_patched", R.ZIP_FLAG, "flag bit 0x20 (patched data)")
ZIP_FLAG_STRONG_ENCRYPTION = _anomaly(
    "zip_flag_strong_encryption", R.ZIP_FLAG, "flag bit 0x40 (strong encryption)"
)
ZIP_ENCRYPTED_MEMBER = _anomaly("zip_encrypted_member", R.ENCRYPTED, "member cannot be decrypted")
ZIP_NAME_MISMATCH = _anomaly(
    "zip_name_mismatch", R.ZIP_NAME_MISMATCH, "local and central names differ"
)
ZIP_DUPLICATE_NAME = _anomaly("zip_duplicate_name", R.ZIP_STRUCTURE, "two members, one name")
ZIP_PREFIX_DATA = _anomaly("zip_prefix_data", R.ZIP_PREFIX, "bytes before the first header")
ZIP_NO_CENTRAL_DIRECTORY = _anomaly(
    "zip_no_central_directory", R.ZIP_STRUCTURE, "members listed from local headers only"
)
ZIP_BAD_LOCAL_HEADER = _anomaly(
    "zip_bad_local_header", R.ZIP_STRUCTURE, "central entry points at no local header"
)
ZIP_UNKNOWN_METHOD = _anomaly("zip_unknown_method", R.ZIP_STRUCTURE, "compression method unknown")
ZIP_PATH_TRAVERSAL = _anomaly(
    "zip_path_traversal", R.ARCHIVE_PATH_ABUSE, "member name escapes the folder"
)
ZIP_SYMLINK_MEMBER = _anomaly("zip_symlink_member", R.ARCHIVE_PATH_ABUSE, "member is a symlink")
ZIP_UNREADABLE = _anomaly("zip_unreadable", R.PARTIAL_SCAN, "zip structure could not be read")
# Any format (zip, npy, compressed layers, legacy torch, joblib).
TRAILING_DATA = _anomaly("trailing_data", R.TRAILING_DATA, "bytes after the end of the format")
POLYGLOT_TAR_ZIP = _anomaly("polyglot_tar_zip", R.POLYGLOT, "file is both a tar and a zip")
# Tar and 7z (archive.read_tar, archive.read_7z).
TAR_DUPLICATE_NAME = _anomaly("tar_duplicate_name", R.ZIP_STRUCTURE, "two members, one name")
TAR_LINK_MEMBER = _anomaly("tar_link_member", R.ARCHIVE_PATH_ABUSE, "member is a (sym)link")
TAR_PATH_TRAVERSAL = _anomaly(
    "tar_path_traversal", R.ARCHIVE_PATH_ABUSE, "member name escapes the folder"
)
TAR_UNREADABLE = _anomaly("tar_unreadable", R.PARTIAL_SCAN, "tar structure could not be read")
SEVENZ_ENCRYPTED = _anomaly("7z_encrypted", R.ENCRYPTED, "7z content is encrypted")
SEVENZ_UNREADABLE = _anomaly("7z_unreadable", R.PARTIAL_SCAN, "7z structure could not be read")
# Legacy (pre-1.6) torch files (containers/torch_legacy.py, raw.py).
LEGACY_MAGIC_FORGED = _anomaly(
    "legacy_magic_forged", R.LEGACY_TORCH_TRICK, "magic number not written as torch writes it"
)
LEGACY_PICKLE_BROKEN = _anomaly(
    "legacy_pickle_broken", R.LEGACY_TORCH_TRICK, "one of the legacy pickles does not parse"
)
# Added after the feature schema: counted as `other` until a schema gives it a column.
LEGACY_EXTRA_PICKLE = _anomaly(
    "legacy_extra_pickle",
    R.LEGACY_TORCH_TRICK,
    "more pickles than the legacy layout has",
    slot=OTHER_SLOT,
)
LEGACY_TAR_UNPARSED = _anomaly(
    "legacy_tar_unparsed", R.LEGACY_TORCH_TRICK, "legacy tar layout could not be parsed"
)
# numpy (containers/npy.py).
NPY_BAD_HEADER = _anomaly("npy_bad_header", R.MALFORMED_HEADER, "npy header numpy never writes")
NPY_TRUNCATED = _anomaly("npy_truncated", R.PARTIAL_SCAN, "array data shorter than its header")
# Reading in general (archive.py, containers/__init__.py).
DECOMPRESS_ERROR = _anomaly("decompress_error", R.PARTIAL_SCAN, "a compressed layer is broken")
MEMBER_UNREADABLE = _anomaly("member_unreadable", R.PARTIAL_SCAN, "a member could not be read")
READER_ERROR = _anomaly("reader_error", R.PARTIAL_SCAN, "a reader failed unexpectedly")
# joblib dumps (native/_joblibwalk.pyx emits these four; added after the feature schema, so
# counted as `other`). FS399 for the last three is today's behaviour, kept on purpose (issue 13
# changes no row); an array extent that disagrees with its wrapper is arguably FS315.
JOBLIB_WALK_BUDGET = _anomaly(
    "joblib_walk_budget",
    R.CONTAINER_BUDGET,
    "the symbolic walk hit its opcode budget",
    slot=OTHER_SLOT,
)
JOBLIB_SYMBOLIC_LOST = _anomaly(
    "joblib_symbolic_lost",
    R.CONTAINER_NOTE,
    "the symbolic walk could not follow the stream",
    slot=OTHER_SLOT,
)
JOBLIB_ARRAY_EXTENT_MISMATCH = _anomaly(
    "joblib_array_extent_mismatch",
    R.CONTAINER_NOTE,
    "an inline array's bytes disagree with its wrapper or the file",
    slot=OTHER_SLOT,
)
JOBLIB_UNPARSED = _anomaly(
    "joblib_unparsed",
    R.CONTAINER_NOTE,
    "a pickle piece the walk could not parse",
    slot=OTHER_SLOT,
)
# Budgets (ScanState.hit_budget): the file becomes partial and `Container.budget` names it.
BUDGET_DEPTH = _budget("depth", "archives or recursion nested too deep")
BUDGET_MEMORY = _budget("memory", "the reader ran out of memory")
BUDGET_MEMBERS = _budget("members", "more members than ContainerLimits.max_members")
BUDGET_COMPRESSION_RATIO = _budget("compression_ratio", "decompressed far more than read")
BUDGET_TOTAL_BYTES = _budget("total_bytes", "more decompressed bytes than the file may yield")
BUDGET_MEMBER_BYTES = _budget("member_bytes", "a member larger than one member may be")

"""The registry of finding rules: every id fastscan can emit, with its default severity.

Ids are stable handles (FS1xx imports, FS2xx stream structure, FS3xx containers, FS9xx model).
Code refers to the module-level constants below, never to an id typed by hand, so an id is
written exactly once: here.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..verdict import Finding, Severity


@dataclass(frozen=True, slots=True)
class FindingRule:
    rule_id: str
    severity: Severity  # default severity; a rule may pass another one for a stronger case
    title: str
    threats: str = ""  # THREATS.md ids this rule answers

    def finding(
        self,
        message: str,
        *,
        member: str = "",
        offset: int = -1,
        subject: str = "",
        severity: Severity | None = None,
    ) -> Finding:
        return Finding(
            rule_id=self.rule_id,
            severity=self.severity if severity is None else severity,
            message=message,
            member=member,
            offset=offset,
            subject=subject,
        )


REGISTRY: dict[str, FindingRule] = {}


def _rule(rule_id: str, severity: Severity, title: str, threats: str = "") -> FindingRule:
    if rule_id in REGISTRY:
        raise ValueError(f"duplicate finding rule id {rule_id}")
    rule = FindingRule(rule_id, severity, title, threats)
    REGISTRY[rule_id] = rule
    return rule


S = Severity

# FS1xx: what the stream imports and calls.
DANGEROUS_IMPORT = _rule("FS101", S.MALICIOUS, "dangerous global imported", "E, F")
DANGEROUS_CALL = _rule("FS102", S.MALICIOUS, "dangerous global called", "E, F, C8-C10")
UNKNOWN_GLOBAL = _rule("FS103", S.SUSPICIOUS, "global outside the reviewed allowlist", "F lesson")
UNRESOLVED_GLOBAL = _rule("FS104", S.SUSPICIOUS, "global not resolvable statically", "C11, D6")
DOTTED_THROUGH_ALLOWED = _rule(
    "FS105", S.SUSPICIOUS, "dotted attribute path through an allowlisted name", "E1, E2, D8"
)
# Serialized code (cloudpickle/dill functions, classes) only runs when the loading application
# calls it; calling it inside the pickle is FS107. Recorded, graded by the model, not flagged.
CODE_CONSTRUCTION = _rule("FS106", S.LOW, "function or code object constructed", "F")
CALL_OF_CALL_RESULT = _rule("FS107", S.SUSPICIOUS, "call of a call result", "E6")
REVIEWED_UNKNOWN = _rule("FS108", S.SUSPICIOUS, "reviewed global that is neither safe nor sink")
# An unlisted callable applied like a function (rules/unknown_calls.py): never settled by the
# classifier (verdict.JUDGEABLE_RULES), unlike FS103.
UNKNOWN_APPLIED = _rule("FS109", S.SUSPICIOUS, "unlisted callable applied to arguments", "J6")

# FS2xx: structure of the pickle stream.
BROKEN_AFTER_CALL = _rule("FS201", S.SUSPICIOUS, "stream breaks after a call ran", "C1, G1, G2")
PARSE_FAILURE = _rule("FS202", S.SUSPICIOUS, "stream does not parse to its end", "C1, G2")
NOT_A_PICKLE = _rule("FS203", S.INFO, "member looked like a pickle but is not one", "A18")
TOKENIZER_BUDGET = _rule("FS204", S.SUSPICIOUS, "tokenizer budget hit, scan incomplete", "G5")
FRAME_VIOLATION = _rule("FS205", S.SUSPICIOUS, "opcode crosses its FRAME boundary", "C5")
MEMO_TRICK = _rule("FS206", S.SUSPICIOUS, "memo used in a way picklers never do", "D1-D4, G5")
PROTO_TRICK = _rule("FS207", S.SUSPICIOUS, "PROTO misplaced or repeated", "C14")
LOADER_WOULD_FAIL = _rule("FS208", S.SUSPICIOUS, "stack/mark error the loader raises on", "G1")
MUTATES_GLOBAL = _rule(
    "FS209", S.MALICIOUS, "BUILD/SETITEM applied to an imported object", "D7, D8, D9, I3"
)
NESTED_PICKLE = _rule("FS210", S.SUSPICIOUS, "pickle embedded in a bytes operand", "H1")
ENCODED_PICKLE = _rule("FS211", S.SUSPICIOUS, "base64/hex encoded pickle in a string", "H2")
TRAILING_JUNK = _rule("FS212", S.LOW, "bytes after the last STOP or between pickles", "C2, C4")
MULTIPLE_PICKLES = _rule("FS213", S.SUSPICIOUS, "several pickles where one is expected", "C3, A6")
PERSID_OUTSIDE_TORCH = _rule("FS214", S.SUSPICIOUS, "persistent id outside a torch file", "C12")
SHELL_STRING = _rule("FS215", S.SUSPICIOUS, "string looks like a shell command or code", "H3, H4")
URL_STRING = _rule("FS216", S.LOW, "string holds a URL", "H3")
NON_UTF8_NAME = _rule("FS217", S.SUSPICIOUS, "global name bytes are not UTF-8", "C13")
EXT_CODE = _rule("FS218", S.SUSPICIOUS, "callable fetched by copyreg extension code", "C11")
ODD_STRUCTURE = _rule("FS219", S.LOW, "benign-looking structural quirk", "C15")
NESTED_BUDGET = _rule("FS220", S.SUSPICIOUS, "nested pickles beyond the budget not read", "G5")

# FS3xx: containers.
ZIP_FLAG = _rule("FS301", S.SUSPICIOUS, "zip flag bits a torch.save never sets", "B1, B2")
ZIP_NAME_MISMATCH = _rule("FS302", S.SUSPICIOUS, "zip local/central names differ", "B3")
ZIP_CRC_MISMATCH = _rule("FS303", S.SUSPICIOUS, "zip member CRC does not match", "B4")
ZIP_PREFIX = _rule("FS304", S.SUSPICIOUS, "bytes before the first zip header", "B7, A16")
ARCHIVE_PATH_ABUSE = _rule("FS305", S.SUSPICIOUS, "path traversal or symlink member", "B6")
CONTAINER_BUDGET = _rule("FS306", S.SUSPICIOUS, "container budget hit (bomb?)", "B6, G5")
# Status notes are LOW on purpose: verdict.combine turns an incomplete status into a verdict
# floor (VerdictPolicy.incomplete_verdict), so the policy lives in one place.
ENCRYPTED = _rule("FS307", S.LOW, "content is encrypted and unscannable", "B5")
PARTIAL_SCAN = _rule("FS308", S.LOW, "container only partly read", "G2")
SCAN_ERROR = _rule("FS309", S.LOW, "container could not be read", "G1, G2")
UNSUPPORTED = _rule("FS310", S.INFO, "not a format fastscan reads", "A18")
ZIP_STRUCTURE = _rule(
    "FS311", S.SUSPICIOUS, "archive structure a normal writer never emits", "B3, B7"
)
LEGACY_TORCH_TRICK = _rule("FS312", S.SUSPICIOUS, "legacy torch layout forged", "A5, A6")
TRAILING_DATA = _rule("FS313", S.LOW, "data after the end of the container", "A16")
POLYGLOT = _rule("FS314", S.SUSPICIOUS, "file is valid as two formats", "A16")
MALFORMED_HEADER = _rule("FS315", S.SUSPICIOUS, "format header a writer never produces", "A10, A16")
CONTAINER_NOTE = _rule("FS399", S.LOW, "other container anomaly")

# FS9xx: learned models (emitted by verdict.combine).
CLASSIFIER_SCORE = _rule("FS901", S.SUSPICIOUS, "classifier probability above threshold", "G6")
ANOMALY_SCORE = _rule("FS902", S.SUSPICIOUS, "anomaly score above threshold", "G6")
# Unlisted globals are what every user-defined class looks like; when they are the file's only
# reason for suspicion and the classifier is confident the file is benign, they become `low`.
UNKNOWN_JUDGED_BENIGN = _rule("FS903", S.LOW, "unlisted globals judged benign by the classifier")

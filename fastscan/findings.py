"""Findings and the registry of finding rules: every id fastscan can emit, with its severity.

Ids are stable handles (FS1xx imports, FS2xx stream structure, FS3xx containers, FS9xx model).
Code refers to the module-level constants below, never to an id typed by hand, so an id is
written exactly once: here. This module imports nothing of the package, so every stage (rules,
verdict, sinks, sources) can name a rule without importing another stage.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum


class Severity(IntEnum):
    INFO = 0  # recorded, never changes the verdict
    LOW = 1  # worth a look, clean verdict stays clean
    SUSPICIOUS = 2  # verdict at least suspicious
    MALICIOUS = 3  # verdict malicious

    @classmethod
    def parse(cls, text: str) -> Severity:
        try:
            return cls[text.strip().upper()]
        except KeyError:
            names = ", ".join(s.name.lower() for s in cls)
            raise ValueError(f"unknown severity {text!r}; expected one of {names}") from None


@dataclass(frozen=True, slots=True)
class Finding:
    rule_id: str  # stable: FS1xx imports, FS2xx structure, FS3xx containers, FS9xx model
    severity: Severity
    message: str
    member: str = ""  # container member ("" for the file itself)
    offset: int = -1  # byte offset inside the member's pickle buffer
    subject: str = ""  # what triggered it, e.g. "os.system"
    # "" or the user suppression that matched ("CONFIG: reason"): kept for the audit trail,
    # never counted toward the verdict
    suppressed: str = ""

    def where(self) -> str:
        loc = self.member or "<file>"
        return f"{loc}@{self.offset}" if self.offset >= 0 else loc


@dataclass(frozen=True, slots=True)
class FindingRule:
    rule_id: str
    severity: Severity  # default severity; a rule may pass another one for a stronger case
    title: str
    threats: str = ""  # docs/threats.md ids this rule answers
    explanation: str = ""  # why it matters (SARIF fullDescription, docs/rules.md)
    remediation: str = ""  # what to do about it; "" = the family's default (see `fix`)

    @property
    def fix(self) -> str:
        return self.remediation or _FAMILY_FIX[self.rule_id[2]]

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


def _rule(
    rule_id: str,
    severity: Severity,
    title: str,
    threats: str = "",
    *,
    why: str,
    fix: str = "",
) -> FindingRule:
    if rule_id in REGISTRY:
        raise ValueError(f"duplicate finding rule id {rule_id}")
    rule = FindingRule(rule_id, severity, title, threats, why, fix)
    REGISTRY[rule_id] = rule
    return rule


S = Severity

# Remediation shared by a family when a rule names none of its own.
_FAMILY_FIX = {
    "1": "Do not load the file. Get the model from its publisher or as safetensors; if the global"
    " is one your own code defines and you have reviewed it, allowlist it in a --config file.",
    "2": "Do not load the file. Loaders and picklers never write this structure; re-export the"
    " model from its source with a current library, or inspect it with `fastscan explain`.",
    "3": "Do not load the file until the archive is explained; re-save it with the library that"
    " wrote it, or inspect it with `fastscan explain`.",
    "9": "Review the file with `fastscan explain`: the learned models only raise suspicion; the"
    " rule findings listed with it say what was seen.",
}

# FS1xx: what the stream imports and calls.
DANGEROUS_IMPORT = _rule(
    "FS101",
    S.MALICIOUS,
    "dangerous global imported",
    "E, F",
    why="The pickle imports a callable that runs commands, code, file or network operations"
    " (a denylisted sink). Loading the file hands that callable to the stream.",
)
DANGEROUS_CALL = _rule(
    "FS102",
    S.MALICIOUS,
    "dangerous global called",
    "E, F, C8-C10",
    why="The pickle calls a denylisted sink (REDUCE, INST, OBJ, NEWOBJ): loading the file runs"
    " it with arguments the file chose. This is how pickle payloads execute. Benign shapes are"
    " low, judged by what the call site hands the sink: a nested loader over literal bytes"
    " whose nested scan is clean (nested pickles, or an archive opened and scanned as a file);"
    " getattr(owner, 'name') graded as the global owner.name (reported beside it); partial or a"
    " dispatcher handed only inert callables; a partial of a function nobody listed that the"
    " load keeps and never calls (the function keeps its own finding).",
)
UNKNOWN_GLOBAL = _rule(
    "FS103",
    S.SUSPICIOUS,
    "global outside the reviewed allowlist",
    "F lesson",
    why="The pickle imports a name that is neither on the reviewed allowlist nor a known sink."
    " User-defined classes look like this, and so do sinks nobody listed yet.",
)
UNRESOLVED_GLOBAL = _rule(
    "FS104",
    S.SUSPICIOUS,
    "global not resolvable statically",
    "C11, D6",
    why="The imported name is built at load time (from the memo, a call result or stack"
    " tricks), so what it resolves to cannot be known without running the pickle.",
)
DOTTED_THROUGH_ALLOWED = _rule(
    "FS105",
    S.SUSPICIOUS,
    "dotted attribute path through an allowlisted name",
    "E1, E2, D8",
    why="A dotted name walks from an allowed module to an attribute that was never reviewed,"
    " e.g. a safe module's re-exported `os`; protocol 4 resolves such paths.",
)
# Serialized code (cloudpickle/dill functions, classes) only runs when the loading application
# calls it; calling it inside the pickle is FS107. Recorded, graded by the model, not flagged.
CODE_CONSTRUCTION = _rule(
    "FS106",
    S.LOW,
    "function or code object constructed",
    "F",
    why="The pickle rebuilds a function, class or code object (cloudpickle, dill). It runs only"
    " if the loading program calls it, so it is recorded, not flagged.",
    fix="Load such files only from publishers you trust; prefer formats without serialized code.",
)
CALL_OF_CALL_RESULT = _rule(
    "FS107",
    S.SUSPICIOUS,
    "call of a call result",
    "E6",
    why="The pickle calls the value another call returned (e.g. getattr(...)(...)), a way to"
    " reach a sink without importing it by name.",
)
REVIEWED_UNKNOWN = _rule(
    "FS108",
    S.SUSPICIOUS,
    "reviewed global that is neither safe nor sink",
    why="The name was reviewed and is neither safe to import nor a known sink: its effect"
    " depends on the arguments the pickle passes.",
)
# Judged through the ecosystem index (rules/indexed.py).
UNDEFINED_IN_INDEX = _rule(
    "FS109",
    S.SUSPICIOUS,
    "name its indexed module does not define (typo, shadow)",
    "E, I",
    why="The module is in the ecosystem index, its namespace is closed (pure Python, no names"
    " made at run time) and it defines no such name: a typo, an attribute path through a module"
    " it imports, a class of another version, or a name made up to slip past a list. A name"
    " missing from an open namespace (compiled, globals() writes, set from another module, PEP"
    " 562) is unlisted (FS103) instead.",
    fix="Check the name against the library's source; add your own packages with"
    " `fastscan index` and `--index`.",
)
REACHES_SINK = _rule(
    "FS110",
    S.MALICIOUS,
    "load-time code of the name reaches a sink",
    "E, F, J",
    why="What the loader runs for this name (its __init__/__new__, __setstate__, item hooks, or"
    " the function body) reaches a dangerous primitive; the message gives the shortest path. A"
    " path longer than rules.indexed.REACH_STEPS_MAX calls is suspicious: too indirect alone."
    " Low when the call sites show it runs nothing the pickle chose: a dispatcher handed only"
    " inert callables, a nested loader reached through __setstate__ whose state holds only"
    " clean nested pickles, a sink that runs text handed no text. A name only stored as data"
    " (never called, handed to a call, hashed, built or filled) runs no hook: FS111 instead;"
    " FS113 when an object of an unlisted class holds it.",
    fix="Do not load the file; if the path is a false alarm, allow the name in your config.",
)
# An indexed library name whose load-time hooks reach no sink: recorded, not suspicious.
KNOWN_BY_INDEX = _rule(
    "FS111",
    S.LOW,
    "library name known to the index, reaches no sink",
    why="The ecosystem index knows this name and its load-time code reaches no dangerous"
    " primitive, or none by the hooks this pickle runs (a class only stored as data runs none):"
    " an ordinary library object being restored.",
    fix="Nothing to do.",
)
# An unlisted callable applied like a function (rules/unknown_calls.py): never settled by the
# classifier (JUDGEABLE_RULES), unlike FS103.
UNKNOWN_APPLIED = _rule(
    "FS112",
    S.SUSPICIOUS,
    "unlisted callable applied to arguments",
    "J6",
    why="A name no list or index knows is called like a function (its result discarded, called"
    " or fed to another call, or handed strings or bytes that do not describe state: text that"
    " reads as a command, code, a path or a URL, bytes a loader could open or that read as such"
    " text), the shape of a command runner, not of an object being restored; the classifier may"
    " not settle it. A reconstructor (result kept as restored data, its own call handed globals,"
    " numbers, inert text, binary bytes) is FS103. Also an unlisted function handed as the first"
    " argument of another package's call beside text or bytes, or wrapped by a partial that"
    " binds it text a command line could be: a stored callback and its argument"
    " (callback-dispatch gadgets), not a class handed its state.",
    fix="Review what the function does; allow it in your config or index your package.",
)
# An index reach only stored in objects of unlisted classes (rules/kept.py held_by_unlisted):
# as uncertain as those classes' own FS103, so settled with them (JUDGEABLE_RULES).
HELD_BY_UNLISTED = _rule(
    "FS113",
    S.SUSPICIOUS,
    "load-time reach held only by objects of unlisted classes",
    "E, F, J",
    why="A name whose load-time code reaches a sink (FS110) is never called nor handed to a"
    " call by the pickle: it is only stored in the state or items of objects whose classes no"
    " list or index knows. Its hooks run only if those classes' own load-time code calls what"
    " they hold, which is exactly as unknown as the classes themselves (FS103): suspicious, and"
    " settled with them when a confident classifier judges the file benign (FS903).",
    fix="Review the holding classes; allow them in your config or index your package.",
)

# FS2xx: structure of the pickle stream.
BROKEN_AFTER_CALL = _rule(
    "FS201",
    S.SUSPICIOUS,
    "stream breaks after a call ran",
    "C1, G1, G2",
    why="The stream fails to parse after a call opcode: a loader would already have run the"
    " call when it raises, a known way to hide payloads from scanners that stop at errors.",
)
PARSE_FAILURE = _rule(
    "FS202",
    S.SUSPICIOUS,
    "stream does not parse to its end",
    "C1, G2",
    why="The pickle does not parse to its STOP opcode; the unread rest may hold anything.",
)
NOT_A_PICKLE = _rule(
    "FS203",
    S.INFO,
    "member looked like a pickle but is not one",
    "A18",
    why="A member had a pickle-like name or prefix but is not a pickle; nothing runs from it.",
    fix="Nothing to do.",
)
TOKENIZER_BUDGET = _rule(
    "FS204",
    S.SUSPICIOUS,
    "tokenizer budget hit, scan incomplete",
    "G5",
    why="The stream exceeded an opcode or size budget, so the scan stopped early; what follows"
    " was not checked. Attackers pad streams to exhaust scanners.",
)
FRAME_VIOLATION = _rule(
    "FS205",
    S.SUSPICIOUS,
    "opcode crosses its FRAME boundary",
    "C5",
    why="An opcode spans a FRAME boundary, which pickle writers never produce and which"
    " frame-aware and frame-unaware readers decode differently.",
)
MEMO_TRICK = _rule(
    "FS206",
    S.SUSPICIOUS,
    "memo used in a way picklers never do",
    "D1-D4, G5",
    why="The memo is read before it is written, overwritten or indexed oddly: a way to make"
    " a static reader see a different object than the loader. The memo budget alone is a low"
    " note unless a later GET reads an entry the budget dropped.",
)
PROTO_TRICK = _rule(
    "FS207",
    S.SUSPICIOUS,
    "PROTO misplaced or repeated",
    "C14",
    why="A PROTO opcode appears after the start or more than once; writers emit exactly one.",
)
LOADER_WOULD_FAIL = _rule(
    "FS208",
    S.SUSPICIOUS,
    "stack/mark error the loader raises on",
    "G1",
    why="The loader would raise on a stack or mark error here, after running what came before.",
)
MUTATES_GLOBAL = _rule(
    "FS209",
    S.MALICIOUS,
    "BUILD/SETITEM applied to an imported object",
    "D7, D8, D9, I3",
    why="The pickle changes attributes or items of an imported module or class, which can"
    " replace functions the loading program calls later.",
)
NESTED_PICKLE = _rule(
    "FS210",
    S.SUSPICIOUS,
    "pickle embedded in a bytes operand",
    "H1",
    why="A bytes value holds another pickle, which code in the outer one may load. Low when the"
    " tokenizer read it whole: its own findings (reported inside it) grade what it holds.",
)
ENCODED_PICKLE = _rule(
    "FS211",
    S.SUSPICIOUS,
    "base64/hex encoded pickle in a string",
    "H2",
    why="A string decodes (base64 or hex) to a pickle: a second stage hidden from scanners.",
)
TRAILING_JUNK = _rule(
    "FS212",
    S.LOW,
    "bytes after the last STOP or between pickles",
    "C2, C4",
    why="Bytes follow the final STOP or sit between pickles; loaders ignore them, but a second"
    " loader call or a different tool may not.",
    fix="Usually harmless padding; re-save the file if you control it.",
)
MULTIPLE_PICKLES = _rule(
    "FS213",
    S.SUSPICIOUS,
    "several pickles where one is expected",
    "C3, A6",
    why="The member holds more than one pickle where its format has one; a loader reading"
    " twice, or another tool, would run the hidden one.",
)
PERSID_OUTSIDE_TORCH = _rule(
    "FS214",
    S.SUSPICIOUS,
    "persistent id outside a torch file",
    "C12",
    why="PERSID/BINPERSID hands a value to the loader's persistent_load hook; outside torch"
    " files that hook is application code with unknown effects.",
)
SHELL_STRING = _rule(
    "FS215",
    S.SUSPICIOUS,
    "string looks like a shell command or code",
    "H3, H4",
    why="A string operand looks like a shell command or Python source, the usual argument of"
    " an execution sink.",
)
URL_STRING = _rule(
    "FS216",
    S.LOW,
    "string holds a URL",
    "H3",
    why="A string holds a URL; harmless in configs, but also how payloads fetch a second stage.",
    fix="Check the URL belongs to the model's metadata.",
)
NON_UTF8_NAME = _rule(
    "FS217",
    S.SUSPICIOUS,
    "global name bytes are not UTF-8",
    "C13",
    why="A GLOBAL name is not valid UTF-8; Python's loader decodes names differently than"
    " many scanners, so the name seen and the name imported may differ.",
)
EXT_CODE = _rule(
    "FS218",
    S.SUSPICIOUS,
    "callable fetched by copyreg extension code",
    "C11",
    why="EXT1/2/4 fetch a callable from the loader's copyreg extension registry, hiding its"
    " name from the stream.",
)
ODD_STRUCTURE = _rule(
    "FS219",
    S.LOW,
    "benign-looking structural quirk",
    "C15",
    why="The stream has a quirk common writers do not produce but that does not change what"
    " the loader builds.",
    fix="Usually harmless; `fastscan explain` shows where.",
)
NESTED_BUDGET = _rule(
    "FS220",
    S.SUSPICIOUS,
    "nested pickles beyond the budget not read",
    "G5",
    why="More nested pickles than the budget allows: the rest were not scanned.",
)

# FS3xx: containers.
ZIP_FLAG = _rule(
    "FS301",
    S.SUSPICIOUS,
    "zip flag bits a torch.save never sets",
    "B1, B2",
    why="Zip flag bits (encryption, data descriptors) that torch.save never sets; readers"
    " disagree on such members.",
)
ZIP_NAME_MISMATCH = _rule(
    "FS302",
    S.SUSPICIOUS,
    "zip local/central names differ",
    "B3",
    why="A member's local header and central directory name differ, so two zip readers may"
    " open different bytes under one name.",
)
ZIP_CRC_MISMATCH = _rule(
    "FS303",
    S.SUSPICIOUS,
    "zip member CRC does not match",
    "B4",
    why="A member's CRC does not match its bytes: the file was edited after it was written.",
)
ZIP_PREFIX = _rule(
    "FS304",
    S.SUSPICIOUS,
    "bytes before the first zip header",
    "B7, A16",
    why="Bytes precede the first zip header: room for a second format (a pickle read by"
    " another loader) in front of the archive.",
)
ARCHIVE_PATH_ABUSE = _rule(
    "FS305",
    S.SUSPICIOUS,
    "path traversal or symlink member",
    "B6",
    why="A member name escapes the extraction directory (../, absolute) or is a symlink.",
)
CONTAINER_BUDGET = _rule(
    "FS306",
    S.SUSPICIOUS,
    "container budget hit (bomb?)",
    "B6, G5",
    why="The archive exceeded a member, size or nesting budget (a decompression bomb or an"
    " attempt to exhaust the scanner); members past the budget were not read.",
)
# Status notes are LOW on purpose: verdict.combine turns an incomplete status into a verdict
# floor (VerdictPolicy.incomplete_verdict), so the policy lives in one place.
ENCRYPTED = _rule(
    "FS307",
    S.LOW,
    "content is encrypted and unscannable",
    "B5",
    why="Encrypted content cannot be scanned; the file stays suspicious (fail closed).",
    fix="Scan the decrypted file, or obtain an unencrypted copy.",
)
PARTIAL_SCAN = _rule(
    "FS308",
    S.LOW,
    "container only partly read",
    "G2",
    why="Part of the container could not be read, so part of the file was not scanned.",
    fix="Check the file is complete (not truncated by a download) and scan it again.",
)
SCAN_ERROR = _rule(
    "FS309",
    S.LOW,
    "container could not be read",
    "G1, G2",
    why="The file could not be read or parsed at all; nothing in it was checked, so it is"
    " never reported clean.",
    fix="Check the file is readable and complete; the message says what failed.",
)
UNSUPPORTED = _rule(
    "FS310",
    S.INFO,
    "not a format fastscan reads",
    "A18",
    why="The file is in a format without pickles (text, images, safetensors, ONNX...).",
    fix="Nothing to do.",
)
ZIP_STRUCTURE = _rule(
    "FS311",
    S.SUSPICIOUS,
    "archive structure a normal writer never emits",
    "B3, B7",
    why="The archive has structure no normal writer emits (overlapping members, missing"
    " directory), where zip readers disagree.",
)
LEGACY_TORCH_TRICK = _rule(
    "FS312",
    S.SUSPICIOUS,
    "legacy torch layout forged",
    "A5, A6",
    why="A legacy (pre-1.6) torch file whose layout was forged: extra or broken pickles that"
    " torch.load reads in an order scanners may not.",
)
TRAILING_DATA = _rule(
    "FS313",
    S.LOW,
    "data after the end of the container",
    "A16",
    why="Bytes follow the end of the container; a different reader may start there.",
    fix="Usually harmless; re-save the file if you control it.",
)
POLYGLOT = _rule(
    "FS314",
    S.SUSPICIOUS,
    "file is valid as two formats",
    "A16",
    why="The file parses as two formats (e.g. zip and tar); each loader sees other content.",
)
MALFORMED_HEADER = _rule(
    "FS315",
    S.SUSPICIOUS,
    "format header a writer never produces",
    "A10, A16",
    why="A format header (npy, joblib, torch) that its writer never produces.",
)
# A file that could not be opened at all (missing, dangling symlink, symlink loop, FIFO or
# device, permission denied, unreadable directory), found by discovery or on open: nothing was
# read, so it is suspicious whatever VerdictPolicy.incomplete_verdict says.
UNREADABLE_FILE = _rule(
    "FS316",
    S.SUSPICIOUS,
    "file could not be opened",
    "G1, G2",
    why="Nothing of the file could be read (missing, dangling or looping symlink, FIFO or device,"
    " permission denied), so nothing is known about what loading it would do.",
    fix="Make the file readable to the scanner, or remove the broken link, and scan again.",
)
CONTAINER_NOTE = _rule(
    "FS399",
    S.LOW,
    "other container anomaly",
    why="A container anomaly without a rule of its own; the message names it.",
    fix="Inspect with `fastscan explain`.",
)

# FS9xx: learned models (emitted by verdict.combine).
CLASSIFIER_SCORE = _rule(
    "FS901",
    S.SUSPICIOUS,
    "classifier probability above threshold",
    "G6",
    why="The classifier, trained on benign and malicious pickles, scores the file's opcode"
    " and import features above its threshold.",
)
ANOMALY_SCORE = _rule(
    "FS902",
    S.SUSPICIOUS,
    "anomaly score above threshold",
    "G6",
    why="The file's features are unusually far from the benign files the anomaly model saw.",
)
# Unlisted globals are what every user-defined class looks like; when they are the file's only
# reason for suspicion and the classifier is confident the file is benign, they become `low`.
UNKNOWN_JUDGED_BENIGN = _rule(
    "FS903",
    S.LOW,
    "unlisted globals judged benign by the classifier",
    why="The file's only suspicion was unlisted globals (and reaches only their objects hold)"
    " and the classifier is confident the file is benign, as it is for user-defined classes.",
    fix="Allowlist your own classes in a --config file to make this explicit;"
    " --strict-unknown keeps such files suspicious.",
)

# Findings a confident benign classifier score may settle (verdict.combine, FS903).
# Not FS112: an unlisted callable applied like a function stays suspicious whatever the score.
JUDGEABLE_RULES = frozenset(
    {UNKNOWN_GLOBAL.rule_id, REVIEWED_UNKNOWN.rule_id, HELD_BY_UNLISTED.rule_id}
)

MODEL_RULE_PREFIX = "FS9"  # FS9xx: what the learned models add (verdict.combine)


def rule_findings(findings: Iterable[Finding]) -> list[Finding]:
    """`findings` without the models' own (FS9xx): what the rules alone found."""
    return [f for f in findings if not f.rule_id.startswith(MODEL_RULE_PREFIX)]

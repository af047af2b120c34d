"""Strings that are commands, code or URLs (SHELL_STRING, URL_STRING), behind a native pre-filter
that lets tensor names and config values skip the regexes."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from .. import _features as _native
from .. import findings as R
from .collect import Collector, Scope
from .knowledge import Classification

# Strings that are commands or code, never tensor names or config values.
_SHELL = re.compile(
    r"(?:^|[\s;&|`(])(?:/bin/(?:ba|z|da)?sh|cmd(?:\.exe)?\s+/c|powershell|curl\s|wget\s|nc\s+-|"
    r"ncat\s|bash\s+-[ci]|sh\s+-c|rm\s+-rf|chmod\s+[+0-7]|mkfifo|/dev/tcp/|base64\s+-d)"
    r"|__import__\s*\(|\bexec\s*\(|\beval\s*\(|\bos\.system\b|\bsubprocess\.|\bimport\s+os\b",
    re.IGNORECASE,
)
_URL = re.compile(r"\b(?:https?|ftp)://[^\s'\"]+", re.IGNORECASE)
# Cheap pre-filter over all strings at once: does one of these needles occur in some string?
# Only a hit pays for the per-string regexes above (an alternation over all strings costs
# ~100 us per file). It must hit whenever a regex can match, so every alternative of _SHELL and
# _URL holds a needle among the characters it always matches (proved from the parsed patterns
# by tests/rules/test_prefilter_native_equals_spec.py), and needles are compared with each
# character folded the way the regexes see it: " " stands for any `\s` ("nc\t-e", "sh\u00a0-c"),
# a letter for its re.IGNORECASE variants ("\u017fh -c" is "sh -c" to `re`). Needles as long as
# that allows keep tensor names ("layer_norm", "shape", "rms", "system_prompt") from paying for
# the regex pass.
_MAYBE = (
    "/bin/", "cmd", "powershell", "curl ", "wget ", "nc ", "ncat ", "sh ", "rm ", "chmod ",
    "mkfifo", "/dev/tcp/", "base64 ", "__import__", "exec", "eval", "os.system", "subprocess.",
    "import ", "://",
)  # fmt: skip


def string_findings(member: str, strings: Sequence[str], out: Collector, scope: Scope) -> None:
    offset, where = scope.at(-1), scope.where
    if not strings:
        return
    if not maybe_command(strings):
        return
    for text in strings:
        if _SHELL.search(text):
            out.add(
                R.SHELL_STRING.finding(
                    f"string looks like a command or code: {text[:120]!r}{where}",
                    member=member,
                    offset=offset,
                    subject=text[:80],
                )
            )
        else:
            url = _URL.search(text)
            if url:
                out.add(
                    R.URL_STRING.finding(
                        f"string holds a URL: {url.group(0)[:120]!r}{where}",
                        member=member,
                        offset=offset,
                        subject=url.group(0)[:80],
                    )
                )


# `module:qualname`, the spelling import resolvers take (pkgutil.resolve_name, entry points,
# toolz's `_restore_curry(curry, "mod:qual", ..., True)`): the text is that object to them.
_OBJECT_REFERENCE = re.compile(r"([A-Za-z_][\w.]*):([A-Za-z_][\w.]*)")
_REFERENCE_NEEDLE = (":",)


def referenced_by_text(
    member: str,
    strings: Sequence[str],
    classify: Callable[[str, str], Classification],
    out: Collector,
    scope: Scope,
) -> None:
    """A string that names a denylisted callable as `module:qualname` is that callable to
    whatever resolves it, so it is graded as if the pickle imported it (FS101)."""
    if not strings or not _native.contains_folded(strings, _REFERENCE_NEEDLE):
        return
    offset, where = scope.at(-1), scope.where
    for text in strings:
        ref = _OBJECT_REFERENCE.fullmatch(text) if ":" in text else None
        if ref is None:
            continue
        cls = classify(ref.group(1), ref.group(2))
        if cls.is_dangerous:
            out.add(
                R.DANGEROUS_IMPORT.finding(
                    f"{text!r} names {cls.resolved or text} [{cls.category}] by text: an import"
                    f" resolver handed it returns the callable ({cls.reason}){where}",
                    member=member,
                    offset=offset,
                    subject=text[:80],
                )
            )


def maybe_command(strings: Sequence[str]) -> bool:
    """Whether a _MAYBE needle occurs in some string, folded (see _MAYBE); native, one pass.

    Its plain Python specification is tests/specs/prefilter.py.
    """
    return bool(_native.contains_folded(strings, _MAYBE))

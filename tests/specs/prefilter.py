"""The Python specification of the rules engine's string pre-filter (`strings.maybe_command`,
natively `_features.contains_folded`).

A needle occurs in some string once each character is folded the way the engine's regexes see it:
every `\\s` character becomes " " and the re.IGNORECASE variants of an ASCII letter become that
lowercase letter. tests/rules/test_prefilter_native_equals_spec.py holds the native pass to this
code for any needles, and this fold to what `re` does over every code point.
"""

from __future__ import annotations

from collections.abc import Sequence

from fastscan.rules.strings import _MAYBE

# what `\s` matches in a str pattern: Py_UNICODE_ISSPACE
WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005"
    "\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
# The fold of _features.contains_folded as a str.translate table.
FOLD = str.maketrans(
    {
        **dict.fromkeys(WHITESPACE, " "),
        **{chr(c): chr(c + 32) for c in range(65, 91)},
        "\u0130": "i", "\u0131": "i", "\u017f": "s", "\u212a": "k",
    }
)  # fmt: skip


def maybe_command(strings: Sequence[str], needles: Sequence[str] = _MAYBE) -> bool:
    """Whether a needle occurs in some folded string.

    NUL joins the strings: no needle holds it, so no match spans two of them.
    """
    folded = "\0".join(strings).translate(FOLD)
    return any(word in folded for word in needles)

"""Rule files: validation errors that name the file and entry, and user configuration (extra
allow and deny entries, overriding a shipped sink, missing or broken config files)."""

from __future__ import annotations

from pathlib import Path

import pytest

from fastscan.rules import (
    UNKNOWN,
    RuleConfigError,
    RuleSet,
    classify,
    default_ruleset,
)
from fastscan.rules.knowledge import parse_shipped

SHIPPED = default_ruleset()


# --- validation and user configuration ---------------------------------------------------------


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (
            {"entry": [{"module": "a", "name": "b", "class": "safe", "category": "x", "ref": "r"}]},
            "reason",
        ),
        (
            {
                "entry": [
                    {"module": "a", "name": "b", "class": "safe", "category": "x", "reason": "why"}
                ]
            },
            "ref",
        ),
        (
            {
                "entry": [
                    {
                        "module": "a",
                        "name": "b",
                        "class": "nice",
                        "category": "x",
                        "reason": "r",
                        "ref": "r",
                    }
                ]
            },
            "class",
        ),
        (
            {
                "entry": [
                    {
                        "module": "a",
                        "name": "b",
                        "class": "dangerous",
                        "category": "bad",
                        "reason": "r",
                        "ref": "r",
                    }
                ]
            },
            "category",
        ),
        (
            {
                "entry": [
                    {
                        "module": "a b",
                        "name": "b",
                        "class": "safe",
                        "category": "x",
                        "reason": "r",
                        "ref": "r",
                    }
                ]
            },
            "module",
        ),
        (
            {
                "entry": [
                    {
                        "module": "a",
                        "name": "b",
                        "names": ["c"],
                        "class": "safe",
                        "category": "x",
                        "reason": "r",
                        "ref": "r",
                    }
                ]
            },
            "exactly one",
        ),
        (
            {
                "entry": [
                    {
                        "module": "a",
                        "name": "b",
                        "class": "safe",
                        "category": "x",
                        "reason": "r",
                        "ref": "r",
                        "typo": 1,
                    }
                ]
            },
            "typo",
        ),
        (
            {
                "entry": [
                    {
                        "module": "a",
                        "name": "f",
                        "class": "safe",
                        "category": "x",
                        "reason": "r",
                        "ref": "r",
                        "classes_only": True,
                    }
                ]
            },
            "classes_only",
        ),
        ({"entrys": []}, "entrys"),
    ],
)
def test_rule_file_validation_names_file_and_entry(doc: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(RuleConfigError, match=message) as err:
        parse_shipped(doc, "broken.toml")
    assert "broken.toml" in str(err.value)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "fastscan.toml"
    path.write_text(text)
    return path


def test_user_config_adds_allow_and_deny_entries(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """
[[allow]]
module = "mylab.models"
name = "*"
reason = "our own model classes"

[[deny]]
module = "mylab.tools"
names = ["run", "Runner"]
category = "process"
reason = "shells out"
ref = "TICKET-1"
""",
    )
    rules = RuleSet.load(path)
    assert rules.classify("mylab.models.v2", "Net").is_safe
    assert rules.classify("mylab.tools", "run").is_dangerous
    assert rules.classify("mylab.tools", "run").ref == "TICKET-1"
    assert rules.classify("mylab.models", "Net").ref == str(path)  # ref defaults to the file
    assert rules.classify("os", "system").is_dangerous  # shipped rules still apply
    assert rules.digest() != SHIPPED.digest()
    assert classify("mylab.models", "Net").verdict_class == UNKNOWN  # default set untouched


def test_user_allow_of_shipped_sink_needs_override(tmp_path: Path) -> None:
    text = '[[allow]]\nmodule = "builtins"\nname = "getattr"\nreason = "ultralytics uses it"\n'
    with pytest.raises(RuleConfigError, match=r"fastscan\.toml.*\[\[allow\]\] #1.*override"):
        RuleSet.load(_write(tmp_path, text))
    rules = RuleSet.load(_write(tmp_path, text + "override = true\n"))
    assert rules.classify("builtins", "getattr").is_safe
    assert rules.classify("__builtin__", "getattr").is_safe
    with pytest.raises(RuleConfigError, match="override"):
        RuleSet.load(
            _write(tmp_path, '[[allow]]\nmodule = "asyncio.x"\nname = "*"\nreason = "r"\n')
        )
    with pytest.raises(RuleConfigError, match="override"):
        RuleSet.load(_write(tmp_path, '[[allow]]\nmodule = "torch"\nname = "*"\nreason = "r"\n'))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[deny]]\nmodule = "a"\nname = "b"\nreason = "r"\n', "category"),
        ('[[deny]]\nmodule = "a"\nname = "b"\ncategory = "evil"\nreason = "r"\n', "category"),
        ('[[allow]]\nmodule = "a"\nname = "b"\n', "reason"),
        ('[[suppress]]\nrule = "FS999"\nreason = "r"\n', "FS999"),
        ('[[suppress]]\nrule = "FS103"\n', "reason"),
        ('[[suppress]]\nrule = "FS103"\nreason = "r"\npath = 3\n', "path"),
        ("[[allowed]]\n", "allowed"),
        ("not toml [", "not valid TOML"),
    ],
)
def test_user_config_errors_name_the_file(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(RuleConfigError, match=message) as err:
        RuleSet.load(_write(tmp_path, text))
    assert "fastscan.toml" in str(err.value)


def test_missing_user_config_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(RuleConfigError, match="cannot read"):
        RuleSet.load(tmp_path / "nope.toml")

"""Rule layer: a reviewed knowledge base of globals, and the engine turning facts into findings.

Usage: `classify("posix", "system").verdict_class == "dangerous"`;
`evaluate([(member, facts)], container, RuleSet.load("fastscan.toml"))` -> list[Finding].
"""

from __future__ import annotations

from ..findings import REGISTRY, FindingRule
from .engine import evaluate
from .knowledge import (
    CLASSES,
    DANGEROUS,
    DANGEROUS_CATEGORIES,
    SAFE,
    UNKNOWN,
    Classification,
    RuleConfigError,
    RuleEntry,
)
from .ruleset import RuleSet, Suppression, default_ruleset

__all__ = [
    "CLASSES",
    "DANGEROUS",
    "DANGEROUS_CATEGORIES",
    "REGISTRY",
    "SAFE",
    "UNKNOWN",
    "Classification",
    "FindingRule",
    "RuleConfigError",
    "RuleEntry",
    "RuleSet",
    "Suppression",
    "classify",
    "default_ruleset",
    "evaluate",
]


def classify(module: str, name: str, ruleset: RuleSet | None = None) -> Classification:
    """Classify one global (`module`, attribute path `name`) with the shipped or given rules."""
    return (ruleset or default_ruleset()).classify(module, name)

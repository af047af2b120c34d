"""Name semantics of the rule layer: C-level and Python-2 aliases, module and class-only
wildcards, dotted names as attribute paths, tainted attributes, degenerate names, memoisation."""

from __future__ import annotations

import pytest

from fastscan.rules import (
    UNKNOWN,
    RuleSet,
    classify,
    default_ruleset,
)

SHIPPED = default_ruleset()


# --- name semantics ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("module", "name", "resolved"),
    [
        ("posix", "system", "os.system"),
        ("nt", "system", "os.system"),
        ("_io", "FileIO", "io.FileIO"),
        ("_operator", "attrgetter", "operator.attrgetter"),
        ("__builtin__", "eval", "builtins.eval"),
        ("_pickle", "loads", "pickle.loads"),
        ("cPickle", "loads", "pickle.loads"),
        ("copy_reg", "_reconstructor", "copyreg._reconstructor"),
        ("_codecs", "encode", "codecs.encode"),
        ("pathlib._local", "PosixPath", "pathlib.PosixPath"),
    ],
)
def test_c_level_and_python2_aliases_map_to_public_module(
    module: str, name: str, resolved: str
) -> None:
    got = classify(module, name)
    assert got.resolved == resolved
    assert got.verdict_class == classify(*resolved.rsplit(".", 1)).verdict_class
    assert not got.dotted


def test_builtin_py2_spelling_equals_builtins() -> None:
    for name in ("set", "eval", "getattr", "type", "nonexistent_name"):
        assert (
            classify("__builtin__", name).verdict_class == classify("builtins", name).verdict_class
        )


def test_module_rule_covers_submodules_but_specific_rule_wins() -> None:
    assert classify("asyncio.unix_events", "_UnixSubprocessTransport._start").is_dangerous
    assert classify("asyncio", "run").is_dangerous
    # exact safe entry beats the module-wide deny of its module
    assert classify("torch.serialization", "_get_layout").is_safe
    assert classify("torch.serialization", "load").is_dangerous
    assert classify("torch.serialization", "_legacy_load").is_dangerous
    # a deny sub-package inside an allowlisted package
    assert classify("sklearn.datasets._openml", "fetch_openml").is_dangerous
    assert classify("sklearn.datasets", "SomeBunchClass").is_dangerous
    assert classify("sklearn.tree._classes", "DecisionTreeClassifier").is_safe
    assert classify("io", "BytesIO").is_safe and classify("io", "FileIO").is_dangerous
    assert (
        classify("logging", "getLogger").is_safe and classify("logging", "FileHandler").is_dangerous
    )


def test_classes_only_wildcard_covers_classes_and_cython_unpicklers_not_functions() -> None:
    assert classify("sklearn.linear_model._logistic", "LogisticRegression").is_safe
    assert classify("sklearn.utils.validation", "check_array").verdict_class == UNKNOWN
    assert classify("pandas._libs.arrays", "__pyx_unpickle_NDArrayBacked").is_safe
    assert classify("pandas", "read_csv").is_dangerous
    assert classify("pandas.io.pickle", "read_pickle").is_dangerous
    assert classify("pandas.io.pytables", "HDFStore").is_dangerous  # class, but does I/O


@pytest.mark.parametrize(
    ("module", "name", "resolved", "category"),
    [
        ("torch", "serialization.os.system", "os.system", "process"),  # E1
        ("random", "_os.system", "os.system", "process"),  # E2 import alias table
        ("pathlib", "os.system", "os.system", "process"),  # FK GHSA-5j3x-jp52-966f
        ("tempfile", "_shutil.rmtree", "shutil.rmtree", "filesystem_write"),
        ("torch", "serialization.pickle_module.loads", "pickle.loads", "nested_loader"),
        ("numpy", "__builtins__", "numpy.__builtins__", "introspection"),  # D8
        ("numpy", "size.__globals__", "numpy.size.__globals__", "introspection"),
        ("collections", "OrderedDict.__init__.__globals__", "", "introspection"),
        ("sklearn.base", "os.popen", "os.popen", "process"),
    ],
)
def test_dotted_names_resolve_as_attribute_paths(
    module: str, name: str, resolved: str, category: str
) -> None:
    got = classify(module, name)
    assert got.is_dangerous and got.category == category
    assert got.dotted == ("." in name)
    if resolved:
        assert got.resolved == resolved


def test_dotted_name_through_allowlisted_module_is_flagged_even_when_not_dangerous() -> None:
    got = classify("numpy", "prod.a")  # D8 attribute smuggling: safe function, smuggled attr
    assert got.verdict_class == UNKNOWN and got.dotted and got.through_allowlisted
    got = classify("torch", "nn.modules.linear.Linear")
    assert not got.is_safe and got.dotted and got.through_allowlisted
    # a safe class does not vouch for its attributes
    got = classify("pathlib", "Path.exists")
    assert got.verdict_class == UNKNOWN and got.through_allowlisted
    # reviewed dotted entries are not anomalies
    got = classify("pathlib", "Path.write_text")
    assert got.is_dangerous and not got.dotted
    # an unknown package's nested class is dotted but not "through an allowlist"
    got = classify("mylab.models", "Outer.Inner")
    assert got.verdict_class == UNKNOWN and got.dotted and not got.through_allowlisted


def test_dangerous_entry_taints_its_attributes() -> None:
    assert classify("subprocess", "Popen.__init__").is_dangerous
    assert classify("builtins", "getattr.x").is_dangerous
    assert classify("os", "path.join").is_dangerous


def test_unknown_and_degenerate_names() -> None:
    assert classify("mylab.models", "Net").verdict_class == UNKNOWN
    assert classify("", "x").verdict_class == UNKNOWN
    assert classify("os", "").verdict_class == UNKNOWN
    assert classify("  os ", " system ").is_dangerous  # protocol-0 text may carry spaces


def test_code_construction_is_its_own_reviewed_category() -> None:
    for module, name in [
        ("types", "CodeType"),
        ("types", "FunctionType"),
        ("cloudpickle.cloudpickle", "_make_function"),
        ("cloudpickle.cloudpickle_fast", "_make_skeleton_class"),
        ("dill._dill", "_create_function"),
        ("dill._dill", "_create_code"),
        ("builtins", "type"),
    ]:
        got = classify(module, name)
        assert (got.verdict_class, got.category) == (UNKNOWN, "code_construction"), got
    assert classify("dill._dill", "_import_module").is_dangerous
    assert classify("dill._dill", "_eval_repr").is_dangerous


def test_classify_is_memoised() -> None:
    first = SHIPPED.classify("posix", "system")
    assert SHIPPED.classify("posix", "system") is first


def test_digest_is_stable_hex() -> None:
    assert SHIPPED.digest() == RuleSet.load().digest()
    assert len(SHIPPED.digest()) == 64

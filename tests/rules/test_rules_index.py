"""Rules judging names through the ecosystem index (issue #14 item 4), with a small fake index
(tests/index_fake.py) so the expectations do not depend on the shipped index's contents.

Pickles are written by hand (the modules they name are fictional or only indexed, never
imported)."""

from __future__ import annotations

import pytest

from fastscan import findings as R
from fastscan.findings import Finding, Severity
from fastscan.rules import DANGEROUS, SAFE, UNKNOWN, RuleSet, evaluate
from fastscan.rules.indexed import KNOWN, UNDEFINED, describe
from fastscan.rules.knowledge import load_shipped
from fastscan.tokenizer import tokenize
from tests.index_fake import FakeIndex, Reach, sample


@pytest.fixture(scope="module")
def rules() -> RuleSet:
    return RuleSet(load_shipped(), index=sample())


def _run(rules: RuleSet, data: bytes) -> dict[str, list[Finding]]:
    out: dict[str, list[Finding]] = {}
    for f in evaluate([("", tokenize(data))], None, rules):
        out.setdefault(f.rule_id, []).append(f)
    return out


def _g(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


WRAPPER = ("acme.pipes", "SerializationWrapper")


def test_setstate_reach_fires_on_build(rules: RuleSet) -> None:
    # NEWOBJ then BUILD: the loader runs __setstate__, whose body calls pickle.loads
    found = _run(rules, b"\x80\x02" + _g(*WRAPPER) + b")\x81}b.")
    (hit,) = found[R.REACHES_SINK.rule_id]
    assert hit.severity == Severity.MALICIOUS
    assert "[nested_loader]" in hit.message and "setstate hook" in hit.message
    assert "SerializationWrapper.__setstate__ -> pickle.loads" in hit.message


def test_reach_only_fires_for_the_hook_the_pickle_runs(rules: RuleSet) -> None:
    # the same class restored by NEWOBJ without BUILD: __setstate__ never runs
    found = _run(rules, b"\x80\x02" + _g(*WRAPPER) + b")\x81.")
    assert R.REACHES_SINK.rule_id not in found
    assert found[R.KNOWN_BY_INDEX.rule_id][0].severity == Severity.LOW
    # an __init__ reach does not fire on NEWOBJ (cls.__new__ only) but does on REDUCE
    assert R.REACHES_SINK.rule_id not in _run(
        rules, b"\x80\x02" + _g("spawnlib", "Spawner") + b")\x81."
    )
    reduce = _run(
        rules, b"\x80\x02" + _g("spawnlib", "Spawner") + b"X\x07\x00\x00\x00echo hi\x85R."
    )
    assert "init hook" in reduce[R.REACHES_SINK.rule_id][0].message
    assert "[process]" in reduce[R.REACHES_SINK.rule_id][0].message


def test_function_called_by_reduce_reaches_its_sink(rules: RuleSet) -> None:
    found = _run(rules, _g("shelltool.util", "run_cmd") + b"(S'echo hi'\ntR.")
    (hit,) = found[R.REACHES_SINK.rule_id]
    assert "call hook" in hit.message and "subprocess.check_output" in hit.message


def test_container_hooks_fire_on_setitems(rules: RuleSet) -> None:
    empty = b"\x80\x02" + _g("diskdict", "DiskDict") + b")\x81."
    filled = b"\x80\x02" + _g("diskdict", "DiskDict") + b")\x81(X\x01\x00\x00\x00aK\x01u."
    assert R.REACHES_SINK.rule_id not in _run(rules, empty)
    assert "setitem hook" in _run(rules, filled)[R.REACHES_SINK.rule_id][0].message


def test_reconstructor_instantiates_its_first_argument(rules: RuleSet) -> None:
    # copyreg._reconstructor(cls, object, None) then BUILD: cls's __setstate__ runs
    data = (
        _g("copy_reg", "_reconstructor")
        + b"("
        + _g(*WRAPPER)
        + _g("__builtin__", "object")
        + b"NtR(dS'x'\nI1\nsb."
    )
    assert R.REACHES_SINK.rule_id in _run(rules, data)


def test_known_class_restored_the_usual_way_is_low_naming_its_package(rules: RuleSet) -> None:
    found = _run(rules, b"\x80\x02" + _g("gensim.models.word2vec", "Word2Vec") + b")\x81}b.")
    (known,) = found[R.KNOWN_BY_INDEX.rule_id]
    assert known.severity == Severity.LOW and "gensim" in known.message
    assert R.UNKNOWN_GLOBAL.rule_id not in found
    cls = rules.classify("gensim.models.word2vec", "Word2Vec")
    assert (cls.verdict_class, cls.index, cls.kind) == (UNKNOWN, KNOWN, "class")


def test_aliases_are_judged_by_their_origin(rules: RuleSet) -> None:
    plain = RuleSet(load_shipped())
    for module, name, origin in [
        ("sklearn.callback._progressbar", "Thread", "threading.Thread"),
        ("torch.multiprocessing", "Process", "multiprocessing.context.Process"),
    ]:
        assert not plain.classify(module, name).is_dangerous  # the spelling alone passes
        cls = rules.classify(module, name)
        assert cls.verdict_class == DANGEROUS, (module, name)
        assert cls.origin == origin and f"alias of {origin}" in cls.reason
    # since reviewed into the denylist from the index's finding: the entry decides, origin kept
    transport = rules.classify("sklearn.callback._transport", "Client")
    assert plain.classify("sklearn.callback._transport", "Client").is_dangerous
    assert transport.is_dangerous and transport.origin == "multiprocessing.connection.Client"
    found = _run(rules, _g("sklearn.callback._progressbar", "Thread") + b")R.")
    assert found[R.DANGEROUS_CALL.rule_id][0].severity == Severity.MALICIOUS


def test_array_api_compat_clones_are_their_library() -> None:
    # `sklearn.externals.array_api_compat.torch` is clone_module("torch"): a reviewed alias
    plain = RuleSet(load_shipped())
    cls = plain.classify("sklearn.externals.array_api_compat.torch", "load")
    assert cls.resolved == "torch.load" and cls.is_dangerous
    assert not plain.classify("sklearn.externals.array_api_compat.numpy", "load").is_safe


def test_undefined_name_in_an_indexed_module_is_suspicious(rules: RuleSet) -> None:
    typo = ("sklearn.linear_model._base", "LinearRegresion")
    assert RuleSet(load_shipped()).classify(*typo).is_safe  # sklearn class rule, spelled CamelCase
    cls = rules.classify(*typo)
    assert (cls.verdict_class, cls.index) == (UNKNOWN, UNDEFINED)
    found = _run(rules, b"\x80\x02" + _g(*typo) + b")\x81.")
    assert found[R.UNDEFINED_IN_INDEX.rule_id][0].severity == Severity.SUSPICIOUS
    assert rules.classify("sklearn.linear_model._base", "LinearRegression").is_safe


def test_attribute_path_through_a_module_alias_judges_the_target(rules: RuleSet) -> None:
    cls = rules.classify("torch.serialization", "os.system")
    assert cls.is_dangerous and cls.category == "process"


def test_unindexed_module_keeps_todays_treatment(rules: RuleSet) -> None:
    plain = RuleSet(load_shipped())
    for pair in [("mylab.models", "Net"), ("os", "system"), ("numpy", "dtype")]:
        a, b = plain.classify(*pair), rules.classify(*pair)
        assert (a.verdict_class, a.category, a.entry_id) == (
            b.verdict_class,
            b.category,
            b.entry_id,
        )
    assert rules.classify("mylab.models", "Net").index == ""
    assert R.UNKNOWN_GLOBAL.rule_id in _run(rules, _g("mylab.models", "Net") + b")R.")


def test_reviewed_entries_stay_first_authority() -> None:
    ix = sample()
    # an index claiming OrderedDict's __setitem__ reaches a sink does not beat its exact entry
    ix.add(
        "collections",
        "OrderedDict",
        "class",
        Reach("setitem", "filesystem_write", ("x",)),
    )
    ix.add("os", "getcwd", "builtin")  # a reviewed sink stays a sink, whatever the index says
    rules = RuleSet(load_shipped(), index=ix)
    od = rules.classify("collections", "OrderedDict")
    assert od.verdict_class == SAFE and od.pinned and od.reaches
    assert "reviewed safe entry wins" in describe(od)
    assert R.REACHES_SINK.rule_id not in _run(
        rules, b"\x80\x02" + _g("collections", "OrderedDict") + b")R(X\x01\x00\x00\x00aK\x01u."
    )
    assert rules.classify("os", "system").is_dangerous


def test_lookups_are_memoised() -> None:
    ix = sample()
    rules = RuleSet(load_shipped(), index=ix)
    for _ in range(3):
        rules.classify("gensim.models.word2vec", "Word2Vec")
    assert ix.lookups == 1


def test_index_identity_goes_into_the_versions(rules: RuleSet) -> None:
    assert rules.index_versions() == {"index_version": "fake-1", "index_hash": "f" * 64}
    assert RuleSet(load_shipped()).index_versions()["index_version"] == "none"


def test_config_index_key_is_validated(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from fastscan.rules import RuleConfigError

    bad = tmp_path / "bad.toml"
    bad.write_text("index = 3\n")
    with pytest.raises(RuleConfigError, match="'index' must be a path"):
        RuleSet.load(bad)


def test_fake_index_is_a_faithful_protocol() -> None:
    ix = FakeIndex()
    ix.add("m", "C", "class")
    assert ix.lookup("m", "C") is not None and ix.lookup("m", "D") is None
    assert ix.has_module("m") and not ix.has_module("n")


def test_psutil_popen_is_a_reviewed_process_sink() -> None:
    plain = RuleSet(load_shipped())
    for name in ("Popen", "Process.kill"):
        cls = plain.classify("psutil", name)
        assert (cls.verdict_class, cls.category) == (DANGEROUS, "process"), name


def test_alias_out_of_the_index_is_not_knowledge() -> None:
    ix = sample()
    ix.add("wrapper", "thing", "unresolved", origin="elsewhere.thing")
    cls = RuleSet(load_shipped(), index=ix).classify("wrapper", "thing")
    assert (cls.verdict_class, cls.index, cls.origin) == (UNKNOWN, "", "elsewhere.thing")
    found = _run(RuleSet(load_shipped(), index=ix), _g("wrapper", "thing") + b")R.")
    assert R.UNKNOWN_GLOBAL.rule_id in found and R.KNOWN_BY_INDEX.rule_id not in found


def test_container_hooks_are_attributed_to_the_object_filled_when_bytes_are_walked() -> None:
    from fastscan.scan import Scanner

    scanner = Scanner(model=None, rules=RuleSet(load_shipped(), index=sample()))
    dd = _g("diskdict", "DiskDict")
    # the DiskDict is built, then a plain dict literal is filled: __setitem__ never runs on it
    literal = b"\x80\x02(" + dd + b")\x81}(X\x01\x00\x00\x00aK\x01ut."
    filled = b"\x80\x02" + dd + b")\x81(X\x01\x00\x00\x00aK\x01u."
    # via copyreg._reconstructor: the class it instantiates is what SETITEMS fills
    recon = (
        _g("copy_reg", "_reconstructor")
        + b"("
        + dd
        + _g("__builtin__", "object")
        + b"NtR(S'a'\nI1\nu."
    )
    assert "FS110" not in scanner.scan_bytes(literal).rule_ids
    assert "FS110" in scanner.scan_bytes(filled).rule_ids
    assert "FS110" in scanner.scan_bytes(recon).rule_ids
    # without the bytes (evaluate on facts alone) the literal case fails closed
    assert R.REACHES_SINK.rule_id in _run(scanner.rules, literal)


def test_known_message_says_which_hooks_would_reach_a_sink(rules: RuleSet) -> None:
    found = _run(rules, b"\x80\x02" + _g(*WRAPPER) + b")\x81.")
    (known,) = found[R.KNOWN_BY_INDEX.rule_id]
    assert "only by hooks this pickle does not run (setstate; runs new)" in known.message


def test_a_corrupt_index_section_falls_back_to_the_rules() -> None:
    class Broken(FakeIndex):
        def lookup(self, module: str, qualname: str):  # type: ignore[no-untyped-def]
            raise ValueError("corrupt section")

    ix = Broken()
    ix.add("mylab", "Net", "class")
    cls = RuleSet(load_shipped(), index=ix).classify("mylab", "Net")
    assert (cls.verdict_class, cls.index) == (UNKNOWN, "")


def test_a_called_constant_is_not_vouched_for() -> None:
    ix = sample()
    ix.add("acme.settings", "HANDLER", "constant")
    rules = RuleSet(load_shipped(), index=ix)
    called = _run(rules, _g("acme.settings", "HANDLER") + b"(S'x'\ntR.")
    assert R.UNKNOWN_GLOBAL.rule_id in called and R.KNOWN_BY_INDEX.rule_id not in called
    referenced = _run(rules, b"(" + _g("acme.settings", "HANDLER") + b"l.")
    assert referenced[R.KNOWN_BY_INDEX.rule_id][0].severity == Severity.INFO

"""The novel-family experiment: withholding denylist names, and what it does to rules alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fastscan import features
from fastscan.rules import DANGEROUS, UNKNOWN, RuleSet, default_ruleset
from fastscan.train import corpus, corpus_scan, evaluate, withhold
from fastscan.train import fit as fit_mod
from fastscan.verdict import MALICIOUS, SUSPICIOUS

# -- RuleSet.withholding --------------------------------------------------------------------------


def test_withheld_name_classifies_like_an_unlisted_callable() -> None:
    full = default_ruleset()
    assert full.classify("posix", "system").verdict_class == DANGEROUS
    novel = full.withholding(full.dangerous_names([("posix", "system")]))
    unlisted = full.classify("acme_lab.tools", "run_job")
    for module, name in [("os", "system"), ("posix", "system"), ("random", "_os.system")]:
        hit = novel.classify(module, name)
        assert hit.verdict_class == UNKNOWN
        assert (hit.category, hit.entry_id, hit.reason) == (
            unlisted.category,
            unlisted.entry_id,
            unlisted.reason,
        )
        assert hit.resolved == "os.system"


def test_withholding_leaves_other_names_and_the_original_alone() -> None:
    full = default_ruleset()
    novel = full.withholding({"os.system"})
    assert novel.classify("os", "popen").verdict_class == DANGEROUS  # same module wildcard
    assert novel.classify("builtins", "eval").verdict_class == DANGEROUS
    assert novel.classify("collections", "OrderedDict").is_safe
    assert full.classify("os", "system").verdict_class == DANGEROUS  # a copy, not a mutation
    assert novel.digest() != full.digest()
    assert novel.withholding(()).digest() == novel.digest()
    assert novel.withholding({"builtins.eval"}).classify("os", "system").verdict_class == UNKNOWN


def test_dangerous_names_resolve_aliases_and_skip_safe_and_unknown() -> None:
    full = default_ruleset()
    pairs = [("posix", "system"), ("__builtin__", "eval"), ("numpy", "dtype"), ("mylab", "Net")]
    assert full.dangerous_names(pairs) == {"os.system", "builtins.eval"}
    assert isinstance(full.withholding({"x.y"}), RuleSet)


def test_withheld_call_is_suspicious_not_malicious_for_rules_alone() -> None:
    import random

    from fastscan.scan import Scanner
    from fastscan.train.payloads import PAYLOADS

    data = PAYLOADS["F:os.system"](random.Random(0)).data  # scanned, never loaded
    full = Scanner(model=None).scan_bytes(data, "x.pkl")
    assert full.verdict == MALICIOUS
    withheld = default_ruleset().withholding({"os.system"})
    novel = Scanner(model=None, rules=withheld).scan_bytes(data, "x.pkl")
    assert novel.verdict == SUSPICIOUS
    # unlisted now, and applied to a string like a function: FS112, which nothing settles
    assert "FS112" in {f.rule_id for f in novel.findings}
    assert not {"FS101", "FS102"} & {f.rule_id for f in novel.findings}


# -- the experiment on a tiny corpus ---------------------------------------------------------------

_TINY = [
    *("F:os.system", "F:subprocess.Popen", "F:builtins.eval", "F:builtins.exec", "C1"),
    *("plain_python", "numpy_npy", "sklearn_pickle", "custom_config", "custom_sklearn"),
]


@pytest.fixture(scope="module")
def tiny_scan(tmp_path_factory: pytest.TempPathFactory) -> corpus_scan.CorpusScan:
    root = tmp_path_factory.mktemp("novel")
    corpus.generate(root, seed=1, scale="small", families=_TINY)
    return corpus_scan.scan_corpus(corpus_scan.read_manifest(root))


def test_rescan_reuses_only_unaffected_rows(tiny_scan: corpus_scan.CorpusScan) -> None:
    names = withhold.dangerous_names_per_file(tiny_scan)
    withheld = frozenset({"os.system"})
    partial, rescanned = withhold.rescan_withholding(tiny_scan, names, withheld)
    holders = [i for i, n in enumerate(names) if "os.system" in n]
    assert rescanned == len(holders) > 0
    # the shortcut equals rescanning every file with the withheld rules
    job = (tuple(withheld), [str(e.path) for e in tiny_scan.entries])
    results, rows = withhold._rescan_chunk(job)
    np.testing.assert_array_equal(partial.X, rows)
    assert partial.rule_verdicts == [r.verdict for r in results]
    assert tiny_scan.rule_verdicts[holders[0]] == MALICIOUS  # the original is untouched


def test_novel_experiment_drops_rules_recall_on_the_withheld_group(
    tiny_scan: corpus_scan.CorpusScan,
) -> None:
    report = evaluate.run_experiments(tiny_scan, seed=0, test_fraction=0.3)
    novel = evaluate.run_novel(tiny_scan, report["thresholds"], seed=0, test_fraction=0.3)
    rows = novel["novel_family_out"]
    assert {"process", "exec"} <= set(rows)
    process = rows["process"]
    assert "os.system" in process["withheld"] and "subprocess.Popen" in process["withheld"]
    # known to the denylist: every process file is malicious by rules alone ...
    plain = report["leave_one_family_out"]["process"]["rules"]["recall"]
    assert plain == 1.0
    # ... withheld, rules alone still flag (FS103) but no longer call any of them malicious
    assert process["rules"]["recall_malicious"] == 0.0
    assert process["rules"]["recall_suspicious"] == 1.0
    for mode in evaluate.MODES:
        for key in ("recall_suspicious", "recall_malicious", "fpr_suspicious", "fpr_malicious"):
            assert 0.0 <= process[mode][key] <= 1.0
    table = evaluate.format_novel(novel)
    assert table.count("\n| process |") == 1 and "**mean**" in table


def test_benign_flagged_counts_custom_code(tiny_scan: corpus_scan.CorpusScan) -> None:
    counts = evaluate.benign_flagged_by_rules(tiny_scan)
    assert counts["custom"]["flagged"] == counts["custom"]["files"] > 0
    assert counts["numpy"]["flagged"] == 0


def test_cli_novel_flag(tiny_scan: corpus_scan.CorpusScan, tmp_path: Path) -> None:
    root = tiny_scan.entries[0].path.parents[2]
    while not (root / "manifest.jsonl").exists():
        root = root.parent
    out = tmp_path / "novel.json"
    assert evaluate.main([str(root), "--novel", "--json", str(out)]) == 0
    assert "novel_family_out" in out.read_text()


def test_unlisted_twins_are_malicious_rows_without_denylist_help(
    tiny_scan: corpus_scan.CorpusScan,
) -> None:
    scan = corpus_scan.CorpusScan(
        entries=tiny_scan.entries,
        X=tiny_scan.X.copy(),
        statuses=tiny_scan.statuses,
        findings=tiny_scan.findings,
        rule_verdicts=tiny_scan.rule_verdicts,
    )
    rescanned = withhold.add_unlisted_rows(scan)
    assert scan.X_unlisted is not None and rescanned > 0
    changed = (scan.X_unlisted != scan.X).any(axis=1)
    assert changed[scan.y == 1].any() and not changed[scan.y == 0].any()
    dangerous = features.FEATURE_NAMES.index("glob_dangerous")
    assert (scan.X_unlisted[changed, dangerous] == 0).all()  # every sink looks unlisted
    clf = fit_mod.fit_classifier(scan.X, scan.y, 0, scan.X_unlisted)
    assert clf.n_features_in_ == features.N_FEATURES


def test_unknown_benign_cut_keeps_target_fpr_on_settleable_benign_rows() -> None:
    y = np.array([0] * 200 + [1] * 50)
    prob = np.concatenate([np.linspace(0.0, 0.4, 200), np.full(50, 0.95)])
    judgeable = np.zeros(250, dtype=bool)
    judgeable[:200] = True
    cut = fit_mod.choose_thresholds(prob, np.zeros(250), y, 0.005, judgeable=judgeable)
    unsettled = (prob[:200] >= cut["unknown_benign"]).mean()
    assert unsettled <= 0.005 and cut["unknown_benign"] <= cut["suspicious"]
    # without settleable rows the cut stays at its floor
    floor = fit_mod.choose_thresholds(prob, np.zeros(250), y, 0.005)
    assert floor["unknown_benign"] == fit_mod.DEFAULT_UNKNOWN_BENIGN

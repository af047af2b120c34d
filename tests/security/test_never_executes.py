"""Scanning malicious files never imports, executes, spawns, connects or writes anything.

A fresh interpreter warms the scanner up on a benign file, then installs an audit hook and scans
every malicious fixture; any import, exec/compile, process, socket or file open outside the
scanned files is a failure, and no module named by a payload may appear in sys.modules.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.tokenizer.test_tokenizer_threats import CASES

PROBE = textwrap.dedent(
    """
    import json, os, pickle, sys
    from pathlib import Path
    import fastscan
    from fastscan.scan import Scanner

    fixtures = sorted(str(p) for p in Path(sys.argv[1]).iterdir())
    allowed = set(fixtures)
    scanner = Scanner(model=sys.argv[2] if sys.argv[2] != "none" else None)
    warm = Path(sys.argv[1]).parent / "warm.pkl"
    warm.write_bytes(pickle.dumps({"w": [1, 2.0, "x"]}, protocol=4))
    scanner.scan_path(str(warm))
    scanner.scan_bytes(pickle.dumps([1], protocol=0))
    before = set(sys.modules)
    events = []
    WATCH = ("import", "exec", "compile", "subprocess.Popen", "os.system", "os.exec", "os.spawn",
             "os.posix_spawn", "socket.", "urllib.Request", "ctypes.", "os.fork", "pty.spawn",
             "webbrowser.open", "shutil.", "os.remove", "os.rename", "os.mkdir")

    def hook(event, args):
        if event == "open":
            target = str(args[0])
            mode = str(args[1]) if len(args) > 1 else "r"
            if target not in allowed or any(c in mode for c in "wax+"):
                events.append(["open", target, mode])
        elif event.startswith(WATCH):
            events.append([event, repr(args)[:200]])

    sys.addaudithook(hook)
    verdicts = {}
    for path in fixtures:
        verdicts[os.path.basename(path)] = scanner.scan_path(path).verdict
    new_modules = sorted(set(sys.modules) - before)
    print(json.dumps({"events": events, "new_modules": new_modules, "verdicts": verdicts}))
    """
)


def _write_fixtures(folder: Path) -> list[str]:
    folder.mkdir()
    names = []
    for case, (data, _expected, _anomalies) in CASES.items():
        (folder / f"{case}.pkl").write_bytes(data)
        names.append(f"{case}.pkl")
    try:
        from fastscan.train.payloads import PAYLOADS
    except ImportError:  # corpus generator not installed: the hand-built rows still run
        return names
    import random

    for threat_id, build in sorted(PAYLOADS.items()):
        sample = build(random.Random(0))
        (folder / f"payload_{threat_id}.pkl").write_bytes(sample.data)
        names.append(f"payload_{threat_id}.pkl")
    return names


def test_scanning_malicious_fixtures_runs_nothing(tmp_path: Path) -> None:
    names = _write_fixtures(tmp_path / "fixtures")
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, str(tmp_path / "fixtures"), "default"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["events"] == []
    assert report["new_modules"] == []
    assert set(report["verdicts"]) == set(names)
    # payload modules a scan must never pull in
    for module in ("posix_spawn", "pty", "webbrowser", "runpy", "smtplib", "ctypes", "pydoc"):
        assert module not in report["new_modules"]

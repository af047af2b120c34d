"""bulk: process pool, crash/timeout isolation, determinism across workers, resume and since.

A fake scanner (module-level, so worker processes can import it) reacts to file names:
`crash*` exits the worker, `sigkill*` kills it, `hang*` sleeps past the alarm, `stuck*` blocks
the alarm signal first (like native code that never returns to Python), `bomb*` allocates past
the memory budget. Content containing b"evil" is reported malicious.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fastscan import bulkplan, pool, worker
from fastscan.bulk import run_bulk
from fastscan.bulkplan import BulkError
from fastscan.findings import Finding, Severity
from fastscan.report import BulkSummary
from fastscan.results import RESULT_SCHEMA, comparable
from fastscan.sources.ref import FileRef
from fastscan.verdict import FileResult


class FakeScanner:
    def __init__(self, *, label: str = "fake", delay: float = 0.0, **_: Any) -> None:
        self.label = label
        self.delay = delay
        self.ran_out: set[str] = set()

    def scan_path(self, path: str, *, ref: FileRef | None = None) -> FileResult:
        name = os.path.basename(path)
        if name.startswith("crash"):
            os._exit(3)
        if name.startswith("sigkill"):
            os.kill(os.getpid(), signal.SIGKILL)
        if name.startswith("hang"):
            time.sleep(30)
        if name.startswith("stuck"):
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
            time.sleep(30)
        if name.startswith("bomb"):
            hog = bytearray(1 << 30)  # far past the test's memory budget
            del hog
        if name.startswith("oom-once") and name not in self.ran_out:
            self.ran_out.add(name)  # like garbage left by earlier files: gone on the retry
            raise MemoryError
        if self.delay:
            time.sleep(self.delay)
        data = Path(path).read_bytes()
        result = FileResult(path=path, format=self.label, bytes_read=len(data), pickles=1)
        if "pid" in name:  # which worker process scanned it
            result.globals = [str(os.getpid())]
        if b"evil" in data:
            result.verdict = "malicious"
            result.findings = [
                Finding(
                    "FS101", Severity.MALICIOUS, "imports os.system", "data.pkl", 7, "os.system"
                )
            ]
            result.globals = ["os.system"]
        return result

    def prepare(self, ref: FileRef, buffer: Any = None) -> tuple[FileResult, int]:
        """The worker's per-file call: the row carries the ref's identity, as Scanner's does."""
        result = self.scan_path(ref.path, ref=ref)
        result.size, result.mtime, result.etag = ref.size, ref.mtime, ref.etag
        return result, result.bytes_read

    def score(
        self, results: list[FileResult], analyses: list[Any], *, with_features: bool = False
    ) -> pa.RecordBatch | None:
        kept = [(r, a) for r, a in zip(results, analyses, strict=True) if a is not None]
        if not with_features:
            return None
        return pa.RecordBatch.from_pydict(
            {"path": [r.path for r, _ in kept], "n_bytes": [a for _, a in kept]}
        )


def fake_factory(**options: Any) -> FakeScanner:
    return FakeScanner(**options)


def failing_factory(**options: Any) -> FakeScanner:
    raise RuntimeError("model file missing")


def make_mirror(root: Path, n_benign: int = 12, hostile: bool = True) -> Path:
    for org in ("org0", "org1", "org2"):
        (root / org).mkdir(parents=True, exist_ok=True)
    for i in range(n_benign):
        sub = root / f"org{i % 3}" / f"model{i % 2}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"weights{i}.{('pt', 'bin', 'pkl', 'noext')[i % 4]}").write_bytes(b"benign %d" % i)
    (root / "org0" / "evil.pkl").write_bytes(b"\x80\x04evil")
    (root / "org1" / "broken-link").symlink_to(root / "does-not-exist")
    (root / "org1" / "loop").symlink_to(root)  # not followed by default
    os.mkfifo(root / "org2" / "named-pipe")
    if hostile:
        (root / "org1" / "crash.bin").write_bytes(b"x")
        (root / "org2" / "hang.pkl").write_bytes(b"x")
    return root


def rows(path: Path | str) -> list[dict[str, Any]]:
    return pq.read_table(path).to_pylist()


def by_path(path: Path | str) -> dict[str, dict[str, Any]]:
    return {r["path"].rsplit("/", 1)[-1]: r for r in rows(path)}


@pytest.fixture
def fast_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pool, "HARD_KILL_GRACE", 1.0)


def test_hostile_mirror_is_scanned_same_for_any_worker_count(tmp_path: Path, fast_grace: None):
    mirror = make_mirror(tmp_path / "mirror")
    (mirror / "org0" / "stuck.ckpt").write_bytes(b"x")
    (mirror / "org2" / "sigkill.pt").write_bytes(b"x")
    outs = []
    for workers in (1, 2, 3):
        out = tmp_path / f"w{workers}.parquet"
        summary = run_bulk(
            str(mirror),
            out=str(out),
            workers=workers,
            chunk_size=3,
            timeout=1.0,
            scanner_factory=fake_factory,
            progress=False,
        )
        outs.append(out)
        assert summary.rows == summary.discovered == 19
        assert summary.crashed == 3  # crash, sigkill, stuck
        assert summary.exit_code == 1  # evil.pkl is malicious
    first = pq.read_table(outs[0])
    assert first.column("path").to_pylist() == sorted(first.column("path").to_pylist())
    for other in outs[1:]:
        assert comparable(first).equals(comparable(pq.read_table(other))), other

    got = by_path(outs[0])
    assert got["crash.bin"]["status"] == "error"
    assert got["crash.bin"]["error"] == pool.CRASH_ERROR
    assert got["sigkill.pt"]["error"] == pool.CRASH_ERROR
    assert got["hang.pkl"]["error"] == worker.TIMEOUT_ERROR.format(1.0)
    assert got["stuck.ckpt"]["error"].endswith("(worker killed)")
    for name in ("crash.bin", "sigkill.pt", "hang.pkl", "stuck.ckpt"):
        assert got[name]["verdict"] == "suspicious", name
    assert got["broken-link"]["error"].startswith("broken symlink")
    assert got["named-pipe"]["error"] == "not a regular file: fifo"
    for name in ("broken-link", "named-pipe"):  # never clean: suspicious, FS316, any --workers
        assert (got[name]["verdict"], got[name]["rule_ids"]) == ("suspicious", ["FS316"]), name
    assert got["evil.pkl"]["verdict"] == "malicious"
    assert got["evil.pkl"]["findings"][0]["subject"] == "os.system"
    assert "loop" not in got
    benign = [r for n, r in got.items() if n.startswith("weights")]
    assert len(benign) == 12
    assert all(r["status"] == "complete" and r["verdict"] == "clean" for r in benign)


def test_in_process_matches_pool(tmp_path: Path):
    mirror = make_mirror(tmp_path / "mirror", hostile=False)
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    for out, workers in ((a, 0), (b, 2)):
        run_bulk(
            str(mirror), out=str(out), workers=workers, scanner_factory=fake_factory, progress=False
        )
    assert comparable(pq.read_table(a)).equals(comparable(pq.read_table(b)))


def test_memory_budget_is_a_named_finding_and_the_worker_is_replaced(tmp_path: Path):
    mirror = tmp_path / "m"
    mirror.mkdir()
    for name in ("a-pid.pkl", "bomb.pkl", "ok.pkl", "z-pid.pkl"):
        (mirror / name).write_bytes(b"fine")
    out = tmp_path / "out.parquet"
    summary = run_bulk(
        str(mirror),
        out=str(out),
        workers=1,
        chunk_size=1,
        memory_mb=256,
        scanner_factory=fake_factory,
        progress=False,
    )
    got = by_path(out)
    bomb = got["bomb.pkl"]
    assert (bomb["status"], bomb["verdict"]) == ("partial", "suspicious")
    assert bomb["rule_ids"] == ["FS306"] and bomb["findings"][0]["subject"] == "memory"
    assert bomb["error"] == worker.MEMORY_ERROR.format(256)
    assert got["ok.pkl"]["status"] == "complete"
    assert summary.errors == 0
    # the files after the MemoryError ran in a fresh worker
    assert got["a-pid.pkl"]["globals"] != got["z-pid.pkl"]["globals"]


def test_a_file_that_ran_out_once_is_retried_and_its_worker_replaced(tmp_path: Path):
    mirror = tmp_path / "m"
    mirror.mkdir()
    for name in ("a-pid.pkl", "oom-once.pkl", "z-pid.pkl"):
        (mirror / name).write_bytes(b"fine")
    out = tmp_path / "out.parquet"
    run_bulk(
        str(mirror), out=str(out), workers=1, chunk_size=1, scanner_factory=fake_factory,
        progress=False,
    )  # fmt: skip
    got = by_path(out)
    assert (got["oom-once.pkl"]["status"], got["oom-once.pkl"]["verdict"]) == ("complete", "clean")
    assert got["a-pid.pkl"]["globals"] != got["z-pid.pkl"]["globals"]


def test_recycling_workers_does_not_change_rows(tmp_path: Path):
    mirror = make_mirror(tmp_path / "mirror", hostile=False)
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    for out, recycle in ((a, 0), (b, 1)):  # 1 MB: every worker retires after its first chunk
        run_bulk(
            str(mirror), out=str(out), workers=2, chunk_size=3, recycle_rss_mb=recycle,
            scanner_factory=fake_factory, progress=False,
        )  # fmt: skip
    assert comparable(pq.read_table(a)).equals(comparable(pq.read_table(b)))


def test_scanner_that_cannot_be_built_is_an_operational_error(tmp_path: Path):
    mirror = make_mirror(tmp_path / "m", n_benign=2, hostile=False)
    out = tmp_path / "out.parquet"
    with pytest.raises(BulkError, match="keeps failing"):
        run_bulk(
            str(mirror), out=str(out), workers=1, scanner_factory=failing_factory, progress=False
        )
    assert not out.exists()
    assert not list(tmp_path.glob(".fastscan-spool-*"))


def test_since_skips_unchanged_and_carries_rows(tmp_path: Path):
    mirror = make_mirror(tmp_path / "m", hostile=False)
    first = tmp_path / "first.parquet"
    s1 = run_bulk(
        str(mirror),
        out=str(first),
        workers=0,
        scanner_factory=fake_factory,
        scanner_options={"label": "run1"},
        progress=False,
    )
    changed = next(mirror.rglob("weights3.*"))
    changed.write_bytes(b"benign but longer now")
    (mirror / "org0" / "new.pt").write_bytes(b"new")
    second = tmp_path / "second.parquet"
    s2 = run_bulk(
        str(mirror),
        out=str(second),
        workers=0,
        since=str(first),
        scanner_factory=fake_factory,
        scanner_options={"label": "run2"},
        progress=False,
    )
    got = by_path(second)
    # Errors are always retried; the changed and the new file are rescanned.
    errors = s1.errors
    assert s2.skipped == s1.rows - errors - 1
    assert s2.scanned == errors + 2
    assert s2.rows == s1.rows + 1
    assert got[changed.name]["format"] == "run2"
    assert got["new.pt"]["format"] == "run2"
    assert got["evil.pkl"]["format"] == "run1"
    assert got["evil.pkl"]["findings"] == by_path(first)["evil.pkl"]["findings"]


def test_features_out_is_sorted_by_path(tmp_path: Path):
    mirror = make_mirror(tmp_path / "m", hostile=False)
    out, feats = tmp_path / "out.parquet", tmp_path / "features.parquet"
    run_bulk(
        str(mirror),
        out=str(out),
        workers=2,
        chunk_size=2,
        features_out=str(feats),
        scanner_factory=fake_factory,
        progress=False,
    )
    table = pq.read_table(feats)
    paths = table.column("path").to_pylist()
    assert paths == sorted(paths)
    assert len(paths) == 13  # benign + evil; error refs have no features


@pytest.mark.parametrize("fmt", ["jsonl", "sarif", "console"])
def test_text_formats(tmp_path: Path, fmt: str):
    mirror = make_mirror(tmp_path / "m", n_benign=3, hostile=False)
    out = tmp_path / f"out.{fmt}"
    run_bulk(
        str(mirror), out=str(out), fmt=fmt, workers=0, scanner_factory=fake_factory, progress=False
    )
    text = out.read_text()
    assert "evil.pkl" in text
    if fmt == "jsonl":
        assert len(text.splitlines()) == 6


def test_resume_validation():
    with pytest.raises(ValueError, match="resume"):
        run_bulk(".", out="x.jsonl", fmt="jsonl", resume=True)
    with pytest.raises(ValueError, match="fail_on"):
        run_bulk(".", out="x.parquet", fail_on="bad")
    with pytest.raises(ValueError, match="engine must be"):
        run_bulk(".", out="x.parquet", engine="spark")
    with pytest.raises(ValueError, match="Parquet only"):
        run_bulk(".", out="x.jsonl", engine="dask")
    with pytest.raises(ValueError, match="default scanner"):
        run_bulk(".", out="x.parquet", engine="dask", scanner_factory=fake_factory)
    with pytest.raises(TypeError, match="chunksize"):
        run_bulk(".", out="x.parquet", chunksize=3)  # a typo is an error, not a default


def test_cli_bulk_defaults_are_the_options_defaults():
    from fastscan.bulkoptions import BulkOptions, option_default
    from fastscan.cli import _build_parser

    parser = _build_parser()
    args = parser.parse_args(["bulk", ".", "--out", "x.parquet"])
    names = ("workers", "chunk_size", "timeout", "memory_mb", "engine", "fail_on")
    assert {n: getattr(args, n) for n in names} == {n: option_default(n) for n in names}
    assert (option_default("timeout"), option_default("memory_mb")) == (120.0, 4096)
    bulk_parser = parser._subparsers._group_actions[0].choices["bulk"]  # type: ignore[union-attr]
    text = " ".join(bulk_parser.format_help().split())
    assert "seconds per file (default: 120.0)" in text
    assert "allocation budget per worker (default: 4096)" in text
    options = BulkOptions(".", "x.parquet", include=["*.pt"])
    assert options.include == ("*.pt",) and options.chunk_size == 64
    with pytest.raises(AttributeError):
        options.timeout = 1.0  # type: ignore[misc]


RUNNER = textwrap.dedent(
    """
    import sys
    sys.path[:0] = {paths!r}
    from test_bulk import fake_factory
    from fastscan.bulk import run_bulk

    class Ticker:
        def update(self, files, nbytes, flagged, errors):
            print("tick", files, flush=True)

        def close(self):
            pass

    if __name__ == "__main__":
        options = {{"label": "first", "delay": 0.05}}
        s = run_bulk({root!r}, out={out!r}, workers=1, chunk_size=2, progress=Ticker(),
                     scanner_factory=fake_factory, scanner_options=options)
        print("interrupted", s.interrupted, s.rows, flush=True)
        sys.exit(s.exit_code)
    """
)


def test_sigterm_leaves_valid_parquet_and_resume_completes_it(tmp_path: Path):
    mirror = tmp_path / "m"
    mirror.mkdir()
    for i in range(80):
        (mirror / f"f{i:03d}.pkl").write_bytes(b"data %d" % i)
    out = tmp_path / "out.parquet"
    script = tmp_path / "runner.py"
    paths = [str(Path(__file__).parent), str(Path(__file__).resolve().parents[2])]
    script.write_text(RUNNER.format(paths=paths, root=str(mirror), out=str(out)))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    # Interrupt once a few chunks are done (the run needs 40 chunks of ~0.1 s).
    for _ in range(3):
        assert proc.stdout.readline().startswith("tick")
    proc.send_signal(signal.SIGTERM)
    stdout, _ = proc.communicate(timeout=30)
    assert proc.returncode == 2, stdout
    assert "interrupted SIGTERM" in stdout

    partial = pq.ParquetFile(out)  # readable: the footer was written
    assert partial.schema_arrow.metadata[b"fastscan.complete"] == b"false"
    done = partial.read().column("path").to_pylist()
    assert 0 < len(done) < 80
    assert done == sorted(done)

    summary = run_bulk(
        str(mirror),
        out=str(out),
        workers=1,
        resume=True,
        scanner_factory=fake_factory,
        scanner_options={"label": "second"},
        progress=False,
    )
    assert summary.resumed == len(done)
    assert summary.scanned == 80 - len(done)
    final = pq.ParquetFile(out)
    assert final.schema_arrow.metadata[b"fastscan.complete"] == b"true"
    table = final.read()
    assert table.num_rows == 80
    labels = dict(
        zip(table.column("path").to_pylist(), table.column("format").to_pylist(), strict=True)
    )
    assert all(labels[p] == "first" for p in done)
    assert sum(v == "second" for v in labels.values()) == 80 - len(done)
    assert table.schema.remove_metadata().equals(RESULT_SCHEMA)


def test_summary_exit_codes():
    # the rule itself is tested in tests/test_exitcodes.py; the summary only feeds it
    assert BulkSummary(outcomes={("clean", "complete"): 3}).exit_code == 0
    flagged = {("clean", "complete"): 3, ("suspicious", "partial"): 1}
    assert BulkSummary(outcomes=flagged).exit_code == 1
    assert BulkSummary(outcomes=flagged, fail_on="malicious").exit_code == 0
    errored = {("clean", "complete"): 3, ("suspicious", "error"): 1}
    assert BulkSummary(outcomes=errored).exit_code == 2
    assert BulkSummary(outcomes={**flagged, **errored}).exit_code == 1
    assert BulkSummary(outcomes={**flagged, **errored}, strict_errors=True).exit_code == 2
    assert BulkSummary(outcomes=errored).errors == 1
    assert BulkSummary(outcomes=errored).by_verdict == {"clean": 3, "suspicious": 1}
    assert BulkSummary(interrupted="SIGINT").exit_code == 130
    assert BulkSummary(interrupted="SIGTERM").exit_code == 2
    text = BulkSummary(discovered=5, scanned=5, seconds=1.0, interrupted="SIGTERM").render()
    assert "5.0 files/s" in text and "--resume" in text


def test_workers_env(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("FASTSCAN_WORKERS", "3")
    assert bulkplan.resolve_workers(None) == 3
    monkeypatch.setenv("FASTSCAN_WORKERS", "many")
    with pytest.raises(ValueError, match="FASTSCAN_WORKERS"):
        bulkplan.resolve_workers(None)
    assert bulkplan.resolve_workers(0) == 0


def test_chunks_close_on_count_and_bytes():
    refs = [FileRef(f"f{i}", 100, 0.0) for i in range(10)]
    assert [len(c) for c in bulkplan.make_chunks(refs, 4, 10_000)] == [4, 4, 2]
    assert [len(c) for c in bulkplan.make_chunks(refs, 100, 250)] == [3, 3, 3, 1]


# --- the real scanner -------------------------------------------------------------------------


def _hostile_pickle(protocol_prefix: bytes = b"\x80\x02") -> bytes:
    """GLOBAL os.system + REDUCE with a harmless argument; assembled by hand, never loaded."""
    arg = b"echo fastscan-test"
    return protocol_prefix + b"cos\nsystem\n(X" + len(arg).to_bytes(4, "little") + arg + b"tR."


def make_real_mirror(root: Path) -> dict[str, str]:
    """Benign files from real libraries and hand-made hostile ones; name -> expected verdict."""
    import io
    import pickle
    import zipfile

    import numpy as np

    expected = {}
    (root / "hub" / "org" / "bert").mkdir(parents=True)
    (root / "hub" / "org" / "gpt").mkdir(parents=True)
    for i in range(4):
        path = root / "hub" / "org" / "bert" / f"vocab{i}.pkl"
        path.write_bytes(
            pickle.dumps({"tokens": [f"t{j}" for j in range(50)], "i": i}, protocol=i + 2)
        )
        expected[path.name] = "clean"
    np.save(root / "hub" / "org" / "gpt" / "weights.npy", np.arange(100, dtype=np.float32))
    expected["weights.npy"] = "clean"
    evil = root / "hub" / "org" / "gpt" / "evil.pkl"
    evil.write_bytes(_hostile_pickle())
    expected[evil.name] = "malicious"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("archive/data.pkl", _hostile_pickle())
        zf.writestr("archive/version", "3\n")
    renamed = root / "hub" / "org" / "bert" / "config.json"  # extension lies: it is a torch zip
    renamed.write_bytes(buf.getvalue())
    expected[renamed.name] = "malicious"
    return expected


def test_real_scanner_pipeline_same_for_any_worker_count(tmp_path: Path):
    pytest.importorskip("fastscan.scan")
    expected = make_real_mirror(tmp_path / "mirror")
    outs = []
    for workers in (1, 2):
        out = tmp_path / f"real{workers}.parquet"
        summary = run_bulk(str(tmp_path / "mirror"), out=str(out), workers=workers, progress=False)
        assert summary.rows == len(expected)
        assert summary.exit_code == 1
        outs.append(out)
    got = by_path(outs[0])
    for name, verdict in expected.items():
        assert got[name]["verdict"] == verdict, (name, got[name])
    assert "os.system" in got["evil.pkl"]["globals"]
    assert comparable(pq.read_table(outs[0])).equals(comparable(pq.read_table(outs[1])))

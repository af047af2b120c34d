"""Bulk throughput: fastscan against picklescan, modelscan and fickling on one generated mirror.

Run by hand, not in CI:

    benchmarks/setup_peers.sh                 # once: peers in benchmarks/.peers
    python benchmarks/bench_bulk.py --profile hub --files 3000 --large-mb 512 --large-count 2
    python benchmarks/bench_bulk.py --profile small --files 6000 --large-mb 512 --large-count 2

Two mirrors: `hub` (benchmarks/hub_mirror.py: checkpoints with realistic tensor counts, optimizer
state, vocabularies, forests: what model hubs hold) and `small` (toy files of 1-6 tensors, where
every scanner's fixed per-file cost dominates). Both get the large checkpoints.

Prints files/s, MB/s, CPU seconds, peak RSS (whole process tree, and the largest single process:
a worker's bound) for fastscan with 1 to all
cores (median of --repeat runs each) and for each peer (one run), then fastscan -j1's ratio to
the fastest peer. Peers that are not installed are skipped.
fastscan runs as users run it (`python -P -m fastscan bulk ... --no-progress`); every tool runs with
Python's default bytecode cache (PYTHONDONTWRITEBYTECODE dropped) after one untimed fastscan
warm-up, as the peers' pip-installed packages already have theirs.
Malicious samples carry a harmless `echo` payload and are never loaded by anything here.
"""

from __future__ import annotations

import argparse
import io
import os
import pickle
import random
import struct
import subprocess
import sys
import tempfile
import textwrap
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent


# --- mirror -----------------------------------------------------------------------------------


def _malicious_pickle(payload: str = "echo fastscan-bench") -> bytes:
    """GLOBAL os.system + REDUCE, assembled by hand (protocol 2). Never unpickled here."""
    arg = payload.encode()
    return (
        b"\x80\x02cos\nsystem\nq\x00X"
        + struct.pack("<I", len(arg))
        + arg
        + b"q\x01\x85q\x02Rq\x03."
    )


def _torch_zip_with(pickle_bytes: bytes, name: str = "archive") -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(f"{name}/data.pkl", pickle_bytes)
        zf.writestr(f"{name}/version", "3\n")
    return buf.getvalue()


def build_mirror(root: Path, files: int, large_mb: int, large_count: int, seed: int = 0) -> None:
    import numpy as np

    try:
        import torch
    except ImportError:  # the mirror still has every other format
        torch = None
    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)
    for i in range(files):
        folder = root / f"org{i % 37}" / f"model{i % 11}"
        folder.mkdir(parents=True, exist_ok=True)
        kind = i % 10
        if kind in (0, 1) and torch is not None:
            width = rng.choice([8, 32, 128])
            state = {
                f"layer{j}.weight": torch.randn(width, width) for j in range(rng.randint(1, 6))
            }
            legacy = kind == 1
            torch.save(
                state,
                folder / f"pytorch_model_{i}.{'bin' if legacy else 'pt'}",
                _use_new_zipfile_serialization=not legacy,
            )
        elif kind == 2:
            np.save(folder / f"arr{i}.npy", nrng.standard_normal(rng.randint(10, 5000)))
        elif kind == 3:
            np.savez(folder / f"arrs{i}.npz", a=nrng.standard_normal(100), b=np.arange(50))
        elif kind == 4:
            obj = {"vocab": {f"tok{j}": j for j in range(rng.randint(10, 2000))}, "cfg": [1, 2.5]}
            (folder / f"tokenizer{i}.pkl").write_bytes(pickle.dumps(obj, protocol=i % 6))
        elif kind == 5:
            import joblib

            joblib.dump(
                {"w": nrng.standard_normal(500)}, folder / f"model{i}.joblib", compress=i % 4
            )
        elif kind == 6:
            (folder / f"config{i}.json").write_text('{"hidden": 128}')
        elif kind == 7 and i % 70 == 7:
            (folder / f"evil{i}.pkl").write_bytes(_malicious_pickle())
        elif kind == 8 and i % 80 == 8:
            (folder / f"evil_zip{i}.pt").write_bytes(_torch_zip_with(_malicious_pickle()))
        else:
            (folder / f"notes{i}.txt").write_bytes(os.urandom(rng.randint(100, 20000)))
    big = root / "big"
    big.mkdir(parents=True, exist_ok=True)
    for k in range(large_count):
        path = big / f"checkpoint{k}.pt"
        if torch is not None:
            n = large_mb * (1 << 20) // 4 // 1024
            torch.save(
                {f"block{j}": torch.zeros(1024, 1024) for j in range(max(1, n // 1024))}, path
            )
        else:
            np.save(path.with_suffix(".npy"), np.zeros(large_mb * (1 << 20) // 8))


def mirror_stats(root: Path) -> tuple[int, int]:
    n = size = 0
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            n += 1
            size += os.path.getsize(os.path.join(dirpath, name))
    return n, size


# --- measuring a process tree -------------------------------------------------------------------


@dataclass
class Measure:
    tool: str
    seconds: float
    cpu_seconds: float
    peak_rss_mb: float
    returncode: int
    note: str = ""
    process_rss_mb: float = 0.0  # the largest peak of any one process (a worker's bound)


def measure(
    tool: str, argv: list[str], env: dict[str, str] | None = None, timeout: float = 0.0
) -> Measure:
    """Run argv, sampling the whole process tree for CPU time and resident memory.

    With `timeout` > 0 the tree is killed after that many seconds and the row says so: its
    files/s is then an upper bound (the tool had not finished).
    """
    import signal

    import psutil

    start = time.perf_counter()
    with tempfile.TemporaryFile() as err_file:  # a pipe could fill up and stall a chatty tool
        proc = subprocess.Popen(
            argv, env=env, stdout=subprocess.DEVNULL, stderr=err_file, start_new_session=True
        )
        root = psutil.Process(proc.pid)
        cpu_by_pid: dict[int, float] = {}
        peak = 0
        process_peak = 0
        timed_out = False
        while proc.poll() is None:
            if timeout and time.perf_counter() - start > timeout:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                timed_out = True
                break
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                break
            rss = 0
            for p in procs:
                try:
                    t = p.cpu_times()
                    # own time only: every descendant is sampled itself (children_* would count
                    # a forkserver's finished workers twice)
                    cpu_by_pid[p.pid] = t.user + t.system
                    one = p.memory_info().rss
                    rss += one
                    process_peak = max(process_peak, one)
                except psutil.NoSuchProcess:
                    continue
            peak = max(peak, rss)
            time.sleep(0.05)
        proc.wait()
        seconds = time.perf_counter() - start
        err_file.seek(0)
        lines = err_file.read().decode(errors="replace").strip().splitlines()
    note = lines[-1][:120] if proc.returncode > 1 and lines else ""
    if timed_out:
        note = f"killed after {timeout:.0f} s: not finished, files/s is an upper bound"
    return Measure(
        tool,
        seconds,
        sum(cpu_by_pid.values()),
        peak / 2**20,
        proc.returncode,
        note,
        process_peak / 2**20,
    )


FICKLING_DRIVER = textwrap.dedent(
    """
    import os, sys
    import fickling
    flagged = 0
    for dirpath, _dirs, names in os.walk(sys.argv[1]):
        for name in names:
            try:
                if not fickling.is_likely_safe(os.path.join(dirpath, name)):
                    flagged += 1
            except Exception:
                pass
    sys.exit(1 if flagged else 0)
    """
)


def peer_commands(root: str, venv: Path, tmp: Path) -> dict[str, list[str]]:
    bin_dir = venv / "bin"
    cmds: dict[str, list[str]] = {}
    if (bin_dir / "picklescan").exists():
        cmds["picklescan"] = [str(bin_dir / "picklescan"), "--path", root]
    if (bin_dir / "modelscan").exists():
        cmds["modelscan"] = [str(bin_dir / "modelscan"), "scan", "-p", root]
    if (bin_dir / "fickling").exists():
        driver = tmp / "fickling_driver.py"
        driver.write_text(FICKLING_DRIVER)
        cmds["fickling"] = [str(bin_dir / "python"), str(driver), root]
    return cmds


def median_run(tool: str, argv: list[str], env: dict[str, str], repeat: int) -> Measure:
    runs = sorted((measure(tool, argv, env=env) for _ in range(max(1, repeat))),
                  key=lambda m: m.seconds)  # fmt: skip
    return runs[len(runs) // 2]


def row(m: Measure, files: int, nbytes: int) -> str:
    fps = files / m.seconds if m.seconds else 0.0
    mbs = nbytes / 1e6 / m.seconds if m.seconds else 0.0
    return (
        f"{m.tool:<22} {m.seconds:>8.2f} {fps:>9.1f} {mbs:>8.1f} {m.cpu_seconds:>8.1f} "
        f"{m.peak_rss_mb:>9.0f} {m.process_rss_mb:>9.0f} {m.returncode:>4}  {m.note}"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", choices=("hub", "small"), default="hub")
    ap.add_argument("--files", type=int, default=3000)
    ap.add_argument("--large-mb", type=int, default=256)
    ap.add_argument("--large-count", type=int, default=2)
    ap.add_argument("--mirror", type=Path, help="reuse (or build once into) this directory")
    ap.add_argument("--peers-venv", type=Path, default=HERE / ".peers")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument(
        "--peer-timeout", type=float, default=900.0, help="kill a peer after this many seconds"
    )
    ap.add_argument("--repeat", type=int, default=3, help="fastscan runs per row (median)")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="fastscan-bench-") as tmpdir:
        tmp = Path(tmpdir)
        mirror = args.mirror or tmp / "mirror"
        if not mirror.exists() or not any(mirror.iterdir()):
            t = time.perf_counter()
            if args.profile == "hub":
                sys.path.insert(0, str(HERE))  # a sibling script, also under `python -P`
                from hub_mirror import build_hub_mirror

                build_hub_mirror(mirror, args.files)
                build_mirror(mirror / "large", 0, args.large_mb, args.large_count)
            else:
                build_mirror(mirror, args.files, args.large_mb, args.large_count)
            print(f"built mirror in {time.perf_counter() - t:.1f} s", file=sys.stderr)
        files, nbytes = mirror_stats(mirror)
        print(f"mirror: {mirror} ({files} files, {nbytes / 1e6:.1f} MB)")
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}

        def fastscan_cmd(workers: int) -> list[str]:
            out = str(tmp / "out.parquet")
            return [sys.executable, "-P", "-m", "fastscan", "bulk", str(mirror), "--workers",
                    str(workers), "--out", out, "--no-progress"]  # fmt: skip

        warm = [*fastscan_cmd(1), "--include", "*.json"]  # compiles the bytecode cache
        subprocess.run(warm, check=False, env=env, capture_output=True)
        header = ("tool", "seconds", "files/s", "MB/s", "CPU s", "RSS MB", "max proc", "rc")
        widths = (-22, 8, 9, 8, 8, 9, 9, 4)
        print(
            " ".join(
                f"{h:<{-w}}" if w < 0 else f"{h:>{w}}" for h, w in zip(header, widths, strict=True)
            )
        )
        # fastscan first, 1..N workers back to back, each the median of --repeat runs (a run
        # takes seconds, so one unlucky scheduling moment would move it by 10%); the peers run
        # once each (they take minutes).
        runs = {w: median_run(f"fastscan -j{w}", fastscan_cmd(w), env, args.repeat)
                for w in range(1, args.workers + 1)}  # fmt: skip
        for m in runs.values():
            speed_up = runs[1].seconds / m.seconds
            print(row(m, files, nbytes) + f" speed-up {speed_up:.2f}x vs -j1", flush=True)
        best_peer = 0.0
        cmds = peer_commands(str(mirror), args.peers_venv, tmp)
        for name in ("picklescan", "modelscan", "fickling"):
            if name not in cmds:
                print(f"{name:<22} skipped (not installed; run benchmarks/setup_peers.sh)")
                continue
            m = measure(name, cmds[name], env=env, timeout=args.peer_timeout)
            print(row(m, files, nbytes), flush=True)
            best_peer = max(best_peer, files / m.seconds)
        if best_peer:
            print(f"\nfastscan -j1 is {files / runs[1].seconds / best_peer:.1f}x the fastest peer")
    return 0


if __name__ == "__main__":
    sys.exit(main())

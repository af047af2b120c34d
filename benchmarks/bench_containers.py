"""Bytes actually read per file on large torch checkpoints, and files/s on mixed formats.

    python benchmarks/bench_containers.py [--gib 1] [--files 400]

Writes real `torch.save` checkpoints (zip and legacy) of the given size, scans them and prints
`bytes_read` against the file size; then scans a generated small corpus (every container kind)
in one process and prints files/s. torch is needed only to write the files.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from fastscan.scan import Scanner


def write_checkpoints(folder: Path, gib: float) -> list[Path]:
    import torch

    n = int(gib * (1 << 30) / 4 / 8)  # eight float32 tensors
    state = {f"layer{i}.weight": torch.zeros(n, dtype=torch.float32) for i in range(8)}
    zipped = folder / "big_zip.pt"
    torch.save(state, zipped)
    legacy = folder / "big_legacy.pt"
    torch.save(state, legacy, _use_new_zipfile_serialization=False)
    return [zipped, legacy]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gib", type=float, default=1.0, help="size of each checkpoint")
    parser.add_argument("--scale", default="small", help="corpus scale for the mixed-format run")
    args = parser.parse_args()
    scanner = Scanner()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        header = f"{'checkpoint':<16}{'size MB':>10}{'read KB':>10}{'read %':>10}{'seconds':>10}"
        print(header + "  verdict")
        for path in write_checkpoints(folder, args.gib):
            t0 = time.perf_counter()
            result = scanner.scan_path(str(path))
            seconds = time.perf_counter() - t0
            size = path.stat().st_size
            print(
                f"{path.name:<16}{size / 1e6:>10.0f}{result.bytes_read / 1e3:>10.0f}"
                f"{100 * result.bytes_read / size:>9.3f}%{seconds:>10.3f}  {result.verdict}"
            )
            path.unlink()

        from fastscan.train.corpus import generate

        manifest = generate(folder / "corpus", seed=0, scale=args.scale)
        files = sorted(str(p) for p in manifest.parent.rglob("*") if p.is_file() and p != manifest)
        scanner.scan_refs(files[:20])  # warm-up: rules, ONNX session
        t0 = time.perf_counter()
        cpu0 = time.process_time()
        for i in range(0, len(files), 64):
            scanner.scan_refs(files[i : i + 64])
        wall = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
        print(
            f"\nmixed formats: {len(files)} files in {wall:.2f} s, one process: "
            f"{len(files) / wall:.0f} files/s, {1000 * cpu / len(files):.2f} ms CPU per file"
        )


if __name__ == "__main__":
    main()

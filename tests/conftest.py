"""Shared fixtures. Servers started here listen on 127.0.0.1 only and are stopped in `finally`."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

# Dummy credentials; the metadata switch stops SDKs from probing the instance-metadata address.
DUMMY_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": "/dev/null",
    "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    # Safety net: an S3 call that names no endpoint goes to a closed loopback port, never to AWS.
    "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
    "AWS_MAX_ATTEMPTS": "1",
}
# Set before any worker pool or forkserver starts, so every child inherits them; no test can
# then reach a real account, whatever the developer's shell holds.
os.environ.update(DUMMY_AWS_ENV)


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A moto S3 server on 127.0.0.1 (random port); env points SDKs and fastscan at it."""
    pytest.importorskip("s3fs")
    server_mod = pytest.importorskip("moto.server")
    saved = os.environ.get("FASTSCAN_S3_ENDPOINT")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one log line per request otherwise
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        assert host == "127.0.0.1"
        endpoint = f"http://{host}:{port}"
        os.environ["FASTSCAN_S3_ENDPOINT"] = endpoint
        yield endpoint
    finally:
        server.stop()
        if saved is None:
            os.environ.pop("FASTSCAN_S3_ENDPOINT", None)
        else:
            os.environ["FASTSCAN_S3_ENDPOINT"] = saved


def _free_wait(path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.stat().st_size > 0:
            return
        time.sleep(0.05)
    raise TimeoutError(f"{path} did not appear within {timeout}s")


@pytest.fixture(scope="session")
def dask_scheduler() -> Iterator[str]:
    """A real `dask scheduler` + `dask worker --nworkers 2` (nannies) on 127.0.0.1.

    Every listener, dashboards included, is pinned to 127.0.0.1 with a random port (the
    defaults bind 0.0.0.0). Both run in their own session and are killed as a group.
    """
    pytest.importorskip("distributed")
    work = Path(tempfile.mkdtemp(prefix="fastscan-dask-"))
    scheduler_file = work / "scheduler.json"
    env = {**os.environ, **DUMMY_AWS_ENV, "DASK_DISTRIBUTED__LOGGING__DISTRIBUTED": "error"}
    env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(__file__).resolve().parents[1]), env.get("PYTHONPATH", "")]
    )
    procs: list[subprocess.Popen[bytes]] = []
    log = open(work / "dask.log", "wb")  # noqa: SIM115 - closed in finally
    try:
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "distributed.cli.dask_scheduler",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    "0",
                    "--dashboard-address",
                    "127.0.0.1:0",
                    "--scheduler-file",
                    str(scheduler_file),
                ],
                env=env,
                cwd=work,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        )
        _free_wait(scheduler_file, 30)
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "distributed.cli.dask_worker",
                    "--scheduler-file",
                    str(scheduler_file),
                    "--host",
                    "127.0.0.1",
                    "--dashboard-address",
                    "127.0.0.1:0",
                    "--nworkers",
                    "2",
                    "--nthreads",
                    "1",
                    "--memory-limit",
                    "2GiB",
                    "--local-directory",
                    str(work),
                ],
                env=env,
                cwd=work,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        )
        import json

        address = json.loads(scheduler_file.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:")
        from distributed import Client

        with Client(address, timeout="30s") as client:
            client.wait_for_workers(2, timeout=60)
        yield address
    finally:
        for proc in reversed(procs):
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
        for proc in reversed(procs):
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        log.close()

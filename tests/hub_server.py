"""A tiny stand-in for the Hugging Face Hub HTTP API, on 127.0.0.1, for one model repository.

It answers what `huggingface_hub.HfFileSystem` asks while listing and reading a repository:
repository info at a revision, the recursive tree listing, paths-info, and `resolve` downloads
with HEAD and byte ranges. Every request is recorded (method, path, Range, Authorization), so a
test can check which bytes were transferred and that the token was sent.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@dataclass
class HubRepo:
    repo_id: str
    files: dict[str, bytes]
    commit: str = COMMIT
    branches: tuple[str, ...] = ("main",)
    token: str | None = None  # when set, requests without this bearer token get 401
    requests: list[dict[str, Any]] = field(default_factory=list)

    def revision_ok(self, rev: str) -> bool:
        return rev in self.branches or rev == self.commit

    def entry(self, path: str) -> dict[str, Any]:
        data = self.files[path]
        sha = hashlib.sha256(data).hexdigest()
        return {
            "type": "file",
            "path": path,
            "size": len(data),
            "oid": hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest(),
            "lfs": {"oid": sha, "size": len(data), "pointerSize": 134},
        }

    def tree(self, prefix: str, recursive: bool) -> list[dict[str, Any]]:
        prefix = prefix.strip("/")
        out: dict[str, dict[str, Any]] = {}
        for path in sorted(self.files):
            if prefix and not path.startswith(prefix + "/"):
                continue
            rest = path[len(prefix) + 1 :] if prefix else path
            if "/" in rest and not recursive:
                sub = (prefix + "/" if prefix else "") + rest.split("/", 1)[0]
                out[sub] = {"type": "directory", "path": sub, "oid": "0" * 40, "size": 0}
                continue
            if recursive:
                parts = rest.split("/")[:-1]
                for i in range(len(parts)):
                    sub = (prefix + "/" if prefix else "") + "/".join(parts[: i + 1])
                    out[sub] = {"type": "directory", "path": sub, "oid": "0" * 40, "size": 0}
            out[path] = self.entry(path)
        return list(out.values())


class _Handler(BaseHTTPRequestHandler):
    repo: HubRepo

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        return

    def _record(self) -> None:
        self.repo.requests.append(
            {
                "method": self.command,
                "path": self.path,
                "range": self.headers.get("Range"),
                "auth": self.headers.get("Authorization"),
            }
        )

    def _authorised(self) -> bool:
        if self.repo.token is None:
            return True
        if self.headers.get("Authorization") == f"Bearer {self.repo.token}":
            return True
        self._send(401, b'{"error":"Invalid credentials"}', {"Content-Type": "application/json"})
        return False

    def _send(
        self, code: int, body: bytes, headers: Mapping[str, str] | None = None, head: bool = False
    ) -> None:
        self.send_response(code)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _json(self, value: Any, head: bool = False) -> None:
        self._send(200, json.dumps(value).encode(), {"Content-Type": "application/json"}, head)

    def _not_found(self, what: str, head: bool = False) -> None:
        headers = {"Content-Type": "application/json", "X-Error-Code": what}
        self._send(404, json.dumps({"error": what}).encode(), headers, head)

    def do_HEAD(self) -> None:
        self._route(head=True)

    def do_GET(self) -> None:
        self._route(head=False)

    def do_POST(self) -> None:
        self._record()
        if not self._authorised():
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode()
        m = re.fullmatch(r"/api/models/(.+)/paths-info/([^/]+)", urlsplit(self.path).path)
        if not m or m.group(1) != self.repo.repo_id:
            return self._not_found("RepoNotFound")
        if not self.repo.revision_ok(unquote(m.group(2))):
            return self._not_found("RevisionNotFound")
        if body.startswith("{"):
            paths = json.loads(body).get("paths", [])
        else:
            paths = parse_qs(body).get("paths", [])
        out = []
        for p in paths:
            if p in self.repo.files:
                out.append(self.repo.entry(p))
            elif any(f.startswith(p.rstrip("/") + "/") for f in self.repo.files):
                out.append({"type": "directory", "path": p, "oid": "0" * 40, "size": 0})
        self._json(out)

    def _route(self, head: bool) -> None:
        self._record()
        if not self._authorised():
            return
        url = urlsplit(self.path)
        path = unquote(url.path)
        query = parse_qs(url.query)
        repo = self.repo
        m = re.fullmatch(r"/api/models/(.+?)(?:/revision/([^/]+))?", path)
        if m and not path.startswith(f"/api/models/{repo.repo_id}/tree/"):
            if m.group(1) != repo.repo_id:
                return self._not_found("RepoNotFound", head)
            rev = m.group(2) or "main"
            if not repo.revision_ok(rev):
                return self._not_found("RevisionNotFound", head)
            siblings = [{"rfilename": p} for p in sorted(repo.files)]
            return self._json(
                {
                    "id": repo.repo_id,
                    "modelId": repo.repo_id,
                    "sha": repo.commit,
                    "private": False,
                    "siblings": siblings,
                },
                head,
            )
        m = re.fullmatch(r"/api/models/(.+)/tree/([^/]+)(?:/(.*))?", path)
        if m:
            if m.group(1) != repo.repo_id:
                return self._not_found("RepoNotFound", head)
            if not repo.revision_ok(m.group(2)):
                return self._not_found("RevisionNotFound", head)
            recursive = query.get("recursive", ["false"])[0].lower() in ("1", "true")
            return self._json(repo.tree(m.group(3) or "", recursive), head)
        m = re.fullmatch(r"/(.+)/resolve/([^/]+)/(.+)", path)
        if m:
            if m.group(1) != repo.repo_id:
                return self._not_found("RepoNotFound", head)
            if not repo.revision_ok(m.group(2)):
                return self._not_found("RevisionNotFound", head)
            data = repo.files.get(m.group(3))
            if data is None:
                return self._not_found("EntryNotFound", head)
            return self._file(data, m.group(3), head)
        return self._not_found("NotFound", head)

    def _file(self, data: bytes, name: str, head: bool) -> None:
        entry = self.repo.entry(name)
        headers = {
            "ETag": f'"{entry["lfs"]["oid"]}"',
            "X-Repo-Commit": self.repo.commit,
            "X-Linked-Etag": f'"{entry["lfs"]["oid"]}"',
            "X-Linked-Size": str(len(data)),
            "Accept-Ranges": "bytes",
            "Content-Type": "application/octet-stream",
        }
        rng = self.headers.get("Range")
        m = re.fullmatch(r"bytes=(\d+)-(\d*)", rng or "")
        if m is None:
            return self._send(200, data, headers, head)
        start = int(m.group(1))
        end = min(int(m.group(2)) if m.group(2) else len(data) - 1, len(data) - 1)
        if start >= len(data):
            headers["Content-Range"] = f"bytes */{len(data)}"
            return self._send(416, b"", headers, head)
        headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
        return self._send(206, data[start : end + 1], headers, head)


@contextmanager
def serve(repo: HubRepo) -> Iterator[str]:
    """Serve `repo` on an ephemeral 127.0.0.1 port; yields the endpoint URL."""
    handler = type("Handler", (_Handler,), {"repo": repo})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)

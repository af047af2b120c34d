"""Composition of the stages for one file or one batch: containers -> tokenizer -> rules ->
features -> model -> verdict. Never raises on file content; every path gets a FileResult."""

from __future__ import annotations

import hashlib
import os
import stat
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .containers import Container, ContainerLimits, PickleStream, open_container
from .facts import (
    STATUS_EMPTY,
    STATUS_NOT_PICKLE,
    STATUS_OK,
    ScanLimits,
    StreamFacts,
)
from .findings import CONTAINER_BUDGET, Finding, Severity
from .rules import RuleSet, evaluate
from .rules.callsites import StreamSites, stream_sites
from .rules.fills import attribute_containers
from .rules.indexed import Targets
from .rules.knowledge import NESTED_LOADER
from .rules.nested_loaders import Opened, open_archives, visible_operands
from .rules.wanted import wanted_in
from .sources.ref import FileRef, is_remote
from .tokenizer import tokenize
from .verdict import SUSPICIOUS, FileResult, VerdictPolicy, combine, settle

if TYPE_CHECKING:
    import pyarrow as pa

    from .model import Model

DEFAULT_MODEL = "default"
# Archives a file's pickles hand nested loaders as literal bytes, opened and scanned (never
# loaded): per file at most this many, decompressing at most this much in all; archives in
# their pickles are not opened. Past a budget a loader of one stays malicious.
MAX_LOADER_ARCHIVES = 64
MAX_LOADER_ARCHIVE_BYTES = 1 << 30


@dataclass(slots=True)
class _ArchiveBudget:
    files: int = MAX_LOADER_ARCHIVES
    bytes: int = MAX_LOADER_ARCHIVE_BYTES


@dataclass
class Analysis:
    """Everything known about one file before it is reduced to a FileResult (for `explain`)."""

    container: Container
    streams: list[tuple[PickleStream, StreamFacts]] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    status: str = "complete"
    data: dict[str, bytes] = field(default_factory=dict)  # stream bytes, kept only for explain


def _file_status(container: Container, streams: list[tuple[PickleStream, StreamFacts]]) -> str:
    """Container status, downgraded to partial when a pickle was not read to its end."""
    status = container.status
    if status != "complete":
        return status
    for _stream, facts in streams:
        if facts.status not in (STATUS_OK, STATUS_EMPTY, STATUS_NOT_PICKLE):
            return "partial"
    return status


class Scanner:
    """Holds what is loaded once per process: rules, limits and the ONNX session."""

    def __init__(
        self,
        *,
        model: str | os.PathLike[str] | Model | None = DEFAULT_MODEL,
        config: str | os.PathLike[str] | None = None,
        limits: ScanLimits | None = None,
        container_limits: ContainerLimits | None = None,
        rules: RuleSet | None = None,
        strict_unknown: bool = False,
        hash_files: bool = False,
        index: list[str] | tuple[str, ...] = (),
    ) -> None:
        # `strict_unknown`: the classifier never settles unlisted globals (no FS903).
        # `rules`: a ready RuleSet instead of `config` (the novel-family experiment withholds
        # denylist entries); unlike a user config it also classifies the model's features.
        # `hash_files`: fill FileResult.sha256 (baselines, dedup); costs a read of every byte.
        self.hash_files = hash_files
        # `index`: ecosystem index files (a user's own packages) added to the shipped index.
        self.rules = rules if rules is not None else RuleSet.load(config, index)
        self._feature_rules = rules
        self.limits = limits or ScanLimits()
        self.container_limits = container_limits or ContainerLimits()
        self.model = _load_model(model)
        self.strict_unknown = strict_unknown
        # The model's manifest is the policy's only source; None = rules only (RULES_ONLY).
        self.policy: VerdictPolicy | None = None
        if self.model is not None:
            self.policy = self.model.policy
            if strict_unknown:
                self.policy = replace(self.policy, unknown_benign=0.0)

    # -- one file ---------------------------------------------------------------------------

    def analyse(
        self,
        source: Any,
        name: str = "",
        *,
        keep_data: int = 0,
        rel: str = "",
        inside: ContainerLimits | None = None,
    ) -> Analysis:
        """Open, tokenize and judge by rules; no model score yet.

        `keep_data` > 0 copies up to that many bytes of each stream (for opcode listings);
        `rel` is the path relative to the scan root (for user suppressions); `inside`: the
        limits of an archive a nested loader of the enclosing file opens (`_opened`; archives
        in its own pickles are not opened).
        """
        limits = inside or self.container_limits
        budget = None if inside is not None else _ArchiveBudget()
        with open_container(source, name=name, limits=limits) as container:
            # facts hold decoded values only, never views, so the maps can close after this
            streams = [(s, tokenize(s.data, self.limits)) for s in container.streams]
            targets = [self._containers_filled(s.data, f) for s, f in streams]
            operands = [visible_operands(s.data, f) for s, f in streams]
            wanted = wanted_in(self.rules)
            sites = [stream_sites(s.data, f, wanted) for s, f in streams]
            opened = [
                self._opened(s.data, f, w, budget) for (s, f), w in zip(streams, sites, strict=True)
            ]
            data = (
                {s.member: bytes(memoryview(s.data)[:keep_data]) for s in container.streams}
                if keep_data
                else {}
            )
        analysis = Analysis(container, streams, status=_file_status(container, streams), data=data)
        analysis.findings = evaluate(
            [(s.member, f) for s, f in streams],
            container,
            self.rules,
            path=name,
            rel=rel,
            targets=targets,
            operands=operands,
            sites=sites,
            knowledge=self.rules.index_knowledge(),
            opened=opened,
        )
        return analysis

    def _opened(
        self, data: Any, facts: StreamFacts, sites: StreamSites, budget: _ArchiveBudget | None
    ) -> Opened:
        """The archives this stream's nested loader calls are handed as literal bytes, scanned
        here as files (never loaded) within the file's `budget` (None: not opened)."""
        if budget is None or not facts.calls:
            return Opened({})
        loaders = [
            g.resolved and self.rules.classify(g.module, g.name).category == NESTED_LOADER
            for g in facts.globals
        ]
        if not any(loaders):
            return Opened({})

        def scan(raw: bytes, name: str) -> tuple[bool, list[Finding]]:
            if budget.files <= 0 or budget.bytes <= 0:
                return False, []  # past the budget: not opened, the loader stays malicious
            budget.files -= 1
            cap = min(self.container_limits.max_total_bytes, budget.bytes)
            inner = self.analyse(
                raw, name, inside=replace(self.container_limits, max_total_bytes=cap)
            )
            budget.bytes -= max(inner.container.bytes_read, len(raw))
            clean = inner.status == "complete" and bool(inner.streams)
            clean = clean and all(f.severity < Severity.MALICIOUS for f in inner.findings)
            return clean, inner.findings

        return open_archives(data, facts, sites.sites, loaders, scan)

    def _containers_filled(self, data: Any, facts: StreamFacts) -> Targets | None:
        """Which objects the stream's SETITEMS/APPENDS/ADDITEMS fill, walked only when an
        indexed name's container hook could reach a sink (rules.indexed)."""
        if self.rules.index is None:
            return None
        classes = [
            self.rules.classify(g.module, g.name) if g.resolved else None for g in facts.globals
        ]
        return attribute_containers(data, facts, classes)

    def scan_path(self, path: str | os.PathLike[str], *, ref: FileRef | None = None) -> FileResult:
        return self.scan_refs([ref] if ref is not None else [str(path)])[0][0]

    def scan_bytes(self, data: bytes, name: str = "<bytes>") -> FileResult:
        result = self.explain_source(data, name)[1]
        if self.hash_files:
            result.sha256 = hashlib.sha256(data).hexdigest()
        return result

    def explain_source(
        self, source: Any, name: str, *, keep_data: int = 0, rel: str = ""
    ) -> tuple[Analysis | None, FileResult]:
        """Scan one path or buffer through `prepare` + `score`, keeping the analysis alongside
        the result; the analysis is None when the file could not be read (an error row)."""
        t0 = time.perf_counter()
        buffer = None
        if isinstance(source, (str, os.PathLike)):
            path, size, mtime, etag = _ref_fields(source)
        else:
            buffer = source
            path, size, mtime, etag = name, len(memoryview(source).cast("B")), 0.0, ""
        ref = FileRef(path, size, mtime, etag, rel=rel)
        result, analysis = self.prepare(ref, buffer, keep_data=keep_data)
        self.score([result], [analysis])
        result.scan_seconds = time.perf_counter() - t0
        return analysis, result

    # -- a batch: one model call for many files ------------------------------------------------

    def scan_refs(
        self, refs: list[FileRef] | list[str], *, with_features: bool = False
    ) -> tuple[list[FileResult], pa.RecordBatch | None]:
        results: list[FileResult] = []
        analyses: list[Analysis | None] = []
        starts: list[float] = []
        for ref in refs:
            starts.append(time.perf_counter())
            result, analysis = self.prepare(ref)
            results.append(result)
            analyses.append(analysis)
        batch = self.score(results, analyses, with_features=with_features)
        end = time.perf_counter()
        for result, t0 in zip(results, starts, strict=True):
            result.scan_seconds = end - t0
        return results, batch

    def prepare(
        self, ref: FileRef | str, buffer: Any = None, *, keep_data: int = 0
    ) -> tuple[FileResult, Analysis | None]:
        """Every stage but the model, for one file: the per-file part a caller may time-limit.

        `score` then judges many prepared files with one model call. The row's identity (path,
        size, mtime, etag) is the ref's. `buffer`: the file's bytes already in hand (a remote
        object's sparse buffer, never hashed here: it may hold only the ranges read); without
        one a local path is opened and a URL is read by ranges (`sources.remote.prepare_remote`,
        which comes back here with its buffer). `keep_data`: see `analyse` (for `explain`).
        """
        path, size, mtime, etag = _ref_fields(ref)
        remote = ref if buffer is None and isinstance(ref, FileRef) and is_remote(path) else None
        try:
            if remote is not None:
                from .sources.remote import prepare_remote

                return prepare_remote(self, remote)
            analysis = self.analyse(
                path if buffer is None else buffer,
                path,
                keep_data=keep_data,
                rel=getattr(ref, "rel", ""),
            )
        except MemoryError:
            return budget_result(path, size, mtime, etag), None
        except Exception as exc:  # one bad file must never stop a batch
            error = FileResult(
                path,
                size,
                mtime,
                etag,
                status="error",
                verdict="suspicious",
                error=f"internal error: {type(exc).__name__}: {exc}",
            )
            return (error if remote is not None else self._hashed(error, path, buffer)), None
        result = self._result(path, analysis, size, mtime, etag)
        return self._hashed(result, path, buffer), analysis

    def _hashed(self, result: FileResult, path: str, buffer: Any = None) -> FileResult:
        if self.hash_files and buffer is None:
            result.sha256 = file_sha256(path)
        return result

    def _result(
        self, path: str, analysis: Analysis, size: int, mtime: float, etag: str
    ) -> FileResult:
        c = analysis.container
        globals_ = sorted(
            {g.qualname for _s, f in analysis.streams for sub in f.walk() for g in sub.globals}
        )
        return FileResult(
            path=path,
            size=size,
            mtime=mtime,
            etag=etag,
            format=c.format,
            extension=c.extension,
            status=analysis.status,
            findings=list(analysis.findings),
            globals=globals_,
            members_scanned=len({s.member for s, _ in analysis.streams}),
            pickles=sum(f.n_pickles for _s, f in analysis.streams),
            bytes_read=c.bytes_read,
            error=c.message if analysis.status in ("error", "unsupported", "encrypted") else "",
        )

    def score(
        self,
        results: list[FileResult],
        analyses: list[Analysis | None],
        *,
        with_features: bool = False,
    ) -> pa.RecordBatch | None:
        """Features -> model scores -> verdicts for every result that has an analysis (in place);
        returns the feature batch when `with_features`."""
        scored = [(r, a) for r, a in zip(results, analyses, strict=True) if a is not None]
        batch = None
        probs: list[float] = [float("nan")] * len(scored)
        anomalies: list[float] = [float("nan")] * len(scored)
        # Files that hold no pickle container at all (safetensors, JSON, images) have nothing
        # for the model to judge: no features unless asked for, no score.
        judged = [
            i for i, (_r, a) in enumerate(scored) if with_features or a.status != "unsupported"
        ]
        if judged and (self.model is not None or with_features):
            from . import features

            # the model sees the shipped rule classes, so user allow-lists cannot shift its inputs;
            # what the index knows (a user's index included) feeds the know_* block
            knowledge = self.rules.index_knowledge()
            vectors = [
                features.extract(
                    scored[i][1].container,
                    scored[i][1].streams,
                    self._feature_rules,
                    knowledge=knowledge,
                    judged=features.judged_at_call_sites(scored[i][1].findings),
                )
                for i in judged
            ]
            if with_features:
                batch = features.to_batch(vectors, paths=[r.path for r, _a in scored])
            if self.model is not None:
                p, s = self.model.score_matrix(features.to_matrix(vectors))
                for i, prob, anomaly in zip(judged, p.tolist(), s.tolist(), strict=True):
                    probs[i], anomalies[i] = prob, anomaly
        for (result, _a), prob, anomaly in zip(scored, probs, anomalies, strict=True):
            result.score = prob
            result.anomaly_score = anomaly
            result.verdict, extra = combine(
                result.findings, result.status, prob, anomaly, self.policy
            )
            result.findings = settle(result.findings, extra)
        return batch if with_features else None

    @property
    def versions(self) -> dict[str, str]:
        """Provenance recorded in every output (Parquet key-value metadata, SARIF, jsonl)."""
        from .opcodes import table_hash
        from .version import __version__

        out = {
            "fastscan_version": __version__,
            "opcode_table": table_hash(),
            "rules_hash": self.rules.digest(),
            **self.rules.index_versions(),
            "model": "none",
            "model_hash": "",
            **self.config,
        }
        if self.model is not None:
            out["model"] = self.model.name
            out["model_hash"] = self.model.digest
        return out

    @property
    def config(self) -> dict[str, str]:
        """The settings besides rules and model that change rows: `limits` (JSON) and
        `config_hash` over them and the verdict policy."""
        import hashlib
        import json
        from dataclasses import asdict

        limits = json.dumps(
            {"scan": asdict(self.limits), "container": asdict(self.container_limits)},
            sort_keys=True,
        )
        policy = json.dumps(
            {
                "strict_unknown": self.strict_unknown,
                "policy": asdict(self.policy) if self.policy is not None else None,
            },
            sort_keys=True,
        )
        digest = hashlib.sha256(f"{limits}\0{policy}".encode()).hexdigest()
        return {"limits": limits, "config_hash": digest}


def file_sha256(path: str) -> str | None:
    """Hex SHA-256 of a local file's bytes; None when it cannot be read (the row says why)."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # a FIFO would block the read forever
            return None
        with open(path, "rb") as fh:
            return hashlib.file_digest(fh, "sha256").hexdigest()
    except (OSError, ValueError):
        return None


def _ref_fields(ref: Any) -> tuple[str, int, float, str]:
    if isinstance(ref, (str, os.PathLike)):
        path = os.fspath(ref)
        try:
            st = os.stat(path)
            return path, st.st_size, st.st_mtime, ""
        except OSError:
            return path, -1, 0.0, ""
    return ref.path, ref.size, ref.mtime, getattr(ref, "etag", "")


MEMORY_BUDGET = "memory budget exceeded"


def budget_result(
    path: str, size: int = -1, mtime: float = 0.0, etag: str = "", detail: str = MEMORY_BUDGET
) -> FileResult:
    """The row of a file whose scan ran out of memory: partial, suspicious, FS306 named (the
    same finding a reader's MemoryError gets from `open_container`, where what was found is
    kept)."""
    finding = CONTAINER_BUDGET.finding(f"budget memory hit: {detail}", subject="memory")
    return FileResult(
        path, size, mtime, etag, status="partial", verdict=SUSPICIOUS, findings=[finding],
        error=detail,
    )  # fmt: skip


def out_of_memory(result: FileResult) -> bool:
    """Whether this file's scan hit the memory budget (its worker is then replaced)."""
    # subject "memory" from budget_result, "budget_memory" from a reader's container anomaly
    return any(
        f.rule_id == CONTAINER_BUDGET.rule_id and f.subject in ("memory", "budget_memory")
        for f in result.findings
    )


def _load_model(model: Any) -> Model | None:
    if model is None:
        return None
    from .model import Model, load_model

    if isinstance(model, Model):
        return model
    if model == DEFAULT_MODEL:
        return load_model(None)
    return load_model(Path(model))


_DEFAULT: dict[tuple[Any, ...], Scanner] = {}


def _scanner(**options: Any) -> Scanner:
    key = tuple(sorted((k, repr(v)) for k, v in options.items()))
    if key not in _DEFAULT:
        _DEFAULT[key] = Scanner(**options)
    return _DEFAULT[key]


def scan_path(path: str | os.PathLike[str], **options: Any) -> FileResult:
    """Scan one file with a cached Scanner built from `options` (see Scanner)."""
    return _scanner(**options).scan_path(path)


def scan_bytes(data: bytes, name: str = "<bytes>", **options: Any) -> FileResult:
    """Scan an in-memory file with a cached Scanner built from `options`."""
    return _scanner(**options).scan_bytes(data, name)

"""Stage 6: score feature batches with the shipped ONNX model (no scikit-learn at scan time).

    from fastscan import model
    m = model.load()                      # fastscan/models/fastscan-v1.onnx + .json, checked
    prob, anomaly = m.score(batch)        # batch: features.to_batch(...) (or score_matrix(X))
    verdict.combine(findings, status, p, a, m.policy)   # the manifest's thresholds, every field
    prob, anomaly = model.score(batch)    # same, with a per-process cached default model

`prob` is the classifier's probability that a file is malicious; `anomaly` is an unsupervised
score from a model fit on benign files only, higher = more unusual (> 0 means more unusual than
`thresholds["anomaly"]`'s reference, see the manifest). Both are float32 arrays of length n.

One `.onnx` holds both models (one session run): input `features` (n, N_FEATURES) float32,
outputs `p_malicious` (n,) and `anomaly` (n,). Next to it, `<name>.json` is the manifest:

    {"name", "format_version", "feature_schema_version", "feature_names": [...],
     "opcode_table_hash", "onnx_sha256",
     "thresholds": {"malicious", "suspicious", "anomaly", "anomaly_needs_classifier",
                    "unknown_benign", "incomplete_verdict"},
     "training": {"data_hash", "seed", "n_benign", "n_malicious", "families", ...},
     "metrics": {...}, "versions": {"sklearn", "skl2onnx", "onnx", "onnxruntime", "numpy", ...}}

Loading refuses (ModelManifestError) a manifest whose feature names, schema version or opcode
table differ from this code's, or whose .onnx digest does not match. Sessions use one intra-op
thread without spinning: bulk scans parallelise across processes instead.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from . import features
from .isolation import quiet_onnxruntime
from .opcodes import table_hash
from .verdict import VerdictPolicy

quiet_onnxruntime()  # before the import, which otherwise writes under ~/.cache
import onnxruntime as ort  # noqa: E402

DEFAULT_NAME = "fastscan-v1"
MODELS_DIR = Path(__file__).parent / "models"
MANIFEST_FORMAT_VERSION = 1
INPUT_NAME = "features"
OUTPUT_PROBABILITY = "p_malicious"
OUTPUT_ANOMALY = "anomaly"


class ModelManifestError(ValueError):
    """The model's manifest does not fit this code (features, schema, opcode table, digest)."""


# Manifest thresholds: every field of the verdict policy (verdict.VerdictPolicy.MANIFEST_KEYS),
# the only source of the policy that the CLI, the API, bulk, Dask and eval apply.
THRESHOLD_KEYS = tuple(VerdictPolicy.MANIFEST_KEYS)


def resolve_paths(model: str | Path | None = None) -> tuple[Path, Path]:
    """(onnx, manifest) for a shipped name ("fastscan-v1"), a .onnx or .json path, or None."""
    if model is None:
        model = DEFAULT_NAME
    path = Path(model)
    if path.suffix in (".onnx", ".json"):
        return path.with_suffix(".onnx"), path.with_suffix(".json")
    if path.parent == Path(".") and not path.exists():
        path = MODELS_DIR / path.name
    return path.with_suffix(".onnx"), path.with_suffix(".json")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_manifest(manifest: dict[str, Any], onnx_path: Path | None = None) -> None:
    """Raise ModelManifestError when the manifest does not match this code (and the .onnx)."""
    if manifest.get("format_version") != MANIFEST_FORMAT_VERSION:
        raise ModelManifestError(
            f"manifest format {manifest.get('format_version')!r}, "
            f"expected {MANIFEST_FORMAT_VERSION}"
        )
    names = tuple(manifest.get("feature_names", ()))
    if names != features.FEATURE_NAMES:
        extra = sorted(set(names) - set(features.FEATURE_NAMES))[:5]
        missing = sorted(set(features.FEATURE_NAMES) - set(names))[:5]
        raise ModelManifestError(
            "model feature names differ from fastscan.features.FEATURE_NAMES "
            f"({len(names)} vs {features.N_FEATURES}; unknown {extra}, missing {missing}"
            + ("; same names, different order" if not extra and not missing else "")
            + "); retrain with `fastscan train`"
        )
    version = manifest.get("feature_schema_version")
    if version != features.FEATURE_SCHEMA_VERSION:
        raise ModelManifestError(
            f"model feature schema v{version}, code has v{features.FEATURE_SCHEMA_VERSION}"
        )
    if manifest.get("opcode_table_hash") != table_hash():
        raise ModelManifestError(
            f"model opcode table {manifest.get('opcode_table_hash')!r} != {table_hash()!r}"
        )
    thresholds = manifest.get("thresholds", {})
    for key in THRESHOLD_KEYS:
        value = thresholds.get(key)
        if key == "incomplete_verdict":
            if not isinstance(value, str):
                raise ModelManifestError(f"manifest threshold {key!r} missing or not a verdict")
        elif not isinstance(value, (int, float)) or not np.isfinite(value):
            raise ModelManifestError(f"manifest threshold {key!r} missing or not a number")
    try:
        manifest_policy(manifest)
    except ValueError as exc:
        raise ModelManifestError(f"manifest thresholds: {exc}") from None
    if onnx_path is not None and manifest.get("onnx_sha256") != file_sha256(onnx_path):
        raise ModelManifestError(f"{onnx_path.name} does not match the manifest's onnx_sha256")


def manifest_policy(manifest: dict[str, Any]) -> VerdictPolicy:
    """The verdict policy of a model: its manifest's thresholds, every field (the one place a
    policy is built from a model; Model.policy holds it)."""
    return VerdictPolicy.from_mapping(manifest["thresholds"])


def session_options() -> ort.SessionOptions:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # Spinning threads fight the other workers for the cores (docs/design.md#onnx-threads).
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
    opts.log_severity_level = 3
    return opts


class Model:
    """A loaded, checked model: an ORT session plus its manifest."""

    def __init__(self, onnx_path: Path, manifest: dict[str, Any]) -> None:
        check_manifest(manifest, onnx_path)
        self.path = onnx_path
        self.manifest = manifest
        self.name = str(manifest.get("name", onnx_path.stem))
        self.digest = str(manifest["onnx_sha256"])  # recorded in scan outputs
        self.policy = manifest_policy(manifest)
        self.thresholds: dict[str, float | str] = self.policy.to_mapping()  # as in the manifest
        self._session = ort.InferenceSession(
            str(onnx_path), sess_options=session_options(), providers=["CPUExecutionProvider"]
        )
        outputs = {o.name for o in self._session.get_outputs()}
        inputs = self._session.get_inputs()
        if (
            len(inputs) != 1
            or inputs[0].name != INPUT_NAME
            or not {OUTPUT_PROBABILITY, OUTPUT_ANOMALY} <= outputs
        ):
            raise ModelManifestError(
                f"{onnx_path.name}: expected input {INPUT_NAME!r} and outputs "
                f"{OUTPUT_PROBABILITY!r}, {OUTPUT_ANOMALY!r}"
            )

    @classmethod
    def load(cls, model: str | Path | None = None) -> Model:
        onnx_path, manifest_path = resolve_paths(model)
        if not onnx_path.is_file() or not manifest_path.is_file():
            raise FileNotFoundError(f"model files not found: {onnx_path} / {manifest_path}")
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        return cls(onnx_path, manifest)

    def score_matrix(self, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(p_malicious, anomaly) for an (n, N_FEATURES) matrix."""
        x = np.ascontiguousarray(matrix, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != features.N_FEATURES:
            raise ValueError(f"expected (n, {features.N_FEATURES}) features, got {x.shape}")
        if x.shape[0] == 0:
            return np.zeros(0, np.float32), np.zeros(0, np.float32)
        prob, anomaly = self._session.run([OUTPUT_PROBABILITY, OUTPUT_ANOMALY], {INPUT_NAME: x})
        return np.asarray(prob, np.float32).reshape(-1), np.asarray(anomaly, np.float32).reshape(-1)

    def score(self, batch: pa.RecordBatch | pa.Table) -> tuple[np.ndarray, np.ndarray]:
        """(p_malicious, anomaly) for a RecordBatch holding the FEATURE_NAMES columns."""
        return self.score_matrix(features.batch_to_matrix(batch))


_DEFAULT: Model | None = None


def load(model: str | Path | None = None) -> Model:
    """Load and check a model; `None` = the shipped default."""
    return Model.load(model)


load_model = load  # the name fastscan.scan uses


def default_model() -> Model:
    """The shipped model, loaded once per process (bulk workers call this in their initializer)."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = Model.load(None)
    return _DEFAULT


def score(batch: pa.RecordBatch | pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """Score with the shipped default model."""
    return default_model().score(batch)

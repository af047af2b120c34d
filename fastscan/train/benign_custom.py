"""BENIGN files that reference user code: the everyday noise of a real model mirror.

Real checkpoints are full of globals no allowlist can know: whole-model `torch.save(model)` of a
user's `nn.Module`, sklearn pipelines with custom transformers or `FunctionTransformer(user_fn)`,
dataclass/Enum/NamedTuple configs, `argparse.Namespace` args, custom schedulers stored in
checkpoints. Rules alone call each of them FS103 "unknown global" (suspicious); only the model
can tell them from an unlisted gadget.

Each source writes a small importable package of OUR OWN classes into a temp folder (names vary
with the seed, e.g. `acme_lab.models.resnet_small.Net`), imports it, builds objects with the
real libraries and serialises them; the package is then unloaded. Only the module and class names
reach the bytes, never the temp path, so the output depends only on the seed (and, for whole
torch modules, on PYTHONHASHSEED, which `corpus.main` pins).
"""

from __future__ import annotations

import contextlib
import importlib
import io
import pickle
import random
import sys
import tempfile
import textwrap
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

from .scales import SCALES

__all__ = ["CUSTOM_SOURCES", "CUSTOM_TORCH_SOURCES", "user_package"]

_ORGS = ("acme_lab", "contoso_ml", "deepvision", "nlp_group", "my_project", "research_code",
         "team_ai", "lab42", "vision_core", "speech_kit", "kaggle_sol", "thesis")  # fmt: skip
_AREAS = ("models", "nets", "modeling", "arch", "src.models", "lib.networks", "core")
_FILES = ("resnet_small", "encoder", "baseline", "classifier", "unet_lite", "tabular",
          "seq2seq", "heads", "mlp_mixer", "detector")  # fmt: skip
_CLASSES = ("Net", "Model", "Encoder", "Classifier", "ResNetSmall", "TinyUNet", "Baseline",
            "TabularNet", "SeqModel", "Detector")  # fmt: skip
_BLOCKS = ("Block", "ResidualBlock", "ConvBlock", "Head", "Stem", "MixerLayer")
_TRANSFORMERS = ("ColumnClipper", "LogScaler", "OutlierCapper", "FeatureSelector", "Winsorizer")
_FUNCTIONS = ("log_transform", "add_ratios", "clip_values", "normalise_rows", "square_features")
# reconstructors a user's `__reduce__` names: function-shaped, handed numbers and containers
_REBUILDERS = ("_rebuild", "_restore_state", "make_table", "unpickle_cache", "from_state",
               "_reconstruct_index", "load_state", "build_vocab")  # fmt: skip
_LOWER_CLASSES = ("frozen_map", "immutabledict", "lru_record", "span", "interval", "bitset")
_TOKENS = ("model", "data", "train", "value", "token", "label", "score", "layer", "signal", "field")


# Our own benign source text; `{…}` fields are filled with names chosen from the seed.
_TORCH_MODULE = '''
import torch
from torch import nn


class {block}(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.proj = nn.Linear(width, width)
        self.norm = nn.LayerNorm(width)
        self.act = nn.{act}()

    def forward(self, x):
        return x + self.act(self.proj(self.norm(x)))


class {cls}(nn.Module):
    def __init__(self, d_in, width, depth, n_out):
        super().__init__()
        self.stem = nn.Linear(d_in, width)
        self.blocks = nn.ModuleList([{block}(width) for _ in range(depth)])
        self.head = nn.Linear(width, n_out)
        self.dropout_p = {dropout}
        self.label_names = {labels!r}

    def forward(self, x):
        x = self.stem(x)
        for block in self.blocks:
            x = block(x)
        return self.head(x)


class WarmupScheduler:
    """A hand-rolled LR schedule kept in checkpoints (not a torch scheduler subclass)."""

    def __init__(self, base_lr, warmup_steps):
        self.base_lr = base_lr
        self.warmup_steps = warmup_steps
        self.step_count = 0

    def lr(self):
        return self.base_lr * min(1.0, (self.step_count + 1) / self.warmup_steps)
'''

_SKLEARN_MODULE = """
import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin


class {transformer}(BaseEstimator, TransformerMixin):
    def __init__(self, quantile={quantile}):
        self.quantile = quantile

    def fit(self, X, y=None):
        self.low_ = np.quantile(X, self.quantile, axis=0)
        self.high_ = np.quantile(X, 1 - self.quantile, axis=0)
        return self

    def transform(self, X):
        return np.clip(X, self.low_, self.high_)


def {function}(X):
    return np.sign(X) * np.log1p(np.abs(X))
"""

_CONFIG_MODULE = """
import enum
from dataclasses import dataclass, field
from typing import NamedTuple


class Stage(enum.Enum):
    PRETRAIN = "pretrain"
    FINETUNE = "finetune"
    EVAL = "eval"


class Split(NamedTuple):
    train: float
    valid: float


@dataclass
class {config}:
    name: str
    lr: float
    batch_size: int
    stage: Stage = Stage.PRETRAIN
    split: Split = Split(0.9, 0.1)
    tags: list = field(default_factory=list)
"""


# Extension-type style pickling: objects that reduce to a module-level reconstructor function
# (or to a lowercase class) with plain state, as Cython classes, immutable collections and
# caches do (`copyreg.pickle` registrations included). Names vary with the seed.
_REDUCERS_MODULE = """
import copyreg


def {rebuild}(version, state, extra=None):
    obj = Table.__new__(Table)
    obj.version, obj.columns, obj.extra = version, state, extra
    return obj


class Table:
    def __init__(self, columns):
        self.version, self.columns, self.extra = 2, columns, None

    def __reduce__(self):
        return ({rebuild}, (self.version, self.columns, self.extra))


class {lower}(dict):
    def __reduce__(self):
        return ({lower}, (dict(self),))


class Vocab:
    def __init__(self, tokens, counts):
        self.tokens, self.counts = tokens, counts


def _vocab_from(tokens, counts):
    return Vocab(tokens, counts)


def _reduce_vocab(vocab):
    return (_vocab_from, (list(vocab.tokens), list(vocab.counts)))


copyreg.pickle(Vocab, _reduce_vocab)
"""


@contextlib.contextmanager
def user_package(rng: random.Random) -> Iterator[dict[str, ModuleType]]:
    """Write and import a user package named from `rng`; yields {"torch"|"sklearn"|"config"|
    "reducers": module}. The package is removed from sys.modules and sys.path afterwards."""
    org = rng.choice(_ORGS)
    area = rng.choice(_AREAS)
    stem = rng.choice(_FILES)
    names = {
        "cls": rng.choice(_CLASSES),
        "block": rng.choice(_BLOCKS),
        "act": rng.choice(["ReLU", "GELU", "SiLU", "Tanh"]),
        "dropout": round(rng.uniform(0.0, 0.5), 2),
        "labels": [f"class_{i}" for i in range(rng.randint(2, 5))],
        "transformer": rng.choice(_TRANSFORMERS),
        "quantile": round(rng.uniform(0.01, 0.1), 3),
        "function": rng.choice(_FUNCTIONS),
        "config": rng.choice(("TrainConfig", "ExperimentConfig", "RunArgs", "Hparams")),
    }
    # drawn from their own generator, so the other sources' bytes do not move with them
    extra = random.Random(f"{org}.{area}.{stem}")
    names |= {"rebuild": extra.choice(_REBUILDERS), "lower": extra.choice(_LOWER_CLASSES)}
    modules = {
        "torch": f"{org}.{area}.{stem}",
        "sklearn": f"{org}.features.{rng.choice(('preprocess', 'transforms', 'pipeline_utils'))}",
        "config": f"{org}.{rng.choice(('config', 'configs.train', 'settings'))}",
        "reducers": f"{org}.{extra.choice(('utils.cache', 'data.tables', 'text.vocab'))}",
    }
    sources = {"torch": _TORCH_MODULE, "sklearn": _SKLEARN_MODULE, "config": _CONFIG_MODULE,
               "reducers": _REDUCERS_MODULE}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="fastscan-user-") as tmp:
        root = Path(tmp)
        for kind, dotted in modules.items():
            parts = dotted.split(".")
            for depth in range(1, len(parts)):
                package = root.joinpath(*parts[:depth])
                package.mkdir(exist_ok=True)
                (package / "__init__.py").touch()
            source = textwrap.dedent(sources[kind].format(**names))
            root.joinpath(*parts).with_suffix(".py").write_text(source)
        _forget(org)
        sys.path.insert(0, tmp)
        importlib.invalidate_caches()
        try:
            yield {kind: importlib.import_module(dotted) for kind, dotted in modules.items()}
        finally:
            sys.path.remove(tmp)
            _forget(org)


def _forget(package: str) -> None:
    """Drop a generated package so the next one with the same name is imported afresh."""
    for name in [m for m in sys.modules if m == package or m.startswith(package + ".")]:
        del sys.modules[name]


def _torch_bytes(obj: Any) -> bytes:
    import torch

    out = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.save(obj, out)  # zip format: holds module/class names only, no source paths
    return out.getvalue()


def _user_net(mods: dict[str, ModuleType], rng: random.Random, scale: str) -> Any:
    import torch

    torch.manual_seed(rng.randrange(2**31))
    cls = next(v for k, v in vars(mods["torch"]).items() if k in _CLASSES)
    width = rng.randint(4, 24) * SCALES[scale]
    return cls(rng.randint(3, 16), width, rng.randint(1, 3), rng.randint(2, 6))


def custom_torch_model(rng: random.Random, scale: str) -> tuple[bytes, str]:
    """Whole-model `torch.save(net)` of a user nn.Module (the classic non-state-dict save)."""
    with user_package(rng) as mods:
        data = _torch_bytes(_user_net(mods, rng, scale))
    return data, rng.choice([".pt", ".pth", ".bin"])


def custom_checkpoint(rng: random.Random, scale: str) -> tuple[bytes, str]:
    """A training checkpoint: state dict plus user scheduler, config and argparse args."""
    import argparse

    with user_package(rng) as mods:
        net = _user_net(mods, rng, scale)
        scheduler = mods["torch"].WarmupScheduler(rng.uniform(1e-4, 1e-2), rng.randint(10, 500))
        scheduler.step_count = rng.randrange(1000)
        config_mod = mods["config"]
        config = _config(config_mod, rng)
        ckpt: dict[str, Any] = {
            "model": net.state_dict() if rng.random() < 0.7 else net,
            "scheduler": scheduler,
            "epoch": rng.randrange(100),
        }
        if rng.random() < 0.6:
            ckpt["config"] = config
        if rng.random() < 0.6:
            ckpt["args"] = argparse.Namespace(
                lr=config.lr, batch_size=config.batch_size, seed=rng.randrange(100), out="runs/x"
            )
        data = _torch_bytes(ckpt)
    return data, rng.choice([".ckpt", ".pt", ".pth.tar"])


def _config(config_mod: ModuleType, rng: random.Random) -> Any:
    cls = next(v for k, v in vars(config_mod).items() if k.endswith(("Config", "Args", "params")))
    stage = rng.choice(list(config_mod.Stage))
    split = config_mod.Split(round(rng.uniform(0.7, 0.95), 2), 0.05)
    return cls(f"run-{rng.randrange(10**4)}", rng.uniform(1e-5, 1e-2), rng.choice([8, 32, 128]),
               stage, split, ["baseline"] if rng.random() < 0.5 else [])  # fmt: skip


def custom_config(rng: random.Random, scale: str) -> tuple[bytes, str]:
    """A pickled run config (dataclass with Enum and NamedTuple fields), alone or in a dict.

    The dict form may also hold stdlib values outside the allowlist (`time.struct_time`,
    `statistics.NormalDist`): unknown globals are not always user modules."""
    import argparse
    import statistics
    import time

    with user_package(rng) as mods:
        config = _config(mods["config"], rng)
        obj: Any = config
        if rng.random() < 0.5:
            history = [rng.random() for _ in range(rng.randint(1, 20))]
            obj = {"config": config, "args": argparse.Namespace(debug=False, workers=4),
                   "history": history}  # fmt: skip
            if rng.random() < 0.4:
                obj["started"] = time.gmtime(rng.randrange(10**9, 2 * 10**9))
            if rng.random() < 0.4:
                obj["score_dist"] = statistics.NormalDist(rng.random(), 0.1 + rng.random())
        data = pickle.dumps(obj, protocol=rng.randint(2, 5))
    return data, rng.choice([".pkl", ".pickle"])


def custom_sklearn(rng: random.Random, scale: str) -> tuple[bytes, str]:
    """A fitted sklearn Pipeline with a user transformer and FunctionTransformer(user_fn)."""
    import joblib
    import numpy as np
    from sklearn import ensemble, linear_model, pipeline, preprocessing

    with user_package(rng) as mods:
        user = mods["sklearn"]
        transformer = next(v for k, v in vars(user).items() if k in _TRANSFORMERS)
        function = next(v for k, v in vars(user).items() if k in _FUNCTIONS)
        seed = rng.randrange(2**31)
        gen = np.random.default_rng(seed)
        n, d = 40 * SCALES[scale], rng.randint(3, 10)
        x = gen.normal(size=(n, d))
        y = (x[:, 0] + gen.normal(scale=0.3, size=n) > 0).astype(int)
        final = rng.choice(
            [
                lambda: linear_model.LogisticRegression(max_iter=200),
                lambda: ensemble.RandomForestClassifier(4, max_depth=4, random_state=seed),
            ]
        )()
        steps = [transformer(), preprocessing.FunctionTransformer(function)]
        rng.shuffle(steps)
        model = pipeline.make_pipeline(*steps, preprocessing.StandardScaler(), final)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(x, y)
        if rng.random() < 0.5:
            data, ext = pickle.dumps(model, protocol=rng.randint(2, 5)), ".pkl"
        else:
            out = io.BytesIO()
            joblib.dump(model, out, compress=rng.choice([0, 3]))
            data, ext = out.getvalue(), ".joblib"
    return data, ext


def custom_reducers(rng: random.Random, scale: str) -> tuple[bytes, str]:
    """Objects that pickle through a user's reconstructor function or lowercase class (extension
    type style): a table of numbers, an immutable mapping, a vocabulary registered with
    `copyreg.pickle`, alone or together in a cache dict, pickled or in a torch checkpoint."""
    with user_package(rng) as mods:
        user = mods["reducers"]
        lower = next(v for k, v in vars(user).items() if k in _LOWER_CLASSES)
        n = rng.randint(3, 30) * SCALES[scale]
        columns = {f"col_{i}": [round(rng.random(), 4) for _ in range(n)] for i in range(3)}
        words = [rng.choice(_TOKENS) + str(i) for i in range(n)]
        parts: dict[str, Any] = {
            "table": user.Table(columns),
            "meta": lower({"rows": n, "seed": rng.randrange(1000), "ok": True}),
            "vocab": user.Vocab(words, [rng.randrange(100) for _ in words]),
        }
        keep = rng.sample(sorted(parts), rng.randint(1, 3))
        obj: Any = {k: parts[k] for k in keep} if len(keep) > 1 else parts[keep[0]]
        if rng.random() < 0.3:
            data, ext = _torch_bytes({"epoch": rng.randrange(50), "cache": obj}), ".pt"
        else:
            data, ext = pickle.dumps(obj, protocol=rng.randint(0, 5)), ".pkl"
    return data, ext


CUSTOM_SOURCES = {
    "custom_reducers": custom_reducers,
    "custom_torch_model": custom_torch_model,
    "custom_checkpoint": custom_checkpoint,
    "custom_config": custom_config,
    "custom_sklearn": custom_sklearn,
}
CUSTOM_TORCH_SOURCES = ("custom_torch_model", "custom_checkpoint", "custom_reducers")

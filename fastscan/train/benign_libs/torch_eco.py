"""The torch ecosystem beyond benign.py's torch sources: lightning checkpoints, omegaconf
configs inside checkpoints, skorch nets, optimizer/scheduler/GradScaler state, TorchScript."""

from __future__ import annotations

import importlib.util
import io
import random
import tempfile
import warnings
from pathlib import Path
from typing import Any

from ._base import dump, size, source, torch_save


@source("torch")
def torch_training_state(rng: random.Random, scale: str) -> tuple[bytes, str]:
    """Optimizer + scheduler + AMP GradScaler state, and the RNG states trainers save."""
    import torch
    from torch import nn

    from ..benign import _torch_model

    model = _torch_model(rng, "small", rng.choice(["mlp", "embedding", "batchnorm"]))
    opt_cls = rng.choice(
        [torch.optim.SGD, torch.optim.Adam, torch.optim.AdamW, torch.optim.RMSprop]
    )
    opt = opt_cls(model.parameters(), lr=1e-3)
    sched = rng.choice([
        torch.optim.lr_scheduler.StepLR(opt, 3), torch.optim.lr_scheduler.CosineAnnealingLR(opt, 9),
        torch.optim.lr_scheduler.OneCycleLR(opt, 0.1, total_steps=20),
        torch.optim.lr_scheduler.ReduceLROnPlateau(opt),
    ])  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scaler = torch.amp.GradScaler("cpu", enabled=True)
    state: dict[str, Any] = {"optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                             "scaler": scaler.state_dict(), "rng": torch.get_rng_state(),
                             "epoch": rng.randrange(100)}  # fmt: skip
    if rng.random() < 0.3:
        state["loss_fn"] = nn.CrossEntropyLoss(label_smoothing=0.1)
    return torch_save(state, rng)


@source("torch")
def torch_jit_archs(rng: random.Random, scale: str) -> tuple[bytes, str]:
    """TorchScript by script or trace of several architectures (zip with code/ and data.pkl)."""
    import torch

    from ..benign import TORCH_ARCHS, _fixed_clock, _torch_model

    arch = rng.choice([a for a in TORCH_ARCHS if a not in ("lstm", "gru", "transformer")])
    model = _torch_model(rng, "small", arch).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if arch == "cnn":
            scripted = torch.jit.trace(model, torch.zeros(1, 3, 8, 8))
        elif arch == "embedding":
            scripted = torch.jit.trace(model, torch.zeros(2, 3, dtype=torch.long))
        else:
            scripted = torch.jit.script(model)
    buf = io.BytesIO()
    with _fixed_clock():
        torch.jit.save(scripted, buf)
    return buf.getvalue(), rng.choice((".pt", ".torchscript", ".jit"))


@source("omegaconf")
def omegaconf_checkpoints(rng: random.Random, scale: str) -> tuple[bytes, str]:
    """Hydra-style training checkpoints: a DictConfig/ListConfig beside the weights."""
    from omegaconf import OmegaConf

    cfg = OmegaConf.create({"model": {"name": "mlp", "hidden": rng.randint(8, 256),
                                      "layers": [rng.randint(1, 9)] * 2},
                            "optim": {"lr": rng.random(), "betas": [0.9, 0.999]},
                            "data": {"path": "${oc.env:HOME,/data}/train", "bs": 32}})  # fmt: skip
    if rng.random() < 0.5:
        from ..benign import _torch_model

        model = _torch_model(rng, "small", "mlp")
        return torch_save({"state_dict": model.state_dict(), "cfg": cfg}, rng)
    return dump(cfg if rng.random() < 0.5 else OmegaConf.create([1, cfg.model]), rng)


@source("lightning", "lightning", "torch")
def lightning_checkpoints(rng: random.Random, scale: str) -> tuple[bytes, str]:
    """A real Trainer fit for a few steps, saved with trainer.save_checkpoint."""
    import lightning as L
    import torch
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    from .lightning_module import TinyModule

    torch.manual_seed(rng.randrange(2**31))
    width = rng.randint(2, 16)
    cfg = None
    if rng.random() < 0.5 and importlib.util.find_spec("omegaconf"):  # hydra-style runs
        from omegaconf import OmegaConf

        cfg = OmegaConf.create({"trainer": {"max_steps": 3}, "model": {"width": width}})
    module = TinyModule(width=width, lr=rng.random() / 10, name=rng.choice(["a", "b"]), cfg=cfg)
    data = TensorDataset(torch.randn(16, width), torch.randn(16, 1))
    trainer = L.Trainer(max_steps=rng.randint(1, 3), logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        accelerator="cpu", devices=1)  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(module, DataLoader(data, batch_size=4))
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "last.ckpt"
            trainer.save_checkpoint(path)
            raw = path.read_bytes()
    del nn
    return raw, ".ckpt"


@source("skorch", "skorch", "torch")
def skorch_nets(rng: random.Random, scale: str) -> tuple[bytes, str]:
    """A NeuralNetClassifier fit on tiny data; its pickle nests torch.save bytes."""
    import numpy as np
    import torch
    from skorch import NeuralNetClassifier, NeuralNetRegressor
    from torch import nn

    torch.manual_seed(rng.randrange(2**31))
    g = np.random.default_rng(rng.randrange(2**32))
    width, n = rng.randint(2, 8), size(rng, scale, 20, 60)
    X = g.normal(size=(n, width)).astype(np.float32)
    if rng.random() < 0.5:
        module = nn.Sequential(nn.Linear(width, 8), nn.ReLU(), nn.Linear(8, 2))
        net: Any = NeuralNetClassifier(module, max_epochs=1, criterion=nn.CrossEntropyLoss,
                                       train_split=None, verbose=0)  # fmt: skip
        net.fit(X, (X[:, 0] > 0).astype(np.int64))
    else:
        net = NeuralNetRegressor(nn.Linear(width, 1), max_epochs=1, train_split=None, verbose=0)
        net.fit(X, X[:, :1])
    return dump(net, rng, (".pkl", ".skorch.pkl"))


SOURCES = [torch_training_state, torch_jit_archs, omegaconf_checkpoints, lightning_checkpoints,
           skorch_nets]  # fmt: skip

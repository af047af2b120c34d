"""The LightningModule the lightning generator trains. It lives in an importable module (as a
user's module would), so checkpoints reference it by name instead of failing to pickle."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch import nn


class TinyModule(L.LightningModule):
    def __init__(self, width: int, lr: float, name: str, cfg: Any = None) -> None:
        super().__init__()
        self.save_hyperparameters()  # goes into the checkpoint's "hyper_parameters"
        self.net = nn.Sequential(nn.Linear(width, 4), nn.ReLU(), nn.Linear(4, 1))

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        return nn.functional.mse_loss(self.net(x), y)

    def configure_optimizers(self) -> Any:
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams["lr"])
        return {"optimizer": opt, "lr_scheduler": torch.optim.lr_scheduler.StepLR(opt, 2)}

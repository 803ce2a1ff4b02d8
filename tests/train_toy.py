"""A toy model and TrainTask for testing the generic training machinery without SAT or AAR."""
from __future__ import annotations

import dataclasses

import torch
from torch import nn

from nextscale.checkpoint import Pretrained
from nextscale.train.config import OptimConfig, TrainConfig
from nextscale.train.loop import StepResult, optimizer_step
from nextscale.train.schedule import RunClock, advance, build_scheduler


@dataclasses.dataclass
class ToyConfig:
    dim: int = 4


class ToyModel(Pretrained, nn.Module):
    """Linear regression with dropout (uses the RNG) and a running-mean buffer updated in forward."""

    kind = "toy"
    config_class = ToyConfig

    def __init__(self, config: ToyConfig | None = None):
        super().__init__()
        self.config = config or ToyConfig()
        self.lin = nn.Linear(self.config.dim, 1)
        self.register_buffer("running", torch.zeros(self.config.dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            with torch.no_grad():
                self.running.mul_(0.9).add_(0.1 * x.mean(0))
        return self.lin(nn.functional.dropout(x, 0.1, self.training)).squeeze(-1)


class ToyData(torch.utils.data.Dataset):
    """y = x . w_true + 0.5 with fixed x; `nan_items` return NaN inputs (bad data)."""

    def __init__(self, n: int = 64, dim: int = 4, nan_items: tuple[int, ...] = ()):
        g = torch.Generator().manual_seed(123)
        self.x = torch.randn(n, dim, generator=g)
        self.y = self.x @ torch.arange(1.0, dim + 1) + 0.5
        self.nan_items = set(nan_items)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict:
        x = self.x[i].clone()
        if i in self.nan_items:
            x[0] = float("nan")
        return {"x": x, "y": self.y[i], "index": i}


class ToyTask:
    throughput_unit = "samples"
    best_metric = "eval_loss"
    curve_keys = ("loss",)

    def __init__(self, model: ToyModel, cfg: TrainConfig, optim: OptimConfig | None = None,
                 nan_steps: tuple[int, ...] = (), device=torch.device("cpu"), ddp_model=None):
        self.model, self.cfg, self.device = model, cfg, device
        self.net = ddp_model or model
        self.optim_cfg = optim or OptimConfig(lr=0.5, warmup_steps=2, schedule="constant", betas=[0.9, 0.99])
        self.optimizer = torch.optim.Adam(model.parameters(), lr=self.optim_cfg.lr, betas=tuple(self.optim_cfg.betas))
        self.clock = RunClock(cfg.steps, cfg.time_budget_s)
        self.scheduler = build_scheduler(self.optimizer, self.optim_cfg, self.clock)
        self.nan_steps = set(nan_steps)
        self.seen: list[list[int]] = []
        self.losses: list[float] = []

    def train_step(self, batch: dict, step: int) -> StepResult:
        self.model.train()
        self.seen.append(batch["index"].tolist())
        pred = self.net(batch["x"])
        loss = nn.functional.mse_loss(pred, batch["y"])
        if step in self.nan_steps:
            loss = loss * float("nan")
        ok, norm = optimizer_step(loss, self.optimizer, self.model.parameters(), self.optim_cfg.grad_clip, self.device)
        advance(self.scheduler)
        self.losses.append(float(loss.detach()))
        return StepResult(ok, {"loss": loss.detach()}, items=len(batch["x"]))

    def evaluate(self, step: int) -> dict[str, float]:
        self.model.eval()
        with torch.no_grad():
            data = ToyData()
            return {"eval_loss": float(nn.functional.mse_loss(self.model(data.x), data.y))}

    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def training_state(self) -> dict:
        return {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict()}

    def load_training_state(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])


def collate(items: list[dict]) -> dict:
    return torch.utils.data.default_collate(items)

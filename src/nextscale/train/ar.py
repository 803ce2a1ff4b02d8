"""AR training (`nextscale train-ar`): AAR or the next-token baseline on a token cache.

Cross-entropy over all scales with per-scale loss/accuracy, AdamW(0.9, 0.95) with weight decay
on matrices only, warmup + decay, grad clipping, periodic generation of samples for fixed
classes, and at the end a pipeline directory (`RUN/pipeline`) that `Pipeline.from_pretrained`
loads.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable, Literal

import torch
from torch import nn

from ..ar.config import ARConfig
from ..ar.windows import generate_windows, window_latent
from ..config import load_config, to_dict
from ..errors import ConfigError, DataError
from ..runtime import autocast, seed_everything
from .config import OptimConfig, TrainConfig
from .distributed import DistInfo, init_distributed, shutdown, wrap_ddp
from .loop import FitResult, StepResult, Trainer, optimizer_step
from .schedule import RunClock, advance, build_scheduler
from .token_cache import TokenCacheDataset, collate_tokens


@dataclasses.dataclass
class AROptimConfig(OptimConfig):
    betas: list[float] = dataclasses.field(default_factory=lambda: [0.9, 0.95])
    weight_decay: float = 0.05
    lr: float = 3e-4


@dataclasses.dataclass
class TokenDataConfig:
    """Where the tokens come from: a `cache-tokens` directory and the SAT that made it."""

    tokens: str = ""
    tokenizer: str = ""        # default: the tokenizer path recorded in the cache's index.json
    heldout: int = 0           # last N cached clips kept out of training for a validation loss


@dataclasses.dataclass
class ARLoopConfig(TrainConfig):
    sample_classes: list[str] = dataclasses.field(default_factory=list)   # default: the first 4 classes
    sample_cfg: float = 3.0
    sample_top_k: int = 0
    sample_top_p: float = 0.0
    sample_seed: int = 0
    # fast paths (same loss and gradients as the plain step, tests/test_train_fast_paths.py)
    compile: bool = False                           # torch.compile the step's forward + loss (inductor)
    attention_kernel: Literal["sdpa", "flex"] = "sdpa"   # flex: FlexAttention block mask where it can train


@dataclasses.dataclass
class ARTrainConfig:
    model: ARConfig
    data: TokenDataConfig = dataclasses.field(default_factory=TokenDataConfig)
    optim: AROptimConfig = dataclasses.field(default_factory=AROptimConfig)
    train: ARLoopConfig = dataclasses.field(default_factory=ARLoopConfig)


class LossForward(nn.Module):
    """Makes `model.loss(...)` the forward of a module, so DDP sees it (and syncs its gradients).

    `backend` (e.g. "inductor") compiles the loss: `model.prepare_batch` (host-side checks, teacher-forcing
    inputs) runs as it is, then `model.batch_loss`, forward and cross-entropy, runs as one compiled graph.
    """

    def __init__(self, model: nn.Module, backend: str | Callable | None = None):
        super().__init__()
        self.model = model
        self.compiled = None if backend is None else torch.compile(model.batch_loss, backend=backend)

    def forward(self, cond: Any, codes: Any, quantizer: Any = None, **context: Any) -> Any:
        if self.compiled is None:
            return self.model.loss(cond, codes, quantizer, **context)
        return self.compiled(cond, *self.model.prepare_batch(cond, codes, quantizer), **context)


def decay_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on weight matrices only; biases, norms and 1-D gains are left alone."""
    params = [p for p in model.parameters() if p.requires_grad]
    return [{"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]


def build_ar_model(cfg: ARConfig) -> nn.Module:
    from ..checkpoint import model_class

    return model_class(cfg.kind)(cfg)


def check_cache_fits(cfg: ARConfig, data: TokenCacheDataset) -> None:
    """The model must be built for the cache's schedule, codebook and condition; name any mismatch."""
    problems = []
    if list(cfg.scales) != data.scales and cfg.order == "scale":
        problems.append(f"model.scales {list(cfg.scales)} != cache scales {data.scales}")
    if cfg.codebook_size != data.codebook_size:
        problems.append(f"model.codebook_size {cfg.codebook_size} != cache codebook size {data.codebook_size}")
    if cfg.latent_dim != int(data.index["latent_dim"]):
        problems.append(f"model.latent_dim {cfg.latent_dim} != tokenizer latent dim {data.index['latent_dim']}")
    cond = data.condition
    if cfg.condition == "class":
        if cond.get("kind") != "class":
            problems.append(f"model.condition is 'class' but the cache holds {cond.get('kind')} vectors")
        elif data.classes and cfg.num_classes != len(data.classes):
            problems.append(f"model.num_classes {cfg.num_classes} != {len(data.classes)} classes in the cache")
    elif data.conds is None:
        problems.append("model.condition is 'vector' but the cache has no condition vectors "
                        "(make it with --conditioner text or clap)")
    elif cfg.cond_dim != data.conds.shape[1]:
        problems.append(f"model.cond_dim {cfg.cond_dim} != cache vector dim {data.conds.shape[1]}")
    if cfg.context_tokens and data.windows < 2:
        problems.append(f"model.context_tokens {cfg.context_tokens} needs consecutive windows to learn continuation, "
                        "but the cache holds one window per clip (cache clips longer than one window, e.g. "
                        "data.clip_seconds: 2 with data.sequence: true)")
    if problems:
        raise ConfigError(f"{data.directory}: the token cache does not fit the model: " + "; ".join(problems))


class ARTask:
    """One AR training step, its optimizer state, validation loss and sample generation."""

    throughput_unit = "tokens"
    curve_keys = ("loss", "val_loss")

    def __init__(self, cfg: ARTrainConfig, sat: Any, data: TokenCacheDataset, val: TokenCacheDataset | None,
                 dist: DistInfo, run_dir: Path):
        self.cfg, self.sat, self.val, self.dist, self.run_dir = cfg, sat, val, dist, run_dir
        self.classes = data.classes
        self.windows = data.windows
        self.device = dist.device
        self.model = build_ar_model(cfg.model).to(self.device)
        self.attention_kernel = self.model.use_attention_kernel(cfg.train.attention_kernel)
        self.net = wrap_ddp(LossForward(self.model, "inductor" if cfg.train.compile else None), dist)
        o = cfg.optim
        self.optimizer = torch.optim.AdamW(decay_groups(self.model, o.weight_decay), lr=o.lr, betas=tuple(o.betas),
                                           eps=o.eps)
        self.clock = RunClock(cfg.train.steps, cfg.train.time_budget_s)
        self.scheduler = build_scheduler(self.optimizer, o, self.clock)
        self.best_metric = "val_loss" if val is not None and len(val) else None
        self.sample_items = [data[i] for i in range(min(4, len(data)))]

    @property
    def quantizer(self) -> Any:
        return self.sat.quantizer if self.sat is not None else None

    def _cond(self, batch: dict[str, Any]) -> torch.Tensor:
        if self.cfg.model.condition == "vector":
            return batch["cond"].to(self.device)
        label = batch["label"].to(self.device)
        if bool((label < 0).any()):
            raise DataError("a cached clip has no class label (-1) but the model is class-conditioned")
        return label

    def _windows(self, batch: dict[str, Any], train: bool) -> tuple[list[torch.Tensor], dict[str, Any]]:
        """One window's K code maps per row, and the context of a context model.

        A cache of W consecutive windows trains continuation: each row takes a window drawn uniformly
        (the last one for validation); its context is the previous window's latent, and window 0 has
        none (the null context), so first windows stay in the mix. The cache holds each window's scales
        one after another, whatever order the model flattens them in.
        """
        flat = batch["codes"].to(self.device)
        B, W, L = flat.shape[0], self.windows, self.cfg.model.num_tokens
        scales = list(self.cfg.model.scales)
        if W == 1:
            return list(flat.split(scales, dim=1)), {}
        rows = flat.view(B, W, L)
        w = torch.randint(W, (B,), device=self.device) if train else torch.full((B,), W - 1, device=self.device)
        pick = torch.arange(B, device=self.device)
        codes = list(rows[pick, w].split(scales, dim=1))
        if self.model.context is None:
            return codes, {}
        previous = list(rows[pick, (w - 1).clamp(min=0)].split(scales, dim=1))
        with torch.no_grad():
            latent = window_latent(self.quantizer, previous)
        return codes, {"context": latent, "context_present": w > 0}

    def train_step(self, batch: dict[str, Any], step: int) -> StepResult:
        self.model.train()
        codes, context = self._windows(batch, train=True)
        with autocast(self.device, self.cfg.train.precision):
            out = self.net(self._cond(batch), codes, self.quantizer, **context)
        ok, norm = optimizer_step(out.loss, self.optimizer, self.model.parameters(), self.cfg.optim.grad_clip,
                                  self.device)
        advance(self.scheduler)
        metrics = {"loss": out.loss.detach(), "acc": out.scale_acc.mean(), "grad_norm": norm}
        for k, (l, a) in enumerate(zip(out.scale_loss.tolist(), out.scale_acc.tolist())):
            metrics[f"scale_loss/{k:02d}"], metrics[f"scale_acc/{k:02d}"] = l, a
        return StepResult(ok, metrics, items=int(batch["codes"].numel()))

    @torch.no_grad()
    def validation_loss(self) -> float:
        self.model.eval()
        loader = torch.utils.data.DataLoader(self.val, batch_size=self.cfg.train.batch_size, collate_fn=collate_tokens)
        total, count = 0.0, 0
        for batch in loader:
            codes, context = self._windows(batch, train=False)
            with autocast(self.device, self.cfg.train.precision):
                out = self.model.loss(self._cond(batch), codes, self.quantizer, **context)
            total += float(out.loss) * len(batch["codes"])
            count += len(batch["codes"])
        return total / max(count, 1)

    def sample_conditions(self) -> tuple[torch.Tensor, list[str]]:
        """Fixed conditions: the configured (or first four) classes, or the first cached vectors."""
        if self.cfg.model.condition == "class":
            names = self.cfg.train.sample_classes or self.classes[:4]
            if not names:
                ids = list(range(min(4, self.cfg.model.num_classes)))
                return torch.tensor(ids), [f"class{i}" for i in ids]
            unknown = [n for n in names if n not in self.classes]
            if unknown:
                raise ConfigError(f"train.sample_classes: unknown classes {unknown}; the cache has {self.classes}")
            return torch.tensor([self.classes.index(n) for n in names]), list(names)
        items = self.sample_items
        return torch.stack([it["cond"] for it in items]), [it["caption"] or f"item{i}" for i, it in enumerate(items)]

    @torch.no_grad()
    def evaluate(self, step: int) -> dict[str, float]:
        metrics = {}
        if self.best_metric:
            metrics["val_loss"] = self.validation_loss()
        if self.sat is not None:
            self.write_samples(step)
        self.model.train()
        return metrics

    def write_samples(self, step: int) -> None:
        from ..audio import save_audio
        from ..plots import plot_spectrogram

        self.model.eval()
        cond, names = self.sample_conditions()
        t = self.cfg.train
        gen = torch.Generator(device=self.device).manual_seed(t.sample_seed)
        windows = self.windows if self.model.context is not None else 1   # samples as long as the training clips
        with autocast(self.device, t.precision):
            codes = generate_windows(self.model, self.quantizer, cond.to(self.device), windows, cfg=t.sample_cfg,
                                     top_k=t.sample_top_k, top_p=t.sample_top_p, generator=gen)
        audio = self.sat.decode(codes).float().cpu()
        out = self.run_dir / "samples" / f"step_{step:07d}"
        for i, name in enumerate(names):
            stem = f"{i:02d}_{''.join(c if c.isalnum() else '_' for c in name)[:40]}"
            save_audio(out / f"{stem}.wav", audio[i], self.sat.sample_rate)
            plot_spectrogram(audio[i], self.sat.sample_rate, out / f"{stem}.png", title=f"{name} (step {step})")

    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def training_state(self) -> dict[str, Any]:
        return {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict()}

    def load_training_state(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])


def load_ar_train_config(config: Any, overrides: list[str] = ()) -> ARTrainConfig:
    return load_config(config, ARTrainConfig, list(overrides))


def _load_tokenizer(cfg: ARTrainConfig, data: TokenCacheDataset, device: torch.device) -> Any:
    from ..tokenizer.model import SAT

    path = cfg.data.tokenizer or data.index.get("tokenizer")
    if not path:
        if cfg.model.kind == "aar" or cfg.model.context_tokens:
            needs = "AAR training" if cfg.model.kind == "aar" else "a context model (its context is a window's latent)"
            raise ConfigError(f"data.tokenizer: {needs} needs the SAT checkpoint the cache was made with "
                              "(--tokenizer); the cache does not record one")
        return None
    sat = SAT.from_pretrained(path, map_location=device)
    want = data.index.get("tokenizer_sha256")
    if want:
        from .token_cache import file_sha256

        have = file_sha256(Path(path) / "model.safetensors") if (Path(path) / "model.safetensors").is_file() else None
        if have and have != want:
            raise ConfigError(f"data.tokenizer: {path} is not the tokenizer the cache {data.directory} was made with "
                              "(weights differ)")
    for p in sat.parameters():
        p.requires_grad_(False)
    return sat.eval()


def write_pipeline(run_dir: Path, sat: Any, model: nn.Module, data: TokenCacheDataset) -> Path | None:
    """RUN/pipeline: tokenizer + AR model + conditioner, loadable by Pipeline.from_pretrained."""
    from ..ar.conditioning import ClassConditioner, build_conditioner
    from ..pipeline import Pipeline

    if sat is None:
        return None
    cond = data.condition
    if cond.get("kind") == "class":
        classes = data.classes or [f"class{i}" for i in range(model.config.num_classes)]
        conditioner = ClassConditioner(classes)
    else:
        conditioner = build_conditioner({k: v for k, v in cond.items() if k != "dim"})
    return Pipeline(sat, model.eval(), conditioner).save_pretrained(run_dir / "pipeline")


def train_ar(cfg: ARTrainConfig, run_dir: str | Path, resume: bool = False,
             dist: DistInfo | None = None) -> FitResult:
    """Train on cfg.data.tokens; writes checkpoints, metrics, samples and RUN/pipeline."""
    run_dir = Path(run_dir)
    if not cfg.data.tokens:
        raise ConfigError("data.tokens: no token cache given (--tokens DIR, made by nextscale cache-tokens)")
    own_dist = dist is None
    dist = dist or init_distributed(cfg.train.device, cfg.train.dist_timeout_s)
    try:
        seed_everything(cfg.train.seed)
        full = TokenCacheDataset(cfg.data.tokens)
        check_cache_fits(cfg.model, full)
        n_val = cfg.data.heldout
        if n_val >= len(full):
            raise ConfigError(f"data.heldout: {n_val} leaves no training data (the cache has {len(full)} clips)")
        train = TokenCacheDataset(cfg.data.tokens, slice(0, len(full) - n_val)) if n_val else full
        val = TokenCacheDataset(cfg.data.tokens, slice(len(full) - n_val, None)) if n_val else None
        sat = _load_tokenizer(cfg, full, dist.device)
        seed_everything(cfg.train.seed)
        task = ARTask(cfg, sat, train, val, dist, run_dir)
        if dist.is_main:
            from ..io import atomic_write_json

            atomic_write_json(run_dir / "config.json", to_dict(cfg))
        trainer = Trainer(task, train, collate_tokens, cfg.train, run_dir, dist, to_dict(cfg), desc=f"train-{cfg.model.kind}")
        result = trainer.fit(resume=resume)
        if dist.is_main:
            write_pipeline(run_dir, sat, task.model, full)
        return result
    finally:
        if own_dist:
            shutdown()

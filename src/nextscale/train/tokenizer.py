"""SAT training (`nextscale train-tokenizer`): the losses of `tokenizer.losses`, on any dataset.

Generator: Adam(0.5, 0.9), warmup + cosine; time L1 + multi-resolution mel + commitment, plus
hinge adversarial + feature matching against the multi-scale STFT discriminator, which is
updated on 2 of every 3 steps (`train.adversarial: false` drops it for quick runs). Every
`eval_every` steps the held-out clips are reconstructed: WAVs, spectrograms, coarse-to-fine
previews and per-scale codebook usage go to RUN/samples/step_XXXXXXX/.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from ..config import load_config, to_dict
from ..data import DataConfig, build_dataset, collate_batch
from ..errors import ConfigError
from ..runtime import autocast, seed_everything
from ..tokenizer.losses import LossConfig
from ..tokenizer.model import SAT, SATConfig
from .config import OptimConfig, TrainConfig
from .distributed import DistInfo, init_distributed, shutdown, wrap_ddp
from .loop import FitResult, StepResult, Trainer, optimizer_step
from .schedule import RunClock, advance, build_scheduler


@dataclasses.dataclass
class SATOptimConfig(OptimConfig):
    betas: list[float] = dataclasses.field(default_factory=lambda: [0.5, 0.9])
    lr: float = 3e-4


@dataclasses.dataclass
class SATLoopConfig(TrainConfig):
    adversarial: bool = True       # false: time + mel + commitment only (quick runs)
    disc_every: int = 3            # the discriminator trains on all but one of every `disc_every` steps
    eval_clips: int = 4
    disc_windows: list[int] = dataclasses.field(default_factory=lambda: [1024, 2048, 512, 256, 128])


@dataclasses.dataclass
class SATTrainConfig:
    model: SATConfig
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    optim: SATOptimConfig = dataclasses.field(default_factory=SATOptimConfig)
    loss: LossConfig = dataclasses.field(default_factory=LossConfig)
    train: SATLoopConfig = dataclasses.field(default_factory=SATLoopConfig)

    def __post_init__(self) -> None:
        if self.data.sample_rate != self.model.sample_rate or self.data.clip_seconds != self.model.clip_seconds:
            raise ConfigError(f"data.sample_rate/clip_seconds ({self.data.sample_rate}, {self.data.clip_seconds}) must "
                              f"match model.sample_rate/clip_seconds ({self.model.sample_rate}, "
                              f"{self.model.clip_seconds})")
        if self.train.disc_every < 2:
            raise ConfigError(f"train.disc_every: must be >= 2, got {self.train.disc_every}")
        self.loss = dataclasses.replace(self.loss, sample_rate=self.model.sample_rate,
                                        adversarial=self.loss.adversarial and self.train.adversarial)


def load_sat_train_config(config: Any, overrides: list[str] = ()) -> SATTrainConfig:
    return load_config(config, SATTrainConfig, list(overrides))


def _split_batch(logits: list[torch.Tensor], n: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    return [x[:n] for x in logits], [x[n:] for x in logits]


class SATTask:
    throughput_unit = "samples"
    best_metric = "eval/mel"
    curve_keys = ("loss", "mel", "eval/mel")

    def __init__(self, cfg: SATTrainConfig, dist: DistInfo, run_dir: Path):
        from ..tokenizer.discriminator import MultiScaleSTFTDiscriminator
        from ..tokenizer.losses import GeneratorLoss

        self.cfg, self.dist, self.run_dir, self.device = cfg, dist, run_dir, dist.device
        self.model = SAT(cfg.model).to(self.device)
        self.net = wrap_ddp(self.model, dist)
        codec_stft = self.model.decoder.stft if cfg.model.codec == "fourier" else None
        self.loss_fn = GeneratorLoss(cfg.loss, codec_stft)
        o = cfg.optim
        adam = dict(lr=o.lr, betas=tuple(o.betas), eps=o.eps, weight_decay=o.weight_decay)
        self.opt_g = torch.optim.Adam(self.model.parameters(), **adam)
        self.clock = RunClock(cfg.train.steps, cfg.train.time_budget_s)
        self.sched_g = build_scheduler(self.opt_g, o, self.clock)
        self.disc = self.disc_net = self.opt_d = self.sched_d = None
        if cfg.loss.adversarial:
            self.disc = MultiScaleSTFTDiscriminator(cfg.train.disc_windows).to(self.device)
            self.disc_net = wrap_ddp(self.disc, dist)
            self.opt_d = torch.optim.Adam(self.disc.parameters(), **adam)
            self.sched_d = build_scheduler(self.opt_d, o, self.clock)
        self.heldout = None
        if dist.is_main and cfg.train.eval_every:
            data = build_dataset(cfg.data, "heldout")
            items = [data[i] for i in range(min(cfg.train.eval_clips, len(data)))]
            self.heldout = collate_batch(items) if items else None

    def _discriminator_step(self, wav: torch.Tensor, fake: torch.Tensor) -> tuple[bool, torch.Tensor]:
        with autocast(self.device, self.cfg.train.precision):
            logits, _ = self.disc_net(torch.cat([wav, fake.detach()]))
            from ..tokenizer.losses import discriminator_loss

            loss = discriminator_loss(*_split_batch(logits, len(wav)))
        ok, _ = optimizer_step(loss, self.opt_d, self.disc.parameters(), self.cfg.optim.grad_clip, self.device)
        return ok, loss.detach()

    def train_step(self, batch: dict[str, Any], step: int) -> StepResult:
        self.model.train()
        wav = batch["audio"].to(self.device, non_blocking=True)
        metrics: dict[str, Any] = {}
        with autocast(self.device, self.cfg.train.precision):
            out = self.net(wav)
        ok_d, disc_fake, disc_real = True, None, None
        if self.disc is not None:
            if step % self.cfg.train.disc_every != self.cfg.train.disc_every - 1:
                ok_d, metrics["d_loss"] = self._discriminator_step(wav, out.decoded)
            self.disc.requires_grad_(False)        # generator step: gradients flow through D, not into it
            with autocast(self.device, self.cfg.train.precision):
                disc_fake = self.disc(out.decoded)
                with torch.no_grad():
                    disc_real = self.disc(wav)
            self.disc.requires_grad_(True)
        with autocast(self.device, self.cfg.train.precision):
            terms = self.loss_fn(wav, out, disc_fake, disc_real)
        ok_g, norm = optimizer_step(terms["total"], self.opt_g, self.model.parameters(), self.cfg.optim.grad_clip,
                                    self.device)
        for sched in (self.sched_g, self.sched_d):
            if sched is not None:
                advance(sched)
        metrics.update({("loss" if k == "total" else k): v.detach() for k, v in terms.items()})
        metrics.update({"grad_norm": norm, "usage": out.usage.mean(), "perplexity": out.perplexity.mean()})
        return StepResult(ok_g and ok_d, metrics, items=len(wav))

    @torch.no_grad()
    def evaluate(self, step: int) -> dict[str, float]:
        from ..audio import save_audio
        from ..plots import plot_scale_previews, plot_spectrogram
        from ..tokenizer.losses import multi_resolution_mel_loss

        if self.heldout is None:
            return {}
        sat, c, sr = self.model.eval(), self.cfg.loss, self.model.sample_rate
        wav = self.heldout["audio"].to(self.device)
        out = sat(wav)
        mel = multi_resolution_mel_loss(wav, out.audio, sr, c.mel_bins, range(c.mel_min_exponent, c.mel_max_exponent + 1))
        folder = self.run_dir / "samples" / f"step_{step:07d}"
        for i in range(len(wav)):
            for name, audio in (("input", wav[i]), ("recon", out.audio[i])):
                save_audio(folder / f"clip{i}_{name}.wav", audio.float().cpu(), sr)
                plot_spectrogram(audio.float().cpu(), sr, folder / f"clip{i}_{name}.png", title=f"clip {i} {name}")
        previews = [sat.decode([code[:1] for code in out.codes[:k + 1]]).float().cpu()[0]
                    for k in range(len(out.codes))]
        for k, audio in enumerate(previews):
            save_audio(folder / f"clip0_scales{k + 1:02d}.wav", audio, sr)
        plot_scale_previews(previews, sr, folder / "clip0_previews.png", scales=sat.scales, title=f"step {step}")
        usage = {f"eval/usage/{k:02d}": float(u) for k, u in enumerate(out.usage)}
        from ..io import atomic_write_json

        atomic_write_json(folder / "codebook_usage.json",
                          {"scales": sat.scales, "usage": out.usage.tolist(), "perplexity": out.perplexity.tolist()})
        sat.train()
        return {"eval/mel": float(mel), "eval/usage_mean": float(out.usage.mean()), **usage}

    def lr(self) -> float:
        return self.opt_g.param_groups[0]["lr"]

    def training_state(self) -> dict[str, Any]:
        state = {"optimizer": self.opt_g.state_dict(), "scheduler": self.sched_g.state_dict()}
        if self.disc is not None:
            state |= {"discriminator": self.disc.state_dict(), "disc_optimizer": self.opt_d.state_dict(),
                      "disc_scheduler": self.sched_d.state_dict()}
        return state

    def load_training_state(self, state: dict[str, Any]) -> None:
        self.opt_g.load_state_dict(state["optimizer"])
        self.sched_g.load_state_dict(state["scheduler"])
        if self.disc is not None:
            if "discriminator" not in state:
                raise ConfigError("the checkpoint was trained without the discriminator; resume with "
                                  "train.adversarial=false or start a new run")
            self.disc.load_state_dict(state["discriminator"])
            self.opt_d.load_state_dict(state["disc_optimizer"])
            self.sched_d.load_state_dict(state["disc_scheduler"])


def train_tokenizer(cfg: SATTrainConfig, run_dir: str | Path, resume: bool = False,
                    dist: DistInfo | None = None) -> FitResult:
    """Train SAT; writes checkpoints, metrics, samples and the final model to RUN/tokenizer."""
    run_dir = Path(run_dir)
    own_dist = dist is None
    dist = dist or init_distributed(cfg.train.device, cfg.train.dist_timeout_s)
    try:
        seed_everything(cfg.train.seed)
        dataset = build_dataset(cfg.data, "train")
        task = SATTask(cfg, dist, run_dir)
        if dist.is_main:
            from ..io import atomic_write_json

            atomic_write_json(run_dir / "config.json", to_dict(cfg))
        trainer = Trainer(task, dataset, collate_batch, cfg.train, run_dir, dist, to_dict(cfg), desc="train-tokenizer")
        result = trainer.fit(resume=resume)
        if dist.is_main:
            task.model.eval().save_pretrained(run_dir / "tokenizer")
        return result
    finally:
        if own_dist:
            shutdown()

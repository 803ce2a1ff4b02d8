"""Training throughput: AR steps/s, tokens/s, data-loader time, peak memory and MFU; SAT clips/s.

Both time the real training step of `nextscale train-ar` / `train-tokenizer` (`ARTask` / `SATTask`:
autocast, the config's fast paths, the optimizer, clipping and metrics), fed the way training feeds it:
the AR step from a token cache that a random-weight SAT wrote to a temporary folder (so the loader
reads what training reads), the SAT step from the synthetic corpus rendered on the fly. The loader's
time for each batch is measured apart from the step's.

MFU = counted FLOPs per step / step time / the device's dense peak (`measure.known_peak_flops`;
unknown on CPU, so null there). FLOPs are those torch's counter sees in one eager forward and
backward at batch 1 (matrix products and attention, elementwise work excluded), times the batch.
"""
from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from .measure import PeakMemory, count_flops, summarize, time_call


@dataclasses.dataclass
class TrainSetting:
    """One AR training row: model size (as in the generation benchmark), batch and fast paths."""

    size: str                      # "tiny" or a depth d of the paper's family (width 64·d)
    batch: int
    precision: str = "fp32"        # "bf16": autocast on CUDA (a no-op on CPU)
    compile: bool = False
    attention_kernel: str = "sdpa"
    warmup: int = 2                # untimed steps first (compilation, allocator, k-means of a SAT)
    steps: int = 5


def batches(loader: torch.utils.data.DataLoader) -> Iterator[Any]:
    """The loader's batches, over and over (a step count need not fit the data)."""
    while True:
        yield from loader


def time_steps(step: Callable[[Any, int], Any], data: Iterator[Any], device: torch.device, warmup: int,
               steps: int) -> dict[str, Any]:
    """Warm up, then time `steps` calls of step(batch, i), each batch's loading timed on its own.

    Returns the step-time summary (median, IQR, ...), `loader_s` (median time to get a batch), `warmup_s`
    (the untimed steps together, compilation included), peak memory over the timed steps and the
    last step's result.
    """
    clock = PeakMemory(device)
    warmup_s = time_call(lambda: [step(next(data), i) for i in range(warmup)], device)
    clock.reset()
    times, loads, result = [], [], None
    for i in range(steps):
        box: list[Any] = []
        loads.append(time_call(lambda: box.append(next(data)), device))
        times.append(time_call(lambda: box.append(step(box[0], warmup + i)), device))
        result = box[1]
    summary, loader = summarize(times), summarize(loads)["median_s"]
    return dict(times_s=times, **summary, loader_s=loader, loader_share=loader / (loader + summary["median_s"]),
                warmup_s=warmup_s, peak_memory_bytes=clock.read(), peak_memory_kind=clock.kind, result=result)


def token_cache(sat: Any, clips: int, directory: Path, device: torch.device) -> Any:
    """A class-conditioned token cache of `clips` synthetic clips coded by `sat`, read back as training reads it."""
    from ..data import SynthDataset, collate_batch
    from ..train.token_cache import TokenCacheDataset, build_token_cache

    data = SynthDataset(clips, seed=0, sample_rate=sat.sample_rate, clip_seconds=sat.clip_samples / sat.sample_rate)
    build_token_cache(sat, data, directory, collate_batch, batch_size=16, device=device, progress=False)
    return TokenCacheDataset(directory)


def ar_train_config(setting: TrainSetting, sat: Any, data: Any, device: torch.device) -> Any:
    """The AR training config of a row: the generation benchmark's model of that size, class-conditioned."""
    from ..ar.config import ARConfig
    from ..train.ar import ARLoopConfig, ARTrainConfig, TokenDataConfig
    from .generation import ar_config

    model = ARConfig(**(ar_config(setting.size, "aar", sat) | dict(condition="class", num_classes=len(data.classes))))
    loop = ARLoopConfig(steps=setting.warmup + setting.steps, batch_size=setting.batch, device=str(device),
                        precision=setting.precision, compile=setting.compile, attention_kernel=setting.attention_kernel,
                        log_every=0, ckpt_every=0, eval_every=0, progress=False, tensorboard=False)
    return ARTrainConfig(model=model, data=TokenDataConfig(tokens=str(data.directory)), train=loop)


def ar_flops_per_sequence(cfg: Any, sat: Any, data: Any, device: torch.device) -> int:
    """Counted FLOPs of one eager forward and backward of a fresh model on one cached sequence."""
    from ..train.ar import build_ar_model
    from ..train.token_cache import collate_tokens

    model = build_ar_model(cfg.model).to(device)
    one = collate_tokens([data[0]])
    codes = list(one["codes"].to(device).split(list(cfg.model.scales), dim=1))
    flops = count_flops(lambda: model.loss(one["label"].to(device), codes, sat.quantizer).loss.backward())
    del model
    return flops


def ar_train_row(setting: TrainSetting, device: torch.device, peak_flops: float | None) -> dict[str, Any]:
    """Time AR training steps of one setting; returns the JSON row."""
    from ..train.ar import ARTask
    from ..train.distributed import DistInfo
    from ..train.token_cache import collate_tokens
    from .generation import BenchSettings, random_sat, sat_config

    torch.manual_seed(0)
    sat = random_sat(sat_config(setting.size, BenchSettings(), rvq=False), device)
    with tempfile.TemporaryDirectory() as tmp:
        data = token_cache(sat, max(2 * setting.batch, 16), Path(tmp) / "tokens", device)
        cfg = ar_train_config(setting, sat, data, device)
        flops = ar_flops_per_sequence(cfg, sat, data, device) * setting.batch
        task = ARTask(cfg, sat, data, None, DistInfo(device=device), Path(tmp) / "run")
        loader = torch.utils.data.DataLoader(data, batch_size=setting.batch, shuffle=True, drop_last=True,
                                             collate_fn=collate_tokens, generator=torch.Generator().manual_seed(0))
        timed = time_steps(task.train_step, batches(loader), device, setting.warmup, setting.steps)
    result = timed.pop("result")
    m, median = cfg.model, timed["median_s"]
    tokens = setting.batch * m.num_tokens
    return dict(dataclasses.asdict(setting), ar_depth=m.depth, width=m.width, heads=m.heads,
                parameters=task.model.num_parameters(), attention_kernel_used=task.attention_kernel,
                tokens_per_step=tokens, **timed, steps_per_s=1 / median, tokens_per_s=tokens / median,
                flops_per_step=flops, flops_per_s=flops / median, peak_flops=peak_flops,
                mfu=None if peak_flops is None else flops / median / peak_flops,
                floor_s=None if peak_flops is None else flops / peak_flops, last_loss=float(result.metrics["loss"]))


def sat_train_row(config: str, batch: int, device: torch.device, precision: str, warmup: int, steps: int,
                  adversarial: bool = True) -> dict[str, Any]:
    """Time SAT training steps of a packaged config at `batch`; returns the JSON row (clips/s).

    adversarial=False drops the discriminator whatever the config says (the CPU recipes train without it).
    """
    from ..data import build_dataset, collate_batch
    from ..train.distributed import DistInfo
    from ..train.tokenizer import SATTask, load_sat_train_config

    overrides = [f"train.batch_size={batch}", f"train.device={device}", f"train.precision={precision}",
                 "train.eval_every=0", "train.progress=false", "train.tensorboard=false"]
    overrides += [] if adversarial else ["train.adversarial=false"]
    cfg = load_sat_train_config(config, overrides)
    torch.manual_seed(0)
    loader = torch.utils.data.DataLoader(build_dataset(cfg.data, "train"), batch_size=batch, shuffle=True,
                                         collate_fn=collate_batch, generator=torch.Generator().manual_seed(0))
    with tempfile.TemporaryDirectory() as tmp:
        task = SATTask(cfg, DistInfo(device=device), Path(tmp))
        timed = time_steps(task.train_step, batches(loader), device, warmup, steps)
    timed.pop("result")
    return dict(config=config, codec=cfg.model.codec, adversarial=cfg.loss.adversarial, batch=batch,
                precision=precision, parameters=task.model.num_parameters(), warmup=warmup, steps=steps, **timed,
                steps_per_s=1 / timed["median_s"], clips_per_s=batch / timed["median_s"])

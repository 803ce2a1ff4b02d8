"""Pipeline: prompts → audio in one call, joining the tokenizer (SAT), an AR model (AAR or the
next-token baseline) and a conditioner.

It owns the checks that the three parts were made for each other (a tokenizer with another scale
schedule or codebook would decode garbage without any error), seeding, batching, device and
precision handling; the models do the work.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import Tensor
from tqdm.auto import tqdm

from .ar.conditioning import Conditioner, build_conditioner, check_prompts
from .ar.config import fit_problems
from .ar.windows import check_windows, default_overlap, generate_windows
from .checkpoint import AR_KINDS, FORMAT_VERSION, load_model, resolve_model_dir
from .errors import CheckpointError, ConfigError, NextscaleError
from .io import atomic_directory, atomic_write_json, read_json
from .runtime import autocast

PIPELINE_FILE = "pipeline.json"
TOKENIZER_DIR = "tokenizer"
AR_DIR = "ar"
# what generation uses when neither the caller nor the pipeline (pipeline.json "sampling") says otherwise
DEFAULT_SAMPLING: dict[str, float] = {"cfg": 4.0, "top_k": 200, "top_p": 0.95, "temperature": 1.0}
# On CPU the decoder runs fastest on up to about this many latent frames a call (rows x frames): with 2 threads
# the demo's Fourier SAT decodes 48 clips of 10 s in one call at 3.6 ms per window and row, in calls of 4 clips
# at 2.0, as fast as one-window clips (the activations of the big call miss the caches; 48 one-window clips:
# 2.0 ms in one call or in calls of 16).
CPU_DECODE_FRAMES = 3000


@dataclass
class GenerationOutput:
    """What `Pipeline.generate` returns (and calling the pipeline with return_codes or previews)."""

    audio: Tensor                          # (B, 1, S) float32
    prompts: list[str]
    sample_rate: int
    codes: list[Tensor] | None = None      # K LongTensors (B, W * n_k): W windows, one for a clip
    previews: list[Tensor] | None = None   # previews[k] (B, 1, S) decoded from scales 0..k
    overlap: int = 0                       # latent frames the windows share: `sat.decode(codes, overlap=...)`


def compatibility_problems(sat: Any, ar: Any, conditioner: Conditioner) -> list[str]:
    """Every way the AR model does not fit the tokenizer or the conditioner, in words (empty if it fits)."""
    cfg = ar.config
    problems = fit_problems(cfg, sat)
    if cfg.condition == "class":
        if conditioner.is_vector:
            problems.append(f"AR model is class-conditioned but the conditioner is {conditioner.kind!r} (vectors)")
        elif conditioner.dim != cfg.num_classes:
            problems.append(f"conditioner has {conditioner.dim} classes but the AR model's class table has {cfg.num_classes}")
    elif not conditioner.is_vector:
        problems.append(f"AR model takes {cfg.cond_dim}-dim condition vectors but the conditioner gives class ids")
    elif conditioner.dim != cfg.cond_dim:
        problems.append(f"conditioner ({conditioner.kind}) gives {conditioner.dim}-dim vectors but the AR model "
                        f"expects cond_dim {cfg.cond_dim}")
    return problems


def load_ar(directory: str | Path, map_location: str | torch.device = "cpu"):
    """An AR model directory of either kind (AAR or NextTokenAR), chosen from its config.json."""
    return load_model(directory, map_location, kinds=AR_KINDS)


class Pipeline:
    """`Pipeline(sat, ar, conditioner)`; `pipe(["a high bell struck twice"], cfg=4, seed=0)` → (B, 1, S).

    `sampling` holds the settings this model samples best with (saved in pipeline.json): a model
    trained on a small corpus wants a far smaller top-k than a large one, so each pipeline carries
    its own; arguments given to `generate` override them, and `DEFAULT_SAMPLING` fills the rest.
    """

    def __init__(self, sat: Any, ar: Any, conditioner: Conditioner, sampling: dict[str, float] | None = None):
        problems = compatibility_problems(sat, ar, conditioner)
        if problems:
            raise CheckpointError("the pipeline's parts do not fit: " + "; ".join(problems))
        self.sat, self.ar, self.conditioner = sat.eval(), ar.eval(), conditioner
        self.sampling = check_sampling_defaults(sampling or {})

    def sampling_settings(self, **given: float | None) -> dict[str, float]:
        """cfg / top_k / top_p / temperature: what the caller gave, else the pipeline's, else the defaults."""
        return DEFAULT_SAMPLING | self.sampling | {k: v for k, v in given.items() if v is not None}

    # ---- plumbing --------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.ar.parameters()).device

    @property
    def sample_rate(self) -> int:
        return int(self.sat.sample_rate)

    @property
    def num_samples(self) -> int:
        """Length S of a generated clip (the tokenizer's clip length)."""
        return int(self.sat.clip_samples)

    def overlap_of(self, overlap: int | None) -> int:
        """The windows' overlap in latent frames: the given one (checked against the tokenizer's windows) or,
        when None, `ar.windows.default_overlap` of the window."""
        overlap = default_overlap(self.sat.num_frames) if overlap is None else overlap
        self.sat.layout(overlap)
        return overlap

    def length_of(self, seconds: float, independent_windows: bool = False, overlap: int | None = None) -> int:
        """Samples in `seconds` of audio; more than one window needs an AR model trained with context tokens
        (unless the windows are asked to be independent)."""
        if not isinstance(seconds, (int, float)) or not seconds > 0 or seconds != seconds:
            raise NextscaleError(f"seconds: expected a positive number of seconds, got {seconds!r}")
        length = max(1, int(round(seconds * self.sample_rate)))
        check_windows(self.ar, self.sat.num_windows(length, self.overlap_of(overlap)), independent_windows,
                      asked=f"seconds={seconds:g} ({self.sat.window_samples / self.sample_rate:g} s windows)")
        return length

    def to(self, device: str | torch.device) -> "Pipeline":
        self.sat.to(device)
        self.ar.to(device)
        self.conditioner.to(device)
        return self

    def __repr__(self) -> str:
        return (f"Pipeline(sat: {len(self.sat.scales)} scales, {self.ar.kind}: "
                f"{self.ar.num_parameters() / 1e6:.1f} M params, conditioner: {self.conditioner.kind})")

    # ---- save / load -----------------------------------------------------------------------
    def save_pretrained(self, directory: str | Path) -> Path:
        """DIR/pipeline.json + DIR/tokenizer/ + DIR/ar/, written atomically as one directory. A
        conditioner model that was loaded from inside a pipeline directory is copied along."""
        return write_pipeline_dir(directory, self.sat, self.ar, self.conditioner.to_config(), self.sampling,
                                  bundled=self.conditioner.bundled_from)

    @classmethod
    def from_pretrained(cls, path_or_id: str | Path, device: str | torch.device = "cpu") -> "Pipeline":
        from .tokenizer.model import SAT

        directory = resolve_model_dir(path_or_id)
        manifest = read_pipeline_manifest(directory)
        sat = SAT.from_pretrained(directory / TOKENIZER_DIR, map_location=device)
        ar = load_ar(directory / AR_DIR, map_location=device)
        try:
            conditioner = build_conditioner(manifest["conditioner"], base_dir=directory, device=device)
        except ConfigError as e:
            raise CheckpointError(f"{directory / PIPELINE_FILE}: {e}") from None
        try:
            return cls(sat, ar, conditioner, manifest.get("sampling"))
        except (CheckpointError, ConfigError) as e:
            raise CheckpointError(f"{directory / PIPELINE_FILE}: {e}") from None

    # ---- generation ------------------------------------------------------------------------
    def encode_condition(self, prompts: Sequence[str]) -> Tensor:
        """Prompts → class ids (B,) or condition vectors (B, dim) on the pipeline's device."""
        return self.conditioner.encode_text(prompts).to(self.device)

    def __call__(self, prompts: Sequence[str] | str, cfg: float | None = None, top_k: int | None = None,
                 top_p: float | None = None, temperature: float | None = None, seed: int = 0, batch_size: int = 16, return_codes: bool = False,
                 previews: bool = False, progress: bool | None = None, seconds: float | None = None,
                 overlap: int | None = None) -> Tensor | GenerationOutput:
        """One clip per prompt → audio (B, 1, S); a GenerationOutput instead when codes or previews
        are asked for. Sampling settings left None come from `sampling_settings`. The same seed
        gives the same audio on the same device and batch size."""
        out = self.generate(prompts, cfg=cfg, top_k=top_k, top_p=top_p, temperature=temperature, seed=seed,
                            batch_size=batch_size, previews=previews, progress=progress, seconds=seconds,
                            overlap=overlap)
        if not return_codes:
            out.codes = None
        return out if (return_codes or previews) else out.audio

    @torch.no_grad()
    def generate(self, prompts: Sequence[str] | str, cfg: float | None = None, top_k: int | None = None,
                 top_p: float | None = None, temperature: float | None = None, seed: int = 0, batch_size: int = 16,
                 previews: bool = False, progress: bool | None = None, seconds: float | None = None,
                 independent_windows: bool = False, overlap: int | None = None) -> GenerationOutput:
        """Like calling the pipeline, but always returns audio and codes (and previews if asked).

        `seconds` longer than one window generates window after window, each continuing the previous
        one (a model trained with context tokens), and decodes the joined codes once; codes are then
        per scale (B, W * n_k), window after window, as `SAT.encode` writes them for long audio.
        `overlap`: latent frames neighbouring windows share, crossfaded in decoding (None: a sixth of a
        window, `ar.windows.default_overlap`; 0: side by side); the output records it.
        `independent_windows` makes each window alone: the chunked floor that joins are measured against.
        """
        prompts = check_prompts(prompts)
        settings = self.sampling_settings(cfg=cfg, top_k=top_k, top_p=top_p, temperature=temperature)
        cfg, top_k, top_p, temperature = (settings[k] for k in ("cfg", "top_k", "top_p", "temperature"))
        top_k = int(top_k)
        check_sampling(cfg, top_k, top_p, temperature, batch_size)
        overlap = self.overlap_of(overlap)
        length = self.num_samples if seconds is None else self.length_of(seconds, independent_windows, overlap)
        windows = self.sat.num_windows(length, overlap)
        device = self.device
        generator = torch.Generator(device=device).manual_seed(int(seed))
        chunks = [prompts[i:i + batch_size] for i in range(0, len(prompts), batch_size)]
        show = len(chunks) > 1 if progress is None else progress
        audio, codes, scale_audio = [], [], []
        for chunk in tqdm(chunks, desc="generating", unit="batch", disable=not show):
            cond = self.encode_condition(chunk)
            with autocast(device):
                chunk_codes = generate_windows(self.ar, self.sat.quantizer, cond, windows, cfg=cfg, top_k=top_k,
                                               top_p=top_p, temperature=temperature, generator=generator,
                                               independent=independent_windows, overlap=overlap)
            audio.append(self.decode(chunk_codes, length, overlap))
            codes.append(chunk_codes)
            if previews:
                scale_audio.append([self.decode(chunk_codes[:k + 1], length, overlap) for k in range(len(chunk_codes))])
        out = GenerationOutput(torch.cat(audio), prompts, self.sample_rate,
                               codes=[torch.cat(scale) for scale in zip(*codes)], overlap=overlap)
        if previews:
            out.previews = [torch.cat(scale) for scale in zip(*scale_audio)]
        return out

    def decode(self, codes: Sequence[Tensor], length: int | None = None, overlap: int = 0) -> Tensor:
        """`sat.decode` of K code maps (B, W * n_k) -> float (B, 1, S); on CPU in calls of about
        `CPU_DECODE_FRAMES` latent frames (each clip still in one pass: the rows are independent)."""
        rows = codes[0].shape[0]
        step = rows
        if self.device.type == "cpu":
            frames = self.sat.layout(overlap).total_frames(codes[0].shape[1] // self.sat.scales[0])
            step = max(1, CPU_DECODE_FRAMES // frames)
        return torch.cat([self.sat.decode([c[i:i + step] for c in codes], length=length, overlap=overlap).float()
                          for i in range(0, rows, step)])


def check_sampling(cfg: float, top_k: int, top_p: float, temperature: float, batch_size: int) -> None:
    """Sampling settings a user typed, checked before any work is done."""
    if cfg < 0:
        raise NextscaleError(f"cfg must be >= 0 (0 turns guidance off), got {cfg}")
    if top_k < 0:
        raise NextscaleError(f"top_k must be >= 0 (0 keeps every token), got {top_k}")
    if not 0.0 <= top_p <= 1.0:
        raise NextscaleError(f"top_p must be in [0, 1] (0 or 1 keeps every token), got {top_p}")
    if temperature <= 0:
        raise NextscaleError(f"temperature must be > 0, got {temperature}")
    if batch_size < 1:
        raise NextscaleError(f"batch_size must be >= 1, got {batch_size}")


def check_sampling_defaults(sampling: Any) -> dict[str, float]:
    """A pipeline's own sampling settings: a mapping of known names to valid numbers."""
    if not isinstance(sampling, dict):
        raise ConfigError(f"sampling: expected a mapping of {', '.join(DEFAULT_SAMPLING)}, got {sampling!r}")
    unknown = sorted(set(sampling) - set(DEFAULT_SAMPLING))
    if unknown:
        raise ConfigError(f"sampling: unknown setting(s) {unknown}; known: {', '.join(DEFAULT_SAMPLING)}")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in sampling.values()):
        raise ConfigError(f"sampling: every value must be a number, got {sampling!r}")
    merged = DEFAULT_SAMPLING | sampling
    if float(merged["top_k"]) != int(merged["top_k"]):
        raise ConfigError(f"sampling.top_k: must be a whole number, got {merged['top_k']}")
    try:
        check_sampling(merged["cfg"], int(merged["top_k"]), merged["top_p"], merged["temperature"], 1)
    except NextscaleError as e:
        raise ConfigError(f"sampling: {e}") from None
    return dict(sampling)


def write_pipeline_dir(directory: str | Path, sat: Any, ar: Any, conditioner: dict[str, Any],
                       sampling: dict[str, float] | None = None, bundled: str | Path | None = None,
                       metadata: dict[str, dict[str, Any]] | None = None) -> Path:
    """The pipeline directory format, in one place: DIR/pipeline.json + DIR/tokenizer/ + DIR/ar/ (+ a
    bundled conditioner model), written atomically as one directory. `metadata` goes into the
    tokenizer's / AR model's config.json (`{"tokenizer": {...}, "ar": {...}}`)."""
    directory, metadata = Path(directory), metadata or {}
    with atomic_directory(directory) as tmp:
        sat.save_pretrained(tmp / TOKENIZER_DIR, metadata=metadata.get("tokenizer"))
        ar.save_pretrained(tmp / AR_DIR, metadata=metadata.get("ar"))
        if bundled is not None:
            shutil.copytree(bundled, tmp / conditioner["model"])
        manifest = {"format_version": FORMAT_VERSION, "kind": "pipeline", "conditioner": conditioner}
        atomic_write_json(tmp / PIPELINE_FILE, manifest | ({"sampling": sampling} if sampling else {}))
    return directory


def set_pipeline_sampling(directory: str | Path, sampling: dict[str, float]) -> None:
    """Record the sampling settings a saved pipeline generates best with (pipeline.json "sampling")."""
    directory = Path(directory)
    manifest = read_pipeline_manifest(directory)
    try:
        manifest["sampling"] = check_sampling_defaults(dict(sampling))
    except ConfigError as e:
        raise CheckpointError(f"{directory / PIPELINE_FILE}: {e}") from None
    atomic_write_json(directory / PIPELINE_FILE, manifest)


def read_pipeline_manifest(directory: Path) -> dict[str, Any]:
    """pipeline.json, checked: kind, version and a conditioner entry."""
    path = directory / PIPELINE_FILE
    if not path.is_file():
        raise CheckpointError(f"{directory}: not a pipeline directory ({PIPELINE_FILE} missing; a lone model "
                              "directory loads with SAT/AAR.from_pretrained)")
    manifest = read_json(path, CheckpointError)
    if not isinstance(manifest, dict) or manifest.get("kind") != "pipeline" or "conditioner" not in manifest:
        raise CheckpointError(f"{path}: expected {{'kind': 'pipeline', 'conditioner': {{...}}}}")
    version = manifest.get("format_version", 0)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(f"{path}: format version {version!r} is newer than this nextscale understands "
                              f"({FORMAT_VERSION}); upgrade nextscale")
    return manifest

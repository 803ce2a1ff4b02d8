"""SAT: codec encoder -> MSRQ (K scales of growing length) -> codec decoder.

The codec is `seanet` (the published architecture) or `fourier` (STFT + ConvNeXt at the latent
frame rate; see fourier.py); MSRQ, the API and the checkpoint format are the same for both.
`SAT.from_config("sat-paper")` (a packaged config) builds the published model; `encode` gives K
LongTensors (B, n_k), `decode(codes[:k])` the coarse-to-fine preview from the first k scales.

Audio of any length: the schedule covers one window of T latent frames (one clip), so a longer
signal is W windows (the last one zero-padded), laid out by `layout.WindowLayout`: side by side, or
every T - o frames with an `overlap` of o frames crossfaded. The codec runs over the whole signal at
once and MSRQ quantises window by window; each scale's codes are then (B, W * n_k), window after
window, which for one window is the familiar (B, n_k). Decoding runs the decoder once over the
windows' joined latent, so there are no independent chunks and no clicks at the joins of chunked
decoding. The overlap is not in the codes: whoever decodes them passes the one they were made with
(a code file records it).
"""
from __future__ import annotations

import dataclasses
import math
from typing import ClassVar, Literal, Sequence

import torch
from torch import nn

from ..checkpoint import Pretrained
from ..errors import ConfigError
from .layout import WindowLayout
from .msrq import MSRQ
from .schedules import make_schedule, num_frames_for
from .seanet import SEANetDecoder, SEANetEncoder


@dataclasses.dataclass
class SATConfig:
    """The `model:` section of a tokenizer config. Defaults are the published AudioSet SAT."""

    sample_rate: int = 24000
    clip_seconds: float = 1.0
    codec: Literal["seanet", "fourier"] = "seanet"
    hop: int | None = None          # latent hop in samples; None: the product of `ratios` (320)
    # SEANet (codec: seanet)
    n_filters: int = 32
    dimension: int = 1024
    ratios: list[int] = dataclasses.field(default_factory=lambda: [8, 5, 4, 2])
    n_residual_layers: int = 1
    lstm_layers: int = 2
    kernel_size: int = 7
    last_kernel_size: int = 7
    residual_kernel_size: int = 3
    dilation_base: int = 2
    compress: int = 2
    # Fourier (codec: fourier): STFT size and the ConvNeXt stacks on each side
    n_fft: int = 1024
    convnext_width: int = 256
    convnext_layers: int = 4
    convnext_mlp_ratio: float = 3.0
    fourier_phase: Literal["direct", "cumulative", "centred", "partials", "framewise"] = "direct"   # see FourierDecoder
    fourier_encoder_phase: bool = False      # the encoder also sees each bin's phase (see FourierEncoder)
    fourier_encoder_if: bool = False         # ... or each bin's phase advance off its centre (see FourierEncoder)
    fourier_encoder_pitch: bool = False      # ... or the input's estimated pitch, as a bump over the pitch grid
    fourier_long_n_fft: int = 0              # > 0: a second, longer STFT beside n_fft (see fourier.MultiSTFT)
    fourier_refiner: int = 0                 # > 0: hidden channels of a CNN along the bins after the head (0: none)
    fourier_harmonics: int = 0               # > 0: a harmonic source (one f0, this many harmonics; see harmonic.py)
    fourier_level: bool = False              # a per-frame output gain trained on the input's frame energies (fourier.LevelHead)
    # MSRQ
    latent_dim: int = 64
    codebook_size: int = 1024
    schedule: Literal["quadratic", "linear", "log", "rvq", "explicit"] = "quadratic"
    num_scales: int = 16
    scales: list[int] | None = None
    phi: Literal["partial", "unshared", "shared", "none"] = "partial"
    phi_count: int = 6
    phi_kernel: int = 9
    phi_ratio: float = 0.5
    ema_decay: float = 0.99
    ema_epsilon: float = 1e-5
    dead_code_threshold: float = 2.0
    kmeans_iters: int = 50

    def __post_init__(self) -> None:
        positive = ("sample_rate", "n_filters", "dimension", "lstm_layers", "kernel_size", "last_kernel_size",
                    "residual_kernel_size", "dilation_base", "compress", "latent_dim", "codebook_size", "kmeans_iters")
        for name in positive:
            if getattr(self, name) < (0 if name == "lstm_layers" else 1):
                raise ConfigError(f"model.{name}: must be positive, got {getattr(self, name)}")
        if self.n_residual_layers < 0:
            raise ConfigError(f"model.n_residual_layers: must be >= 0, got {self.n_residual_layers}")
        if not self.ratios or any(r < 1 for r in self.ratios):
            raise ConfigError(f"model.ratios: need at least one stride, each >= 1, got {self.ratios}")
        if self.n_filters % self.compress:
            raise ConfigError(f"model.n_filters: must be divisible by compress={self.compress}, got {self.n_filters}")
        if self.codec not in ("seanet", "fourier"):
            raise ConfigError(f"model.codec: expected 'seanet' or 'fourier', got {self.codec!r}")
        if self.hop is not None and self.hop < 1:
            raise ConfigError(f"model.hop: must be positive, got {self.hop}")
        if self.codec == "seanet" and self.hop not in (None, math.prod(self.ratios)):
            raise ConfigError(f"model.hop: the seanet codec's hop is the product of model.ratios "
                              f"({math.prod(self.ratios)}), got {self.hop}; change ratios or leave hop unset")
        if self.codec == "fourier":
            from .fourier import PHASE_MODES, check_framing

            check_framing(self.n_fft, self.hop_length)
            if self.fourier_long_n_fft:
                if self.fourier_long_n_fft <= self.n_fft:
                    raise ConfigError(f"model.fourier_long_n_fft: the second STFT must be longer than model.n_fft "
                                      f"({self.n_fft}), got {self.fourier_long_n_fft}; 0 turns it off")
                check_framing(self.fourier_long_n_fft, self.hop_length)
            if self.fourier_phase not in PHASE_MODES:
                raise ConfigError(f"model.fourier_phase: expected one of {', '.join(PHASE_MODES)}, "
                                  f"got {self.fourier_phase!r}")
            if self.fourier_refiner < 0:
                raise ConfigError(f"model.fourier_refiner: hidden channels must be >= 0 (0: none), "
                                  f"got {self.fourier_refiner}")
            if self.fourier_harmonics < 0:
                raise ConfigError(f"model.fourier_harmonics: must be >= 0 (0: no harmonic source), "
                                  f"got {self.fourier_harmonics}")
            for name in ("convnext_width", "convnext_layers", "convnext_mlp_ratio"):
                if getattr(self, name) <= 0:
                    raise ConfigError(f"model.{name}: must be positive, got {getattr(self, name)}")
        if self.clip_seconds <= 0:
            raise ConfigError(f"model.clip_seconds: must be > 0, got {self.clip_seconds}")
        if self.phi_kernel % 2 == 0:
            raise ConfigError(f"model.phi_kernel: must be odd so Phi keeps the length, got {self.phi_kernel}")
        if self.phi == "partial" and self.phi_count < 1:
            raise ConfigError(f"model.phi_count: partially shared Phi needs >= 1 conv, got {self.phi_count}")
        if not 0.0 <= self.phi_ratio <= 1.0:
            raise ConfigError(f"model.phi_ratio: must be in [0, 1], got {self.phi_ratio}")
        if not 0.0 < self.ema_decay < 1.0:
            raise ConfigError(f"model.ema_decay: must be in (0, 1), got {self.ema_decay}")
        if self.scales is not None and self.schedule != "explicit":
            raise ConfigError(f"model.scales: an explicit list needs model.schedule=explicit (schedule is "
                              f"{self.schedule!r})")
        try:
            self.resolved_scales()
        except ConfigError as e:
            raise ConfigError(f"model.schedule: {e}") from None

    @property
    def hop_length(self) -> int:
        return self.hop if self.hop is not None else math.prod(self.ratios)

    @property
    def num_frames(self) -> int:
        return num_frames_for(self.clip_seconds, self.sample_rate, self.hop_length)

    def resolved_scales(self) -> list[int]:
        return make_schedule(self.schedule, self.num_frames, self.num_scales, self.scales)


def build_codec(config: SATConfig) -> tuple[nn.Module, nn.Module]:
    """The (encoder, decoder) pair of `config.codec`: audio (B, 1, S) <-> latent (B, dimension, T)."""
    if config.codec == "fourier":
        from .fourier import FourierDecoder, FourierEncoder

        parts = dict(n_fft=config.n_fft, hop=config.hop_length, width=config.convnext_width,
                     layers=config.convnext_layers, mlp_ratio=config.convnext_mlp_ratio, dimension=config.dimension)
        parts["long_n_fft"] = config.fourier_long_n_fft
        return (FourierEncoder(**parts, phase=config.fourier_encoder_phase,
                               instantaneous_frequency=config.fourier_encoder_if,
                               pitch=config.fourier_encoder_pitch, sample_rate=config.sample_rate),
                FourierDecoder(**parts, phase=config.fourier_phase, refiner=config.fourier_refiner,
                               harmonics=config.fourier_harmonics, sample_rate=config.sample_rate,
                               level=config.fourier_level))
    seanet = dict(channels=1, dimension=config.dimension, n_filters=config.n_filters, ratios=config.ratios,
                  n_residual_layers=config.n_residual_layers, lstm_layers=config.lstm_layers,
                  kernel_size=config.kernel_size, last_kernel_size=config.last_kernel_size,
                  residual_kernel_size=config.residual_kernel_size, dilation_base=config.dilation_base,
                  compress=config.compress)
    return SEANetEncoder(**seanet), SEANetDecoder(**seanet)


@dataclasses.dataclass
class SATOutput:
    """One reconstruction pass. `audio` has the input's length; losses are scalars."""

    audio: torch.Tensor            # (B, 1, S)
    codes: list[torch.Tensor]      # K LongTensors (B, W * n_k)
    commit_loss: torch.Tensor      # scalar (zero in eval mode)
    usage: torch.Tensor            # (K,) fraction of each codebook used by this batch
    perplexity: torch.Tensor       # (K,) code perplexity per scale
    spectrum: tuple[torch.Tensor, torch.Tensor] | None = None   # fourier codec: the decoder head's
    # (B, F, T) log-magnitude and phase (each frame's), for the spectral losses; None for seanet
    pitch: torch.Tensor | None = None   # fourier codec with a harmonic source: its pitch logits (B, classes, T)
    raw_audio: torch.Tensor | None = None   # fourier codec with a level head: `audio` before its gain, which the
    # reconstruction terms train (the gain is trained by the level term alone)

    @property
    def decoded(self) -> torch.Tensor:
        """The audio the reconstruction terms compare with the input: before a level head's gain, if any."""
        return self.audio if self.raw_audio is None else self.raw_audio


class SAT(Pretrained, nn.Module):
    """Scale-level audio tokenizer."""

    kind: ClassVar[str] = "sat"
    config_class: ClassVar[type] = SATConfig

    def __init__(self, config: SATConfig | None = None):
        super().__init__()
        self.config = config = config or SATConfig()
        self.encoder, self.decoder = build_codec(config)
        self.quantizer = MSRQ(config.dimension, config.latent_dim, config.resolved_scales(), config.codebook_size,
                              phi=config.phi, phi_count=config.phi_count, phi_kernel=config.phi_kernel,
                              phi_ratio=config.phi_ratio, decay=config.ema_decay, epsilon=config.ema_epsilon,
                              dead_threshold=config.dead_code_threshold, kmeans_iters=config.kmeans_iters)

    # ---- properties the AR models and the CLI rely on ---------------------------------------
    @property
    def scales(self) -> list[int]:
        return list(self.quantizer.scales)

    @property
    def num_scales(self) -> int:
        return len(self.quantizer.scales)

    @property
    def num_frames(self) -> int:
        return self.quantizer.num_frames

    @property
    def num_tokens(self) -> int:
        return sum(self.quantizer.scales)

    @property
    def hop_length(self) -> int:
        return self.config.hop_length

    @property
    def sample_rate(self) -> int:
        return self.config.sample_rate

    @property
    def clip_samples(self) -> int:
        """Samples in one clip, the window the schedule covers; longer audio is coded window by window."""
        return int(round(self.config.clip_seconds * self.config.sample_rate))

    @property
    def codebook_size(self) -> int:
        return self.config.codebook_size

    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    # ---- API ---------------------------------------------------------------------------------
    def _check_wav(self, wav: torch.Tensor) -> None:
        if not isinstance(wav, torch.Tensor) or wav.dim() != 3 or wav.shape[1] != 1:
            shape = tuple(wav.shape) if isinstance(wav, torch.Tensor) else type(wav).__name__
            raise ConfigError(f"SAT: expected mono audio of shape (B, 1, S), got {shape}")
        if wav.shape[-1] < 1:
            raise ConfigError("SAT: expected at least one audio sample, got an empty signal")
        if not torch.is_floating_point(wav):
            raise ConfigError(f"SAT: expected float audio, got {wav.dtype}")

    @property
    def window_samples(self) -> int:
        """Samples one window of T latent frames spans (T * hop; the clip length when hop divides it)."""
        return self.num_frames * self.hop_length

    def layout(self, overlap: int = 0) -> WindowLayout:
        """Where the windows of a long latent sit: every T - overlap frames (checks 0 <= overlap <= T // 2)."""
        return WindowLayout(self.num_frames, overlap)

    def num_windows(self, num_samples: int, overlap: int = 0) -> int:
        """Windows of T latent frames that `num_samples` samples fill, the last one padded."""
        return self.layout(overlap).num_windows(math.ceil(num_samples / self.hop_length))

    def output_samples(self, windows: int, overlap: int = 0) -> int:
        """What decoding W windows gives by default: the windows' span, the last window trimmed to the clip
        length as one clip is."""
        return (windows - 1) * self.layout(overlap).stride * self.hop_length + self.clip_samples

    def encode_latent(self, wav: torch.Tensor, overlap: int = 0) -> torch.Tensor:
        """(B, 1, S) -> encoder output (B, dimension, F), the audio zero-padded to F frames of whole windows."""
        self._check_wav(wav)
        layout = self.layout(overlap)
        padded = layout.total_frames(self.num_windows(wav.shape[-1], overlap)) * self.hop_length
        return self.encoder(torch.nn.functional.pad(wav, (0, padded - wav.shape[-1])))

    def _split_codes(self, codes: Sequence[torch.Tensor]) -> tuple[list[torch.Tensor], int]:
        """(B, W * n_k) per scale -> (B * W, n_k) per scale, and W; checks every scale has the same W."""
        if not 1 <= len(codes) <= self.num_scales:
            raise ConfigError(f"codes: expected 1..{self.num_scales} scales, got {len(codes)}")
        windows = None
        for k, c in enumerate(codes):
            n = self.scales[k]
            if c.dim() != 2 or c.shape[1] % n or not c.shape[1]:
                raise ConfigError(f"codes[{k}]: expected shape (B, W * {n}) for W windows, got {tuple(c.shape)}")
            if windows is None:
                windows = c.shape[1] // n
            elif c.shape[1] != windows * n:
                raise ConfigError(f"codes[{k}]: {c.shape[1]} tokens is not {windows} windows of {n}, as codes[0] "
                                  f"holds; every scale must cover the same windows")
        return [c.reshape(-1, self.scales[k]) for k, c in enumerate(codes)], windows

    @torch.no_grad()
    def encode(self, wav: torch.Tensor, overlap: int = 0) -> list[torch.Tensor]:
        """(B, 1, S) float audio of any length -> K LongTensors (B, W * n_k), window after window; windows
        every T - overlap frames (decode with the same overlap)."""
        layout = self.layout(overlap)
        z = self.encode_latent(wav, overlap)
        codes = self.quantizer.encode(layout.split(z))
        return [c.reshape(z.shape[0], -1) for c in codes]

    @torch.no_grad()
    def decode(self, codes: Sequence[torch.Tensor], length: int | None = None, overlap: int = 0) -> torch.Tensor:
        """Codes of the first k scales (k <= K) -> (B, 1, S); fewer scales give a coarser preview.

        Windows `overlap` frames apart are crossfaded there (pass the overlap the codes were made with).
        The output is trimmed to `length` (default: `output_samples(W, overlap)`; pass the encoded
        signal's sample count to get exactly its length back).
        """
        layout = self.layout(overlap)
        rows, windows = self._split_codes(codes)
        latent = layout.join(self.quantizer.decode(rows), codes[0].shape[0])    # crossfaded after the projection
        return self.decoder(latent)[..., : self.output_samples(windows, overlap) if length is None else length]

    def decode_latent(self, f_hat: torch.Tensor, overlap: int = 0) -> torch.Tensor:
        """Quantized latent f_hat (B, C, F) of whole windows (e.g. built by an AR model, crossfaded at
        `overlap`) -> (B, 1, S) of `output_samples(W, overlap)` samples."""
        layout = self.layout(overlap)
        windows = layout.count(f_hat.shape[-1]) if f_hat.dim() == 3 else None
        if windows is None:
            raise ConfigError(f"SAT.decode_latent: expected (B, C, {layout.frames_text()}) for W windows"
                              f"{f' overlapping by {overlap}' if overlap else ''}, got {tuple(f_hat.shape)}")
        return self.decoder(self.quantizer.project_out(f_hat))[..., : self.output_samples(windows, overlap)]

    def forward(self, wav: torch.Tensor) -> SATOutput:
        """One training / evaluation pass over audio of any length (windowed like `encode`)."""
        z = self.encode_latent(wav)
        layout = self.layout()
        q = self.quantizer(layout.split(z))
        quantized = layout.join(q.quantized, z.shape[0])
        spectrum = pitch = raw = None
        if self.config.codec == "fourier":
            audio, spectrum, pitch, raw = self.decoder.decode_with_spectrum(quantized)
        else:
            audio = self.decoder(quantized)
        codes = [c.reshape(z.shape[0], -1) for c in q.codes]
        crop = (lambda x: x[..., : wav.shape[-1]])
        return SATOutput(crop(audio), codes, q.commit_loss, q.usage, q.perplexity, spectrum, pitch,
                         None if raw is None else crop(raw))

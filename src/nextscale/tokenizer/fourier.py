"""Fourier codec: STFT features -> ConvNeXt at the latent frame rate -> ... -> ConvNeXt -> iSTFT.

Every layer runs at the STFT frame rate (75 frames/s at 24 kHz, hop 320), which is the latent
frame rate MSRQ quantises, so the network never up- or down-samples in time: far cheaper per
second of audio than SEANet's strided convolutions at the sample rate, and the spectral head
makes pitch and harmonics easy to learn (the Vocos idea, applied to both sides of a codec).

Framing is "same": the signal is zero-padded on the right to T * hop samples and reflect-padded
by (n_fft - hop) / 2 on each side, so the STFT has exactly T frames, and the inverse STFT
(overlap-add, divided by the summed squared window) gives back exactly T * hop samples.

One window length cannot serve clicks and low tones at once (a 1024-sample window blurs a low
tone's harmonics, a 2048-sample one smears a click), so the codec can run two STFTs with the same
hop (`MultiSTFT`): the encoder sees both, the decoder predicts both and sums their inverses, and
learns which sounds go to which.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .mel import magnitude


def check_framing(n_fft: int, hop: int) -> None:
    """The 'same' framing needs n_fft >= hop and an even n_fft - hop (equal padding on both sides)."""
    if hop < 1 or n_fft < hop:
        raise ConfigError(f"model.n_fft: the Fourier codec needs n_fft >= hop, got n_fft={n_fft}, hop={hop}")
    if (n_fft - hop) % 2:
        raise ConfigError(f"model.n_fft: n_fft - hop must be even so T frames cover T * hop samples, "
                          f"got n_fft={n_fft}, hop={hop}")


class SameSTFT(nn.Module):
    """(B, 1, S) audio <-> (B, n_fft // 2 + 1, T) complex spectrum with T = ceil(S / hop)."""

    def __init__(self, n_fft: int, hop: int):
        super().__init__()
        check_framing(n_fft, hop)
        self.n_fft, self.hop, self.pad = n_fft, hop, (n_fft - hop) // 2
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        frames = math.ceil(wav.shape[-1] / self.hop)
        x = F.pad(wav, (0, frames * self.hop - wav.shape[-1]))
        x = F.pad(x, (self.pad, self.pad), mode="reflect" if x.shape[-1] > self.pad else "constant")
        return torch.stft(x.squeeze(1).to(self.window.dtype), self.n_fft, self.hop, window=self.window, center=False,
                          return_complex=True)

    def inverse(self, spec: torch.Tensor) -> torch.Tensor:
        """(B, F, T) complex -> (B, 1, T * hop): windowed overlap-add normalised by the window envelope."""
        chunks = torch.fft.irfft(spec, n=self.n_fft, dim=1) * self.window[:, None]       # (B, n_fft, T)
        audio = self._overlap_add(chunks.transpose(1, 2))
        envelope = self._overlap_add(self.window.square().expand(1, spec.shape[-1], -1))
        trim = slice(self.pad, self.pad + spec.shape[-1] * self.hop)
        return (audio[:, trim] / envelope[:, trim].clamp(min=1e-8)).unsqueeze(1)

    def _overlap_add(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, T, n_fft) -> (B, (T - 1) * hop + n_fft): frame t added at sample t * hop.

        Each frame, zero-padded to R = ceil(n_fft / hop) blocks of hop samples, lands on output
        blocks t .. t + R - 1, so R shifted adds do it (F.fold would, but runs as a slow conv on CPU).
        """
        batch, count, _ = frames.shape
        blocks = math.ceil(self.n_fft / self.hop)
        frames = F.pad(frames, (0, blocks * self.hop - self.n_fft)).reshape(batch, count, blocks, self.hop)
        out = frames.new_zeros(batch, count + blocks - 1, self.hop)
        for r in range(blocks):
            out[:, r: r + count] += frames[:, :, r]
        return out.reshape(batch, -1)[:, : (count - 1) * self.hop + self.n_fft]


class MultiSTFT(nn.Module):
    """SameSTFTs of several window lengths, one hop: (B, 1, S) <-> (B, sum of bins, T), spectra stacked along bins.

    The inverse splits the bins back, inverts each resolution and sums the signals; with one
    n_fft it is exactly `SameSTFT`.
    """

    def __init__(self, n_ffts: list[int], hop: int):
        super().__init__()
        self.parts = nn.ModuleList(SameSTFT(n, hop) for n in n_ffts)
        self.bins = [n // 2 + 1 for n in n_ffts]
        self.hop = hop

    @property
    def total_bins(self) -> int:
        return sum(self.bins)

    def centre_phase(self) -> torch.Tensor:
        """(sum of bins, 1): -pi k (n - 1) / n for bin k of an n-point frame, the phase the frame-start-referred
        DFT gives a sinusoid that is at phase 0 at the window's centre (the linear phase of a symmetric window)."""
        centres = [torch.remainder(-math.pi * torch.arange(p.n_fft // 2 + 1, dtype=torch.float64) * (p.n_fft - 1)
                                   / p.n_fft, 2 * math.pi) for p in self.parts]
        return torch.cat(centres).float()[:, None]

    def bin_advance(self) -> torch.Tensor:
        """(sum of bins, 1): each bin's centre-frequency phase advance over one hop, for cumulative phase."""
        advances = [torch.remainder(2 * math.pi * torch.arange(p.n_fft // 2 + 1, dtype=torch.float64) * self.hop
                                    / p.n_fft, 2 * math.pi) for p in self.parts]
        return torch.cat(advances).float()[:, None]

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        return torch.cat([p(wav) for p in self.parts], dim=1)

    def inverse(self, spec: torch.Tensor) -> torch.Tensor:
        return sum(p.inverse(part) for p, part in zip(self.parts, spec.split(self.bins, dim=1)))


def resolutions(n_fft: int, long_n_fft: int) -> list[int]:
    """The codec's window lengths: n_fft, plus long_n_fft when it is set (> 0)."""
    return [n_fft] + ([long_n_fft] if long_n_fft else [])


class ConvNeXtBlock(nn.Module):
    """Depthwise conv (k7) -> LayerNorm -> MLP (GELU) -> layer-scaled residual, on (B, C, T)."""

    def __init__(self, dim: int, mlp_ratio: float, layer_scale: float):
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm(self.dwconv(x).transpose(1, 2))
        return x + (self.gamma * self.mlp(h)).transpose(1, 2)


class ConvNeXtStack(nn.Module):
    """Conv1d in -> LayerNorm -> N ConvNeXt blocks -> LayerNorm, at a fixed frame rate."""

    def __init__(self, cin: int, dim: int, layers: int, mlp_ratio: float, embed_kernel: int = 7):
        super().__init__()
        self.embed = nn.Conv1d(cin, dim, embed_kernel, padding=embed_kernel // 2)
        self.norm_in = nn.LayerNorm(dim, eps=1e-6)
        self.blocks = nn.Sequential(*[ConvNeXtBlock(dim, mlp_ratio, 1.0 / max(1, layers)) for _ in range(layers)])
        self.norm_out = nn.LayerNorm(dim, eps=1e-6)
        self.apply(_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm_in(self.embed(x).transpose(1, 2)).transpose(1, 2)
        return self.norm_out(self.blocks(x).transpose(1, 2)).transpose(1, 2)


def _init(module: nn.Module) -> None:
    if isinstance(module, (nn.Conv1d, nn.Linear)):
        nn.init.trunc_normal_(module.weight, std=0.02)
        nn.init.zeros_(module.bias)


class FourierEncoder(nn.Module):
    """(B, 1, S) -> (B, dimension, T): each frame's log-magnitudes (and optionally phase as cos, sin), then ConvNeXt.

    Log-magnitudes are scaled to about unit range first: raw, they span -11.5 (the floor) to ~+4
    and a 1x1 projection of 513 of them starts out dominated by the level of silence. The
    absolute phase of a frame says nothing a cumulative-phase decoder can use and, as cos/sin of
    every bin, doubles the input with noise-like features, so `phase=False` (the default of the
    configs) leaves it out; the published-style `phase=True` keeps it.

    `instantaneous_frequency=True` adds what the phase does say: each bin's phase advance over one
    hop minus its centre frequency's (`frequency_deviation`), as a unit vector faded out in quiet
    bins. A steady partial between two bins gives the same vector frame after frame, and its angle
    is where the partial sits inside the 23 Hz bin: the pitch that log-magnitudes alone blur.

    `pitch=True` adds the input's pitch as a classical estimate gives it (`harmonic.estimate_pitch`
    on the first resolution, as the pitch loss reads it): a bump over the pitch grid, scaled by the
    estimate's confidence, as DDSP's autoencoders take f0 from a pitch tracker. A pitch read off a
    harmonic comb by dense layers was learnt to only ~0.4 octaves in 2000 steps; given as input, it
    only has to pass through the latent.
    """

    log_center, log_scale = -5.0, 4.0       # maps the floor to about -1.6 and full scale (|X| ~ 50) to ~2.2

    def __init__(self, n_fft: int, hop: int, width: int, layers: int, mlp_ratio: float, dimension: int,
                 phase: bool = False, long_n_fft: int = 0, instantaneous_frequency: bool = False,
                 pitch: bool = False, sample_rate: int = 24000):
        super().__init__()
        from .harmonic import PITCH_CLASSES

        self.stft = MultiSTFT(resolutions(n_fft, long_n_fft), hop)
        self.phase = phase
        self.instantaneous_frequency = instantaneous_frequency
        self.pitch, self.sample_rate = pitch, sample_rate
        bins = self.stft.total_bins
        channels = 1 + 2 * phase + 2 * instantaneous_frequency
        # per-frame projection of the spectral features: the blocks' k7 depthwise convs give the context
        self.backbone = ConvNeXtStack(channels * bins + PITCH_CLASSES * pitch, width, layers, mlp_ratio,
                                      embed_kernel=1)
        self.out = nn.Conv1d(width, dimension, 1)
        _init(self.out)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        return self.out(self.backbone(self.features(wav)))

    def features(self, wav: torch.Tensor) -> torch.Tensor:
        """(B, 1, S) -> (B, channels x bins (+ pitch classes), T): scaled log-magnitudes, then the optional phase
        channels and pitch bump."""
        spec = self.stft(wav)
        level = magnitude(spec)
        features = (level.clamp(min=1e-5).log() - self.log_center) / self.log_scale
        if self.phase:
            unit = spec / level.clamp(min=1e-5)
            features = torch.cat([features, unit.real, unit.imag], dim=1)
        if self.instantaneous_frequency:
            deviation = frequency_deviation(spec, self.stft.bin_advance().to(spec.device))
            features = torch.cat([features, deviation.real, deviation.imag], dim=1)
        if self.pitch:
            from .harmonic import estimate_pitch, pitch_bump

            first = self.stft.bins[0]
            f0, confidence = estimate_pitch(level[:, :first], self.sample_rate, self.stft.parts[0].n_fft)
            features = torch.cat([features, pitch_bump(f0.log2()) * confidence[:, None]], dim=1)
        return features


def frequency_deviation(spec: torch.Tensor, bin_advance: torch.Tensor, quiet: float = 0.1) -> torch.Tensor:
    """(B, F, T) complex STFT -> (B, F, T) complex: exp(i * (phase advance over the hop - the bin's centre
    advance)), times m / (m + quiet) with m the geometric mean of the two frames' magnitudes, so bins
    quieter than `quiet` (noise, whose phase is arbitrary) fade to 0. The first frame has no advance: 0."""
    step = spec[..., 1:] * spec[..., :-1].conj() * torch.polar(torch.ones_like(bin_advance), -bin_advance)
    m = step.abs().sqrt()                                  # |X_t| |X_t-1| = m^2
    deviation = step / (m * (m + quiet)).clamp(min=1e-20)
    return F.pad(deviation, (1, 0))


PHASE_MODES = ("direct", "cumulative", "centred", "partials", "framewise")


class FrequencyRefiner(nn.Module):
    """A small CNN along the bins of every frame, shared by all bins: (B, channels, F, T) head output ->
    (B, 2, F, T) correction of its first two channels (zero at initialisation).

    A 1x1 head gives each frame's spectrum as a mix of fixed spectra; a pitch between two of them
    comes out as both, two sets of partials (a tone heard as a chord). Weighting two broad bumps
    moves their centroid smoothly, and a convolution along frequency can turn a bump into one sharp
    partial wherever it lies, so pitch becomes continuous. Each STFT resolution is refined on its own.
    """

    channels = 4          # the head's numbers per bin: the two the decoder reads, and two for the refiner
    kernel = 7

    def __init__(self, bins: list[int], hidden: int):
        super().__init__()
        self.bins = bins
        pad = (self.kernel // 2, 0)
        self.net = nn.Sequential(nn.Conv2d(self.channels, hidden, (self.kernel, 1), padding=pad), nn.GELU(),
                                 nn.Conv2d(hidden, 2, (self.kernel, 1), padding=pad))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # channels-last: oneDNN's (7, 1) convolutions run ~1.8x faster forward + backward on CPU that way
        parts = (part.contiguous(memory_format=torch.channels_last) for part in x.split(self.bins, dim=2))
        return torch.cat([self.net(part) for part in parts], dim=2).contiguous()


def hann_kernels(offset: torch.Tensor, n_fft: int, reach: int) -> list[torch.Tensor]:
    """For a sinusoid `offset` bins from a bin's centre (|offset| < 1), its share in the bins o = -reach ..
    reach away: the n_fft-point DFT of the periodic-Hann-windowed complex sinusoid at offset - o, over its
    value at 0, leaving out the linear phase exp(i pi (offset - o) (N - 1) / N) (complex, one per o).

    With w = 1/2 - (e^{2 pi i n/N} + e^{-2 pi i n/N}) / 4 each is three Dirichlet kernels
    D(x) = sum_n exp(2 pi i x n / N) = exp(i pi x (N - 1) / N) N sinc(x) / sinc(x / N); sinc(x / N) is 1 to
    within 2e-6 x^2 at n_fft >= 1024 and is left out, the side terms keep their e^{-+ i pi / N}. The sincs
    two or more bins away share sin(pi offset): sinc(offset - m) = (-1)^m sin(pi offset) / (pi (offset - m));
    the near ones (offset - m can be 0 at |offset| = 1, where tanh saturates) are torch.sinc's.
    """
    sine = torch.sin(math.pi * offset) / math.pi
    sinc = {m: torch.sinc(offset - m) if abs(m) <= 1 else sine * (-1) ** m / (offset - m)
            for m in range(-reach - 1, reach + 2)}
    side_re, side_im = 0.5 * math.cos(math.pi / n_fft), 0.5 * math.sin(math.pi / n_fft)
    return [torch.complex(sinc[o] + side_re * (sinc[o - 1] + sinc[o + 1]), side_im * (sinc[o + 1] - sinc[o - 1]))
            for o in range(-reach, reach + 1)]


def partial_shares(amplitude: torch.Tensor, offset: torch.Tensor, phase: torch.Tensor, n_fft: int,
                   reach: int) -> list[tuple[int, torch.Tensor]]:
    """Sinusoids (amplitude, offset from their bin's centre in bins, |offset| < 1, phase at the frame's first
    sample; any equal shapes) -> [(o, what each adds to the bin o away from its own)] for o = -reach .. reach:
    a e^{i phase} DFT(window x sinusoid) there, the kernels' shared linear phase put back."""
    tilt = math.pi * (n_fft - 1) / n_fft                     # the linear phase, per bin of offset
    source = torch.polar(amplitude, phase + tilt * offset)
    return [(o, source * (kernel * complex(math.cos(tilt * o), -math.sin(tilt * o))))
            for o, kernel in zip(range(-reach, reach + 1), hann_kernels(offset, n_fft, reach))]


def render_partials(amplitude: torch.Tensor, offset: torch.Tensor, phase: torch.Tensor, n_fft: int,
                    reach: int = 2) -> torch.Tensor:
    """(B, F, T) sinusoids, one per bin (see `partial_shares`) -> (B, F, T) complex STFT, frame by frame: bin
    j's sinusoid adds its share to bin j + o for |o| <= reach. The Hann main lobe reaches two bins either
    side of the sinusoid, so reach 2 covers it (the side lobes beyond, under 3 % of the peak, and the
    negative-frequency image, far from all but the lowest bins, are left out).
    """
    bins = amplitude.shape[1]
    spectrum = torch.zeros(amplitude.shape[0], bins + 2 * reach, *amplitude.shape[2:], device=amplitude.device,
                           dtype=torch.complex128 if amplitude.dtype == torch.float64 else torch.complex64)
    for o, share in partial_shares(amplitude, offset, phase, n_fft, reach):
        spectrum[:, reach + o: reach + o + bins] += share
    return spectrum[:, reach: reach + bins]


class Decoded(NamedTuple):
    """What `FourierDecoder.decode_with_spectrum` gives the training losses."""

    audio: torch.Tensor                            # (B, 1, T * hop): the decoder's output
    spectrum: tuple[torch.Tensor, torch.Tensor]    # (B, F, T) log-magnitude and each bin's phase
    pitch: torch.Tensor | None                     # the harmonic source's pitch logits (B, classes, T)
    raw_audio: torch.Tensor | None = None          # with a level head: the output before its gain


class LevelHead(nn.Module):
    """Backbone features (B, width, T) -> each frame's log-gain (B, 1, T), zero at initialisation.

    The reconstruction terms leave the decoded waveform a few dB quiet where they cannot place energy
    exactly (a click smeared over a frame costs more in the log-mel gaps than it saves by being loud);
    the synth classifier hears that level (scaling the demo's round trip by +2.5 dB took its FAD from 72
    to 63 at an equal mel distance). Trained alone on each frame's energy against the input's, on
    detached features and spectra, this head calibrates the output's level without changing what the
    rest of the decoder learns.
    """

    def __init__(self, width: int, kernel: int = 3):
        super().__init__()
        self.conv = nn.Conv1d(width, 1, kernel, padding=kernel // 2)
        nn.init.zeros_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.conv(features).float()


class FourierDecoder(nn.Module):
    """(B, dimension, T) -> (B, 1, T * hop): ConvNeXt, then a 1x1 head giving two numbers per bin.

    `phase="direct"` reads them as log-magnitude and phase (Vocos). `phase="cumulative"` reads the
    second as each bin's deviation from its centre frequency's advance over one hop and sums it over
    frames, as a phase vocoder does: a decoder that predicts nothing yet already gives frame-to-frame
    coherent sinusoids instead of the buzz at the frame rate that unrelated phases make. Its bins all
    start at phase 0, so the bins of one partial start in phase; in a frame-start-referred DFT they
    should differ by about pi (a Hann window's linear phase), and in phase they add up at the frame's
    edges, where the synthesis window silences them: even with exact magnitudes and frequencies, a
    steady tone comes back 10-15 dB quiet. `phase="centred"` is the same model with each bin's phase
    referred to the window's centre (`MultiSTFT.centre_phase` added), so a partial's bins add up in the
    middle of every frame and the same tone comes back at its level.

    `phase="framewise"` reads the second number as each bin's phase referred to the window's centre, frame by
    frame (no sum over frames): a head that predicts zero makes every frame zero-phase about its centre, and
    the head can tilt a frame's phases linearly to put a transient anywhere in it, which a phase summed
    over all earlier frames cannot. The clips' true STFT magnitudes with each frame zero-phase about its
    loudest sample score a mel distance of 0.47 on the demo's held-out clips (random phases 0.98, bins
    advancing at their centre frequencies 0.98, the true advances summed from frame 0 1.28); trained, the
    demo's recipe reaches mel 1.027 and FAD 39 where the centred cumulative phase gives 1.092 and 55.5.

    `phase="partials"` reads them as one sinusoid per bin: a log-amplitude and where inside the bin
    (up to one bin either way) its frequency sits. Its phase is cumulative at that frequency, and the
    spectrum is rendered as the STFT of those sinusoids (`render_partials`: each spreads over its
    neighbours by the window's own kernel). A partial's exact frequency is then one number, trained
    directly by the magnitude losses through the kernel's shape; with per-bin magnitudes and phases,
    it is a pattern over four bins' magnitudes and advances that must agree, and a decoder that gets
    the pattern slightly wrong makes four nearby partials (a low tone that sounds like a chord).
    """

    max_log_magnitude = math.log(100.0)   # caps exp() so an early, wild step cannot overflow
    initial_log_magnitude = math.log(1e-2)  # start near a quiet spectrum, not a loud flat one (|X| = 1 per bin)
    max_offset = 1.0                        # partials: a bin's sinusoid sits within one bin of its centre (tanh)

    def __init__(self, n_fft: int, hop: int, width: int, layers: int, mlp_ratio: float, dimension: int,
                 phase: str = "direct", long_n_fft: int = 0, refiner: int = 0, harmonics: int = 0,
                 sample_rate: int = 24000, level: bool = False):
        super().__init__()
        if phase not in PHASE_MODES:
            raise ConfigError(f"model.fourier_phase: expected one of {', '.join(PHASE_MODES)}, got {phase!r}")
        if refiner < 0:
            raise ConfigError(f"model.fourier_refiner: hidden channels must be >= 0 (0: none), got {refiner}")
        self.phase = phase
        self.stft = MultiSTFT(resolutions(n_fft, long_n_fft), hop)
        bins = self.stft.total_bins
        self.backbone = ConvNeXtStack(dimension, width, layers, mlp_ratio)
        self.refiner = FrequencyRefiner(self.stft.bins, refiner) if refiner else None
        if harmonics < 0:
            raise ConfigError(f"model.fourier_harmonics: must be >= 0 (0: no harmonic source), got {harmonics}")
        from .harmonic import HarmonicSource

        self.harmonic = HarmonicSource(width, harmonics, n_fft, hop, sample_rate) if harmonics else None
        self.head = nn.Conv1d(width, (FrequencyRefiner.channels if refiner else 2) * bins, 1)
        self.level = LevelHead(width) if level else None
        _init(self.head)
        nn.init.constant_(self.head.bias[:bins], self.initial_log_magnitude)
        self.register_buffer("bin_advance", self.stft.bin_advance(), persistent=False)
        self.register_buffer("centre_phase", self.stft.centre_phase(), persistent=False)
        # partials: an offset of one bin advances the phase by 2 pi hop / n_fft more per frame
        self.register_buffer("offset_advance", torch.cat([torch.full((b, 1), 2 * math.pi * hop / p.n_fft)
                                                          for b, p in zip(self.stft.bins, self.stft.parts)]),
                             persistent=False)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """(B, dimension, T) -> (B, 1, T * hop): one inverse STFT, with the level head's gain when there is one."""
        spec, _, _, features = self.render(z)
        if self.level is not None:
            spec = spec * self.level(features).exp()
        return self.stft.inverse(spec)

    def decode_with_spectrum(self, z: torch.Tensor) -> Decoded:
        """(B, dimension, T) -> `Decoded`: the audio (B, 1, T * hop), the (B, F, T) log-magnitude and phase for the
        spectral losses, the harmonic source's pitch logits (B, classes, T) (None without one) and, with a level
        head, the audio before its gain. `forward`'s audio, plus what the training losses compare."""
        spec, spectrum, pitch, features = self.render(z)
        audio = self.stft.inverse(spec)
        if self.level is None:
            return Decoded(audio, spectrum, pitch)
        # the gain sees and scales detached copies: only the level term trains it, and nothing else through it
        gained = self.stft.inverse(spec.detach() * self.level(features.detach()).exp())
        return Decoded(gained, spectrum, pitch, raw_audio=audio)

    def render(self, z: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor], torch.Tensor | None,
                                                torch.Tensor]:
        """(B, dimension, T) -> the complex spectrum (B, F, T) before any gain, its (log-magnitude, phase), the
        harmonic source's pitch logits (None without one) and the backbone features.

        The log-magnitude is the head's own for a per-bin head alone, else the summed spectrum's; the phase
        is each bin's (the head's, or its sinusoid's for partials): the summed spectrum's angle has no
        gradient where it is zero."""
        features = self.backbone(z)
        first, second = self.head_output(features)
        pitch = None
        if self.phase == "partials":
            amplitude = first.clamp(max=self.max_log_magnitude).exp()
            offset = torch.tanh(second) * self.max_offset
            phase = torch.cumsum(self.bin_advance + offset * self.offset_advance, dim=-1)
            spec = torch.cat([render_partials(a, o, p, part.n_fft) for part, a, o, p in
                              zip(self.stft.parts, *(x.split(self.stft.bins, dim=1) for x in (amplitude, offset, phase)))],
                             dim=1)
        else:
            log_magnitude, phase = first.clamp(max=self.max_log_magnitude), self.phase_of(second)
            spec = torch.polar(log_magnitude.exp(), phase)
        if self.harmonic is not None:                         # it renders into the first resolution's bins
            harmonic, pitch = self.harmonic(features)
            spec = spec + F.pad(harmonic, (0, 0, 0, spec.shape[1] - harmonic.shape[1]))
        if self.phase == "partials" or self.harmonic is not None:
            log_magnitude = 0.5 * (spec.real.square() + spec.imag.square() + 1e-12).log()
        return spec, (log_magnitude, phase), pitch, features

    def predict(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, dimension, T) -> (B, F, T) log-magnitude and each frame's phase, in float32: the whole spectrum of
        a per-bin head without a harmonic source."""
        if self.phase == "partials" or self.harmonic is not None:
            raise ConfigError("FourierDecoder.predict: this decoder renders a complex spectrum (partials head or "
                              "harmonic source); use decode_with_spectrum")
        features = self.backbone(z)
        log_magnitude, phase = self.head_output(features)
        log_magnitude = log_magnitude.clamp(max=self.max_log_magnitude)
        if self.level is not None:
            log_magnitude = log_magnitude + self.level(features)
        return log_magnitude, self.phase_of(phase)

    def head_output(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, width, T) backbone features -> the head's two (B, F, T) numbers per bin, in float32, refined along
        the bins when there is a refiner."""
        out = self.head(features).float()
        if self.refiner is None:
            first, second = out.chunk(2, dim=1)
            return first, second
        out = out.unflatten(1, (FrequencyRefiner.channels, -1))          # (B, channels, F, T)
        first, second = (out[:, :2] + self.refiner(out)).unbind(1)
        return first, second

    def phase_of(self, phase: torch.Tensor) -> torch.Tensor:
        """The head's phase output -> each bin's phase per frame (the cumulative model sums increments)."""
        if self.phase == "direct":
            return phase
        if self.phase == "framewise":
            return phase + self.centre_phase
        cumulative = torch.cumsum(phase + self.bin_advance, dim=-1)
        return cumulative + self.centre_phase if self.phase == "centred" else cumulative

    def synthesize(self, log_magnitude: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
        """(B, F, T) log-magnitude and per-frame phase -> (B, 1, T * hop) audio."""
        magnitude = log_magnitude.clamp(max=self.max_log_magnitude).exp()
        return self.stft.inverse(torch.polar(magnitude, phase))

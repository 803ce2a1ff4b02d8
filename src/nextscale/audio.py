"""Audio in and out: decode (soundfile), resample (soxr), mix down, crop / pad, save.

Every way a file can be unusable (missing, not audio, truncated, empty, NaN, wrong channel
count) raises `AudioError(path, reason)`, so datasets can report and skip it instead of feeding
silence or garbage to a model. Only the requested frames are read: cropping one second out of
an hour-long file seeks to it and never decodes the rest.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from .errors import AudioError

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aiff", ".aif")
RESAMPLE_CONTEXT_SECONDS = 0.03  # decoded around a crop so the resampler's edge effects fall outside it
MAX_SAVE_CHANNELS = 64  # more rows than this in save_audio almost surely means (samples, channels)

# libsndfile logs "data : <declared> (should be <actual>)" when a WAV's data chunk overruns the file.
_DATA_CHUNK = re.compile(r"data\s*:\s*(\d+)\s*\(should be (\d+)\)")
_STREAMING_SIZES = {0, 0xFFFFFFFF, 0x7FFFFFFF}  # placeholders written by streaming recorders


@dataclass(frozen=True)
class AudioInfo:
    """What a header says about a file, read without decoding audio."""

    path: str
    sample_rate: int
    channels: int
    frames: int
    format: str

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate


def _check_truncation(path: Path, f: sf.SoundFile) -> None:
    match = _DATA_CHUNK.search(f.extra_info or "")
    if match:
        declared, actual = int(match.group(1)), int(match.group(2))
        if declared > actual and declared not in _STREAMING_SIZES:
            raise AudioError(path, f"truncated: the header promises {declared} bytes of audio, the file holds {actual}")


def _open(path: str | Path) -> sf.SoundFile:
    path = Path(path)
    if not path.exists():
        raise AudioError(path, "file not found")
    if not path.is_file():
        raise AudioError(path, "not a regular file")
    try:
        f = sf.SoundFile(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError) as e:
        reason = str(e).split(": ", 1)[-1] if ": " in str(e) else str(e)
        raise AudioError(path, f"not a readable audio file ({reason})") from None
    try:
        _check_truncation(path, f)
        if f.frames <= 0:
            raise AudioError(path, "zero-length: the file holds no samples")
        if f.channels <= 0 or f.samplerate <= 0:
            raise AudioError(path, f"invalid header ({f.channels} channels at {f.samplerate} Hz)")
    except AudioError:
        f.close()
        raise
    return f


def audio_info(path: str | Path) -> AudioInfo:
    """Header check without decoding: raises AudioError for files that cannot be used at all."""
    with _open(path) as f:
        return AudioInfo(str(path), int(f.samplerate), int(f.channels), int(f.frames), str(f.format))


def resample(wav: np.ndarray, orig_rate: int, target_rate: int) -> np.ndarray:
    """(frames, channels) float32 → resampled with soxr (high quality), same layout."""
    if orig_rate == target_rate:
        return wav
    import soxr

    return soxr.resample(wav, orig_rate, target_rate, quality="HQ").astype(np.float32, copy=False)


def _frame_range(path: Path, info: sf.SoundFile, offset: float, duration: float | None) -> tuple[int, int]:
    if offset < 0:
        raise AudioError(path, f"offset {offset} s is negative")
    if duration is not None and duration <= 0:
        raise AudioError(path, f"duration {duration} s must be positive")
    start = int(round(offset * info.samplerate))
    if start >= info.frames:
        raise AudioError(path, f"offset {offset} s is past the end of the file ({info.frames / info.samplerate:.3f} s)")
    stop = info.frames if duration is None else min(info.frames, start + max(1, int(round(duration * info.samplerate))))
    return start, stop


def _context_frames(start: int, stop: int, frames: int, file_rate: int, target_rate: int) -> tuple[int, int]:
    """Frames to decode before and after a crop so the resampler's edges fall outside it.

    The leading context is a multiple of the rate ratio's input step, so it maps to a whole number
    of output samples and the trimmed crop equals the same span of the whole file resampled."""
    if file_rate == target_rate:
        return 0, 0
    want = int(np.ceil(RESAMPLE_CONTEXT_SECONDS * file_rate))
    step = file_rate // math.gcd(file_rate, target_rate)
    before = (min(want, start) // step) * step if step <= want else 0
    return before, min(want, frames - stop)


def _fit_channels(path: Path, x: np.ndarray, mono: bool, channels: int | None) -> np.ndarray:
    """(frames, C) → mono mix-down, or the requested channel count (mono files are repeated)."""
    if mono:
        if channels not in (None, 1):
            raise AudioError(path, f"mono=True contradicts channels={channels}")
        return x.mean(axis=1, keepdims=True) if x.shape[1] > 1 else x
    if channels is None or x.shape[1] == channels:
        return x
    if x.shape[1] == 1:
        return np.repeat(x, channels, axis=1)
    raise AudioError(path, f"wrong channel layout: the file has {x.shape[1]} channels, {channels} were asked for "
                           "(only mono files are up-mixed; pass mono=True to mix down)")


def load_audio(path: str | Path, sample_rate: int = 24000, mono: bool = True, offset: float = 0.0,
               duration: float | None = None, channels: int | None = None) -> torch.Tensor:
    """Decode `duration` seconds from `offset` (seconds, in the file's time) → (C, S) float32 at `sample_rate`.

    Only the requested frames are decoded. `mono` averages the channels; with `mono=False`,
    `channels` (optional) demands a channel count, up-mixing mono files.
    """
    path = Path(path)
    if sample_rate <= 0:
        raise AudioError(path, f"target sample_rate must be positive, got {sample_rate}")
    with _open(path) as f:
        start, stop = _frame_range(path, f, offset, duration)
        file_rate, estimated_length = f.samplerate, f.format == "MP3"  # MP3 frame counts are estimates
        before, after = _context_frames(start, stop, f.frames, file_rate, sample_rate)
        first, last = start - before, stop + after
        try:
            if first:
                f.seek(first)
            x = f.read(last - first, dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError) as e:
            raise AudioError(path, f"undecodable audio data ({e})") from None
    if x.shape[0] == 0:
        raise AudioError(path, f"undecodable: no frames could be read at {offset} s")
    if x.shape[0] < last - first and not estimated_length:
        raise AudioError(path, f"truncated: frames {first}-{last} were promised, decoding stopped at {first + x.shape[0]}")
    finite = np.isfinite(x)
    if not finite.all():
        bad = int(np.argmin(finite.all(axis=1)))
        raise AudioError(path, f"contains NaN or infinite samples (first at frame {first + bad})")
    x = _fit_channels(path, x, mono, channels)
    if file_rate != sample_rate:
        x = resample(x, file_rate, sample_rate)
        skip = before * sample_rate // file_rate
        keep = ((stop - start) * sample_rate * 2 + file_rate) // (2 * file_rate)  # round half up, as soxr
        x = x[skip:skip + keep]
    if x.shape[0] == 0:
        raise AudioError(path, f"too short: {stop - start} frame(s) at {file_rate} Hz is less than one sample at "
                               f"{sample_rate} Hz")
    return torch.from_numpy(np.ascontiguousarray(x.T, dtype=np.float32))


def _as_channels_first(path: Path, wav: torch.Tensor | np.ndarray) -> np.ndarray:
    x = wav.detach().cpu().float().numpy() if isinstance(wav, torch.Tensor) else np.asarray(wav, dtype=np.float32)
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2:
        raise AudioError(path, f"wrong channel layout: expected a waveform (S,) or (C, S), got shape {x.shape}")
    if x.shape[0] > MAX_SAVE_CHANNELS:
        raise AudioError(path, f"wrong channel layout: shape {x.shape} has {x.shape[0]} channels; "
                               "pass (channels, samples), not (samples, channels)")
    if x.shape[1] == 0:
        raise AudioError(path, "zero-length: nothing to save")
    if not np.isfinite(x).all():
        raise AudioError(path, "refusing to save NaN or infinite samples")
    return x


def save_audio(path: str | Path, wav: torch.Tensor | np.ndarray, sample_rate: int = 24000,
               subtype: str | None = None) -> Path:
    """Write (S,) or (C, S) audio; format from the extension. Samples beyond ±1 are clipped for
    integer formats (WAV default PCM_16) rather than wrapped around."""
    path = Path(path)
    x = _as_channels_first(path, wav)
    if sample_rate <= 0:
        raise AudioError(path, f"sample_rate must be positive, got {sample_rate}")
    fmt = path.suffix.lower().lstrip(".")
    if subtype is None and fmt in ("wav", "aiff", "aif", "flac"):
        subtype = "PCM_16"
    if subtype is None or subtype.startswith("PCM"):
        x = np.clip(x, -1.0, 1.0)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        sf.write(str(path), x.T, sample_rate, subtype=subtype)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as e:
        raise AudioError(path, f"cannot write this format ({e})") from None
    return path


def crop_or_pad(wav: torch.Tensor, length: int, random: bool = False,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, int]:
    """(C, S) → (C, length) and how many zero samples were appended at the end.

    Longer clips are cropped at a random start (`random=True`, drawn from `generator`) or at 0.
    """
    if wav.ndim != 2:
        raise ValueError(f"crop_or_pad expects (channels, samples), got shape {tuple(wav.shape)}")
    if length <= 0:
        raise ValueError(f"crop_or_pad: length must be positive, got {length}")
    n = wav.shape[-1]
    if n >= length:
        start = int(torch.randint(0, n - length + 1, (1,), generator=generator)) if random and n > length else 0
        return wav[:, start:start + length], 0
    return torch.nn.functional.pad(wav, (0, length - n)), length - n

"""VGGish (Hershey et al. 2017), the embedding the paper's FAD uses, with its exact front-end.

Front-end (the AudioSet release's, reproduced in float64): 16 kHz mono → frames of 25 ms (400
samples) every 10 ms (160), no padding → periodic Hann → |rFFT| with 512 points → 64 HTK-mel bands
from 125 to 7500 Hz → log(mel + 0.01) → non-overlapping patches of 96 frames (0.96 s), each
(1, 96, 64). One second of audio gives 1 patch, ten seconds give 10; a clip shorter than
0.975 s gives none.

Network: VGG-style convs (64, M, 128, M, 256, 256, M, 512, 512, M), features flattened in
(H, W, C) order as the TensorFlow original, then 12288 → 4096 → 4096 → 128.
Weights come from a local file in the torchvggish format (a state dict with `features.*` and
`embeddings.*`; the PCA file holds `pca_eigen_vectors` (128, 128) and `pca_means` (128,)).

FAD defaults follow the established FAD tools: the 128-d output before the last ReLU and without
PCA. `postprocess=True` applies the release's PCA/whitening and 8-bit quantisation instead
(values 0..255, like the published AudioSet embeddings), `final_relu=True` keeps the last ReLU.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ...errors import CheckpointError
from .base import EmbeddingBackend
from .mel import mel_filterbank

SAMPLE_RATE = 16000
WINDOW, HOP, N_FFT = 400, 160, 512
N_MELS, FMIN, FMAX, LOG_OFFSET = 64, 125.0, 7500.0, 0.01
PATCH_FRAMES = 96
EMBEDDING_SIZE = 128
QUANTIZE_MIN, QUANTIZE_MAX = -2.0, 2.0
PUBLISHED_AT = ("https://github.com/harritaylor/torchvggish/releases/download/v0.1/vggish-10086976.pth "
                "(and the PCA file vggish_pca_params-970ea276.pth beside it, only needed for postprocess=True)")
CONV_PLAN = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M")


def waveform_to_patches(wav: torch.Tensor) -> torch.Tensor:
    """(S,) 16 kHz audio → (N, 1, 96, 64) float32 log-mel patches, exactly as VGGish's front-end."""
    x = wav.detach().to("cpu", torch.float64).reshape(-1)
    if x.numel() < WINDOW:
        return torch.zeros(0, 1, PATCH_FRAMES, N_MELS)
    frames = x.unfold(0, WINDOW, HOP) * torch.hann_window(WINDOW, periodic=True, dtype=torch.float64)
    spec = torch.fft.rfft(frames, n=N_FFT).abs()
    mel = torch.log(spec @ mel_filterbank(SAMPLE_RATE, N_FFT, N_MELS, FMIN, FMAX) + LOG_OFFSET)  # (T, 64)
    if mel.shape[0] < PATCH_FRAMES:
        return torch.zeros(0, 1, PATCH_FRAMES, N_MELS)
    return mel.unfold(0, PATCH_FRAMES, PATCH_FRAMES).transpose(1, 2)[:, None].float()


class VGGishNet(nn.Module):
    """The VGGish network; parameter names match the torchvggish state dict."""

    def __init__(self, final_relu: bool = False):
        super().__init__()
        layers: list[nn.Module] = []
        channels = 1
        for item in CONV_PLAN:
            if item == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(channels, int(item), 3, padding=1), nn.ReLU(inplace=True)]
                channels = int(item)
        self.features = nn.Sequential(*layers)
        self.embeddings = nn.Sequential(nn.Linear(512 * 4 * 6, 4096), nn.ReLU(True), nn.Linear(4096, 4096),
                                        nn.ReLU(True), nn.Linear(4096, EMBEDDING_SIZE), nn.ReLU(True))
        self.final_relu = final_relu

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        x = self.features(patches).permute(0, 2, 3, 1).flatten(1)  # TF flattens (H, W, C)
        head = self.embeddings if self.final_relu else self.embeddings[:-1]
        return head(x)


def _torch_load(path: Path) -> Any:
    """Load a .pth safely: tensors directly, numpy arrays (the PCA file) via an allow-list."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as first:  # noqa: BLE001 - numpy arrays need the allow-list below
        from numpy._core.multiarray import _reconstruct

        # files pickled under numpy 1.x name the function numpy.core.*, numpy 2.x numpy._core.*
        allowed = [np.ndarray, np.dtype, _reconstruct, (_reconstruct, "numpy.core.multiarray._reconstruct")]
        allowed += [type(np.dtype(t)) for t in ("float32", "float64")]
        try:
            with torch.serialization.safe_globals(allowed):
                return torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # noqa: BLE001
            raise CheckpointError(f"{path}: not a readable PyTorch weights file ({type(first).__name__}: {first})") from None


def _require(path: str | os.PathLike | None, what: str) -> Path:
    if path is None or str(path) == "":
        raise CheckpointError(f"VGGish needs local {what}: pass --vggish-weights PATH; they are published at {PUBLISHED_AT}")
    p = Path(path).expanduser()
    if not p.is_file():
        raise CheckpointError(f"{p}: VGGish {what} not found; download them from {PUBLISHED_AT}")
    return p


def load_pca(path: str | os.PathLike) -> tuple[torch.Tensor, torch.Tensor]:
    """(eigen_vectors (128, 128), means (128,)) in float64 from a torchvggish PCA params file."""
    p = _require(path, "PCA parameters")
    blob = _torch_load(p)
    if not isinstance(blob, dict) or not {"pca_eigen_vectors", "pca_means"} <= set(blob):
        raise CheckpointError(f"{p}: not a VGGish PCA file (expected keys 'pca_eigen_vectors' and 'pca_means')")
    vectors = torch.as_tensor(np.asarray(blob["pca_eigen_vectors"]), dtype=torch.float64)
    means = torch.as_tensor(np.asarray(blob["pca_means"]), dtype=torch.float64).reshape(-1)
    if vectors.shape != (EMBEDDING_SIZE, EMBEDDING_SIZE) or means.shape != (EMBEDDING_SIZE,):
        raise CheckpointError(f"{p}: PCA shapes {tuple(vectors.shape)} / {tuple(means.shape)}, expected (128, 128) / (128,)")
    return vectors, means


def postprocess(embeddings: torch.Tensor, vectors: torch.Tensor, means: torch.Tensor) -> torch.Tensor:
    """The AudioSet release's PCA/whitening, clipping to [-2, 2] and 8-bit quantisation (0..255)."""
    pca = (embeddings.double() - means) @ vectors.T
    clipped = pca.clamp(QUANTIZE_MIN, QUANTIZE_MAX)
    return torch.round((clipped - QUANTIZE_MIN) * (255.0 / (QUANTIZE_MAX - QUANTIZE_MIN))).float()


def _file_fingerprint(path: Path) -> str:
    st = path.stat()
    return hashlib.sha1(f"{path.resolve()}:{st.st_mtime_ns}:{st.st_size}".encode()).hexdigest()[:16]


class VGGish(EmbeddingBackend):
    """VGGish embeddings, one 128-d row per 0.96 s patch."""

    name = "vggish"
    dim = EMBEDDING_SIZE
    sample_rate = SAMPLE_RATE
    min_seconds = (WINDOW + (PATCH_FRAMES - 1) * HOP) / SAMPLE_RATE

    def __init__(self, weights: str | os.PathLike | None = None, pca: str | os.PathLike | None = None,
                 postprocess: bool = False, final_relu: bool = False, device: str | torch.device = "cpu",
                 batch_patches: int = 64):
        self.weights_path = _require(weights, "weights")
        self.net = VGGishNet(final_relu=final_relu)
        state = _torch_load(self.weights_path)
        if not isinstance(state, dict) or not any(str(k).startswith("features.") for k in state):
            raise CheckpointError(f"{self.weights_path}: not a torchvggish state dict (no 'features.*' keys)")
        from ...checkpoint import load_state_checked

        load_state_checked(self.net, {k: torch.as_tensor(v) for k, v in state.items() if not str(k).startswith("pproc")},
                           str(self.weights_path))
        self.device = torch.device(device)
        self.net.to(self.device).eval()
        self.postprocess = postprocess
        self.pca_path = None
        if postprocess:
            if pca is None:
                pca = self.weights_path.parent / "vggish_pca_params-970ea276.pth"
            self.pca_path = _require(pca, "PCA parameters")
            self.pca = load_pca(self.pca_path)
        self.final_relu = final_relu
        self.batch_patches = batch_patches

    def params(self) -> dict:
        out = {**super().params(), "weights": _file_fingerprint(self.weights_path), "postprocess": self.postprocess,
               "final_relu": self.final_relu}
        if self.pca_path is not None:
            out["pca"] = _file_fingerprint(self.pca_path)
        return out

    @torch.no_grad()
    def embed(self, wav: torch.Tensor) -> torch.Tensor:
        wav = self.check_input(wav)
        patches = torch.cat([waveform_to_patches(w[0]) for w in wav])
        if patches.shape[0] == 0:
            return torch.zeros(0, self.dim)
        out = torch.cat([self.net(chunk.to(self.device)).cpu() for chunk in patches.split(self.batch_patches)])
        return postprocess(out, *self.pca) if self.postprocess else out


def save_vggish_weights(net: VGGishNet, path: str | os.PathLike, pca: tuple[np.ndarray, np.ndarray] | None = None,
                        pca_path: str | os.PathLike | None = None) -> None:
    """Write weights (and optionally a PCA file) in the torchvggish format; used by tests and converters."""
    torch.save({k: v.detach().cpu() for k, v in net.state_dict().items()}, path)
    if pca is not None:
        torch.save({"pca_eigen_vectors": np.asarray(pca[0]), "pca_means": np.asarray(pca[1])}, pca_path)

"""Models by short name: the one shipped inside the package, and the published ones (downloaded once
from the Hugging Face hub, converted once, then loaded).

`SAT.from_pretrained("sat-audioset")`, `Pipeline.from_pretrained("aar-audioset")` and
`nextscale generate … --model aar-audioset` go through `resolve_model_dir`, which calls
`published_dir(name)` here: the authors' `.pth` files come through `huggingface_hub` (its cache,
resumable downloads, `HF_HUB_OFFLINE` honoured), the existing importer turns them into a
nextscale directory under the cache, and every later call loads that directory directly.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Callable

from .errors import CheckpointError

PUBLISHED_REPO = "qiuk6/AAR"          # where the paper's authors host their weights
SHIPPED_DIR = Path(__file__).resolve().parent / "models"     # pipelines shipped as package data
DEFAULT_MODEL = "nextscale-synth-small"   # what `nextscale generate` uses when no model is given


def shipped_models() -> dict[str, Path]:
    """Name -> pipeline directory inside the package (each holds a README.md on how it was trained)."""
    return {p.name: p for p in sorted(SHIPPED_DIR.glob("*")) if (p / "pipeline.json").is_file()}


def shipped_about(directory: Path) -> str:
    """The first line of a shipped model's README, without the heading marks."""
    readme = directory / "README.md"
    return readme.read_text(encoding="utf-8").splitlines()[0].lstrip("# ").strip() if readme.is_file() else ""


@dataclasses.dataclass(frozen=True)
class PublishedModel:
    """One name: the hub files it is made from (a SAT, optionally an AAR) and what it is."""

    sat_file: str
    aar_file: str | None
    about: str

    @property
    def files(self) -> tuple[str, ...]:
        return (self.sat_file,) + ((self.aar_file,) if self.aar_file else ())


PUBLISHED: dict[str, PublishedModel] = {
    "aar-audioset": PublishedModel("SAT_d128_lat128.pth", "AAR_d16_bs2048.pth",
                                   "AAR-d16 + its SAT (latent 128), CLAP text-conditioned: a full pipeline"),
    "sat-audioset": PublishedModel("SAT_bs_1536_d1024_lat64.pth", None,
                                   "the published SAT, latent 64: its best reconstruction"),
    "sat-audioset-lat128": PublishedModel("SAT_d128_lat128.pth", None,
                                          "the published SAT, latent 128: the tokenizer AAR-d16 was trained on"),
}

Downloader = Callable[[str, str], str]     # (repo_id, filename) -> local path


def cache_root() -> Path:
    """Where converted models live: $NEXTSCALE_CACHE, else $XDG_CACHE_HOME/nextscale, else ~/.cache/nextscale."""
    if os.environ.get("NEXTSCALE_CACHE"):
        return Path(os.environ["NEXTSCALE_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "nextscale"


def hub_download(repo_id: str, filename: str) -> str:
    from huggingface_hub import hf_hub_download

    return hf_hub_download(repo_id=repo_id, filename=filename)


def import_command(name: str) -> str:
    """The command that builds the same directory from files the user already has."""
    model = PUBLISHED[name]
    aar = f" --aar {model.aar_file}" if model.aar_file else ""
    return f"nextscale import-checkpoint --sat {model.sat_file}{aar} --out DIR"


def published_dir(name: str, download: Downloader = hub_download) -> Path:
    """The converted nextscale directory of a published model, fetching and converting it the first time."""
    from .ar.published import import_published

    if name not in PUBLISHED:
        raise CheckpointError(f"{name}: not a published model (known: {', '.join(PUBLISHED)})")
    model = PUBLISHED[name]
    target = cache_root() / "published" / name
    if (target / ("pipeline.json" if model.aar_file else "config.json")).is_file():
        return target
    paths = []
    for filename in model.files:
        try:
            paths.append(download(PUBLISHED_REPO, filename))
        except Exception as e:      # offline, missing file, no network: all fixable by the user
            raise CheckpointError(f"{name}: could not get {filename} from the Hugging Face hub repository "
                                  f"{PUBLISHED_REPO} ({type(e).__name__}: {e}). With the file(s) at hand, "
                                  f"`{import_command(name)}` builds the same model; pass DIR instead of the "
                                  f"name.") from None
    import_published(paths[0], target, aar_path=paths[1] if model.aar_file else None)   # atomic: no half copies
    return target

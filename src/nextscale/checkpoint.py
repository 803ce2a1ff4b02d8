"""Model directories (config.json + model.safetensors), written atomically, and the mixin that
gives every model `from_config` / `save_pretrained` / `from_pretrained` / `num_parameters`.

A directory is written under a temporary name, fsync'd, then renamed into place, so a kill at
any moment leaves either the old checkpoint or the new one, never a half-written one.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, ClassVar, Iterator, Mapping, Sequence

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .config import from_dict, load_config, to_dict
from .errors import CheckpointError, ConfigError

FORMAT_VERSION = 1
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def fsync_tree(path: Path) -> None:
    """Flush every file below `path` (and the directories) to disk."""
    for root, _dirs, files in os.walk(path):
        for name in files:
            with open(os.path.join(root, name), "rb+") as f:
                os.fsync(f.fileno())
        _fsync_dir(Path(root))


@contextlib.contextmanager
def atomic_directory(final: str | Path) -> Iterator[Path]:
    """Yield a temporary directory beside `final`; on success it replaces `final` atomically.

    On an exception the temporary directory is removed and `final` is untouched.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    os.chmod(tmp, 0o777 & ~_umask())      # mkdtemp makes it private; a checkpoint should not be
    try:
        yield tmp
        fsync_tree(tmp)
        if final.exists():
            old = final.parent / f".{final.name}.old-{os.getpid()}"
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
        _fsync_dir(final.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write a file through a temporary name + fsync + rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; the result should not be
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_bytes(path, json.dumps(obj, indent=2, sort_keys=False).encode("utf-8"))


def read_json(path: str | Path, error: type[Exception]) -> Any:
    """Parse a JSON file; a file that is not JSON (or not UTF-8) raises `error` naming it."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise error(f"{path}: not valid JSON ({e})") from None


def write_model_files(directory: Path, kind: str, config: Mapping[str, Any], state_dict: Mapping[str, torch.Tensor],
                      metadata: Mapping[str, Any] | None = None) -> None:
    """Write config.json + model.safetensors into an (already temporary) directory."""
    from . import __version__

    header = {"kind": kind, "format_version": FORMAT_VERSION, "nextscale_version": __version__,
              "config": dict(config)}
    if metadata:
        header["metadata"] = dict(metadata)
    (directory / CONFIG_NAME).write_text(json.dumps(header, indent=2), encoding="utf-8")
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state_dict.items()}
    save_file(tensors, str(directory / WEIGHTS_NAME))


def resolve_model_dir(path_or_id: str | Path) -> Path:
    """A local directory as is; a shipped model's name, or a published one's through `hub.published_dir`
    (`nextscale models` lists both);
    anything else of the form owner/name as a Hugging Face hub repository of a nextscale directory."""
    path = Path(path_or_id)
    if path.exists():
        if not path.is_dir():
            raise CheckpointError(f"{path}: expected a checkpoint directory (config.json + model.safetensors), got a file")
        return path
    text = str(path_or_id)
    from .hub import PUBLISHED, published_dir, shipped_models

    shipped = shipped_models()
    if text in shipped:
        return shipped[text]
    if text in PUBLISHED:
        return published_dir(text)
    if text.count("/") == 1 and not text.startswith((".", "/", "~")):
        try:
            from huggingface_hub import snapshot_download

            return Path(snapshot_download(repo_id=text))
        except Exception as e:  # offline, unknown repo, no auth: all user-fixable
            raise CheckpointError(f"{text}: not a local directory, and fetching it from the Hugging Face hub "
                                  f"failed ({type(e).__name__}: {e})") from None
    raise CheckpointError(f"{path}: checkpoint directory not found")


def read_model_files(path_or_id: str | Path, expected_kind: str | Sequence[str] | None = None
                     ) -> tuple[Path, dict[str, Any], dict[str, torch.Tensor]]:
    """Read and check a model directory; returns (dir, header from config.json, state dict)."""
    directory = resolve_model_dir(path_or_id)
    cfg_path, weights_path = directory / CONFIG_NAME, directory / WEIGHTS_NAME
    for p in (cfg_path, weights_path):
        if not p.is_file():
            raise CheckpointError(f"{directory}: incomplete checkpoint, {p.name} is missing")
    header = read_json(cfg_path, CheckpointError)
    if not isinstance(header, dict) or "kind" not in header or "config" not in header:
        raise CheckpointError(f"{cfg_path}: not a nextscale checkpoint (no 'kind'/'config' fields)")
    version = header.get("format_version", 0)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(f"{cfg_path}: checkpoint format version {version!r} is newer than this nextscale "
                              f"understands ({FORMAT_VERSION}); upgrade nextscale")
    if expected_kind is not None:
        kinds = [expected_kind] if isinstance(expected_kind, str) else list(expected_kind)
        if header["kind"] not in kinds:
            raise CheckpointError(f"{directory}: holds a '{header['kind']}' model, expected {' or '.join(repr(k) for k in kinds)}")
    try:
        state = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{weights_path}: unreadable weights ({e})") from None
    return directory, header, state


class Pretrained:
    """Mixin for nn.Modules built from a config dataclass (`self.config`).

    Subclasses set `kind` (stored in config.json and checked on load) and `config_class`.
    """

    kind: ClassVar[str]
    config_class: ClassVar[type]

    @classmethod
    def from_config(cls, config: Any = None, overrides: Sequence[str] = ()):
        """Build from a config object, dict, YAML path (a whole training YAML's `model:` works) or None."""
        return cls(load_config(config, cls.config_class, overrides, section="model"))

    def save_pretrained(self, directory: str | Path, metadata: Mapping[str, Any] | None = None) -> Path:
        directory = Path(directory)
        with atomic_directory(directory) as tmp:
            write_model_files(tmp, self.kind, to_dict(self.config), self.state_dict(), metadata)
        return directory

    @classmethod
    def config_from_header(cls, header: Mapping[str, Any], where: str = ""):
        try:
            return from_dict(cls.config_class, header["config"])
        except ConfigError as e:
            raise CheckpointError(f"{where}: config.json does not fit {cls.__name__}: {e}") from None

    @classmethod
    def from_pretrained(cls, path_or_id: str | Path, map_location: str | torch.device = "cpu"):
        directory, header, state = read_model_files(path_or_id, cls.kind)
        model = cls(cls.config_from_header(header, str(directory)))
        load_state_checked(model, state, str(directory))
        model.to(map_location)
        model.eval()
        return model

    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)  # type: ignore[attr-defined]


def load_state_checked(model: torch.nn.Module, state: Mapping[str, torch.Tensor], where: str) -> None:
    """load_state_dict with an error that names the missing/unexpected/mis-shaped keys."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
              for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing keys {missing[:5]}{' …' if len(missing) > 5 else ''}")
        if unexpected:
            parts.append(f"unexpected keys {unexpected[:5]}{' …' if len(unexpected) > 5 else ''}")
        if shapes:
            parts.append("shape mismatch " + "; ".join(shapes[:5]))
        raise CheckpointError(f"{where}: weights do not fit the model ({'; '.join(parts)})")
    model.load_state_dict(state, strict=True)

"""Training checkpoints: `run/checkpoints/step_XXXXXXX/` = model dir + optimizer.pt + rng.pt + trainer_state.json.

Each checkpoint is written into a hidden temporary directory and renamed into place (fsync'd
first), so a kill at any instant leaves only complete `step_*` directories; leftovers of a
killed write start with '.' and are never picked up (and are cleaned on the next save). The
newest `keep_last` are kept, plus a copy of the best one in `best/`.
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any, Mapping

import torch

from ..checkpoint import CONFIG_NAME, WEIGHTS_NAME, read_model_files, write_model_files

from ..config import to_dict
from ..errors import CheckpointError
from ..io import atomic_directory, atomic_write_json, read_json

OPTIMIZER_NAME = "optimizer.pt"
RNG_NAME = "rng.pt"
STATE_NAME = "trainer_state.json"
REQUIRED = (CONFIG_NAME, WEIGHTS_NAME, OPTIMIZER_NAME, RNG_NAME, STATE_NAME)
STEP_DIR = re.compile(r"^step_(\d{7,})$")


def step_dir_name(step: int) -> str:
    return f"step_{step:07d}"


def is_complete(path: Path) -> bool:
    """All files present and trainer_state.json readable (a torn directory never passes)."""
    if not all((path / name).is_file() for name in REQUIRED):
        return False
    try:
        state = read_json(path / STATE_NAME, CheckpointError)
    except (OSError, CheckpointError):
        return False
    return isinstance(state, dict) and isinstance(state.get("step"), int)


class CheckpointManager:
    """Saves, lists, prunes and loads the checkpoints of one run directory."""

    def __init__(self, run_dir: str | Path, keep_last: int = 3):
        self.root = Path(run_dir) / "checkpoints"
        self.best_dir = self.root / "best"
        self.keep_last = keep_last

    def checkpoints(self) -> list[tuple[int, Path]]:
        """Complete checkpoints, oldest first."""
        if not self.root.is_dir():
            return []
        found = []
        for path in self.root.iterdir():
            match = STEP_DIR.match(path.name)
            if match and path.is_dir() and is_complete(path):
                found.append((int(match.group(1)), path))
        return sorted(found)

    def latest(self) -> Path | None:
        found = self.checkpoints()
        return found[-1][1] if found else None

    def save(self, step: int, model: Any, training_state: Mapping[str, Any], rng_states: list[Any],
             trainer_state: Mapping[str, Any], best: bool = False) -> Path:
        """Write checkpoint `step` of `model` (a Pretrained module) atomically; prune; refresh best/."""
        final = self.root / step_dir_name(step)
        with atomic_directory(final) as tmp:
            write_model_files(tmp, model.kind, to_dict(model.config), model.state_dict())
            torch.save(dict(training_state), tmp / OPTIMIZER_NAME)
            torch.save(rng_states, tmp / RNG_NAME)
            atomic_write_json(tmp / STATE_NAME, {**trainer_state, "step": step})
        if best:
            with atomic_directory(self.best_dir) as tmp:
                for item in final.iterdir():
                    shutil.copy2(item, tmp / item.name)
        self._prune()
        return final

    def _prune(self) -> None:
        for _step, path in self.checkpoints()[:-self.keep_last]:
            shutil.rmtree(path, ignore_errors=True)
        for path in self.root.iterdir():   # leftovers of writes killed half-way
            if path.name.startswith(".step_") or path.name.startswith(".best"):
                shutil.rmtree(path, ignore_errors=True)

    @staticmethod
    def load(path: str | Path, expected_kind: str | None = None) -> dict[str, Any]:
        """{'dir', 'header', 'model_state', 'training_state', 'rng', 'trainer_state'} of one checkpoint."""
        path = Path(path)
        if not is_complete(path):
            missing = [n for n in REQUIRED if not (path / n).is_file()]
            raise CheckpointError(f"{path}: not a complete training checkpoint"
                                  + (f" (missing {', '.join(missing)})" if missing else " (bad trainer_state.json)"))
        directory, header, model_state = read_model_files(path, expected_kind)
        try:
            training_state = torch.load(path / OPTIMIZER_NAME, map_location="cpu", weights_only=True)
            rng = torch.load(path / RNG_NAME, map_location="cpu", weights_only=True)
        except Exception as e:  # torn or foreign pickle: name the file
            raise CheckpointError(f"{path}: unreadable optimizer/RNG state ({type(e).__name__}: {e})") from None
        trainer_state = read_json(path / STATE_NAME, CheckpointError)
        return {"dir": directory, "header": header, "model_state": model_state, "training_state": training_state,
                "rng": rng, "trainer_state": trainer_state}

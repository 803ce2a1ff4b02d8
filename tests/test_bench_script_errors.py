"""Every benchmark script answers a user's mistake with one `error:` line and exit status 2, not a traceback."""
from __future__ import annotations

import subprocess
import sys

import pytest

from bench_scripts import BENCHMARKS

# scripts whose `main` takes typer-annotated options (generation_speed.py forwards argv to `nextscale bench` itself)
TYPER_SCRIPTS = sorted(p for p in BENCHMARKS.glob("*.py")
                       if "typer.Option(" in p.read_text() or "typer.Argument(" in p.read_text())


@pytest.mark.parametrize("script", TYPER_SCRIPTS, ids=lambda p: p.stem)
def test_typer_scripts_run_through_run_script(script):
    """`typer.run` alone prints a NextscaleError as a traceback; `nextscale.cli.run_script` prints its message."""
    text = script.read_text()
    assert "typer.run(" not in text
    assert "run_script(main)" in text


@pytest.mark.parametrize("args, message", [
    (["demo_sampling.py", "{tmp}"], "not a finished demo folder"),
    (["recorded_corpus.py", "--out", "{tmp}", "--kinds", "podcasts"], "--kinds: unknown podcasts"),
    (["mel_anatomy.py", "--out", "{tmp}"], "mel_anatomy: give a demo folder, or both --model and --manifest"),
])
def test_user_error_is_one_line_with_exit_2(tmp_path, args, message):
    command = [sys.executable, str(BENCHMARKS / args[0])] + [a.format(tmp=tmp_path) for a in args[1:]]
    run = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2, run.stderr
    assert run.stderr.startswith("error: ") and message in run.stderr
    assert "Traceback" not in run.stderr

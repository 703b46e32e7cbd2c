"""What a first user types: --version, a mistyped subcommand, `python train_gpt.py --help`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from tools.submit.cli import main as submit_main
from tools.verify.cli import main as verify_main

REPO = Path(__file__).resolve().parents[1]


def test_version_flags():
    for main, name in ((verify_main, "verify"), (submit_main, "submit")):
        run = CliRunner().invoke(main, ["--version"])
        assert run.exit_code == 0 and run.output.startswith(f"{name}, version ")


def test_a_mistyped_subcommand_names_the_closest_ones_and_exits_2():
    run = CliRunner().invoke(verify_main, ["recrod"])
    assert run.exit_code == 2
    assert "Did you mean 'record'" in run.output and "commands: all, audit" in run.output
    nothing_close = CliRunner().invoke(submit_main, ["zzzz"])
    assert nothing_close.exit_code == 2 and "Did you mean" not in nothing_close.output


def test_train_gpt_help_lists_every_setting_and_exits_0():
    run = subprocess.run([sys.executable, "train_gpt.py", "--help"], cwd=REPO, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    assert "MAX_WALLCLOCK_SECONDS" in run.stdout and "180.0" in run.stdout and "600.0" in run.stdout
    bad = subprocess.run([sys.executable, "train_gpt.py", "--bogus"], cwd=REPO, capture_output=True, text=True,
                         timeout=120)
    assert bad.returncode == 2 and "--help" in bad.stderr

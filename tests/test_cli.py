import subprocess
import sys
from pathlib import Path

from cinefm.cli import COMMAND_MODULES, build_parser


def test_console_script_help_lists_every_stage_command():
    exe = Path(sys.executable).with_name("cinefm")
    proc = subprocess.run([str(exe), "--help"], capture_output=True, text=True, check=True)
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices  # noqa: SLF001
    assert len(commands) >= len(COMMAND_MODULES)
    for name in commands:
        assert name in proc.stdout


def test_no_command_prints_help_and_fails():
    exe = Path(sys.executable).with_name("cinefm")
    proc = subprocess.run([str(exe)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "usage" in proc.stdout.lower()

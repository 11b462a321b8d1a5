"""The examples run as users would run them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_demo_runs_to_the_end(image: str, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "demo.py")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "13.54" in proc.stdout  # state carried across calls
    assert "IndexError" in proc.stdout
    assert "chart.png:" in proc.stdout
    assert "SandboxTimeoutError" in proc.stdout
    assert "[8] Done" in proc.stdout
    assert (ROOT / "out" / "chart.png").read_bytes().startswith(b"\x89PNG")

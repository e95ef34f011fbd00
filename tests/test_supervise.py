"""The supervised child: output to files and through, timeouts end the whole group."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from rl_relay.job.supervise import run_supervised


def test_output_goes_to_files_and_through(tmp_path: Path, capfd) -> None:
    result = run_supervised(
        [
            sys.executable,
            "-c",
            "import sys; print('out'); print('err', file=sys.stderr); sys.exit(7)",
        ],
        stdout_path=tmp_path / "o.txt",
        stderr_path=tmp_path / "e.txt",
    )
    assert (result.returncode, result.timed_out, result.forwarded) == (7, False, ())
    assert (tmp_path / "o.txt").read_text() == "out\n"
    assert (tmp_path / "e.txt").read_text() == "err\n"
    captured = capfd.readouterr()
    assert "out" in captured.out and "err" in captured.err
    run_supervised(
        [sys.executable, "-c", "print('again')"],
        stdout_path=tmp_path / "o.txt",
        stderr_path=tmp_path / "e.txt",
    )
    assert (tmp_path / "o.txt").read_text() == "out\nagain\n"  # appended, not truncated


def test_timeout_ends_the_child_and_what_it_started(tmp_path: Path) -> None:
    script = (
        "import subprocess, sys, time\n"
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "print(p.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    start = time.monotonic()
    result = run_supervised(
        [sys.executable, "-c", script],
        stdout_path=tmp_path / "o.txt",
        stderr_path=tmp_path / "e.txt",
        timeout=1.0,
        kill_grace=2.0,
        passthrough=False,
    )
    assert result.timed_out
    assert time.monotonic() - start < 10
    grandchild = int((tmp_path / "o.txt").read_text().split()[0])
    stat = Path(f"/proc/{grandchild}/stat")
    assert not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X")


def test_a_command_that_cannot_start_raises(tmp_path: Path) -> None:
    import pytest

    with pytest.raises(OSError):
        run_supervised(["/no/such/learner"], stdout_path=tmp_path / "o", stderr_path=tmp_path / "e")

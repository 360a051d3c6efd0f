"""Cost of a training run: wall time (s), CPU time (s) and peak resident memory (MB).

Drivers that train in a subprocess (``mace_run_train``, ``nequip-train``, ``motep train``) run
it through :func:`run_command`, which waits with ``os.wait4`` and so gets that child's own
resource usage: its peak RSS (``ru_maxrss``, which on Linux also covers the child's own
waited-for descendants) rather than the largest of every child this process ever had. Drivers
that train in this process can report :func:`peak_rss_self_mb`, the process's peak so far
(an upper bound of the training's own).
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from surfbench.training.base import TrainingError


def _maxrss_mb(kilobytes_or_bytes: float) -> float:
    # Linux reports ru_maxrss in KiB, macOS in bytes
    return float(kilobytes_or_bytes) / (1024.0 * 1024.0 if sys.platform == "darwin" else 1024.0)


def peak_rss_self_mb() -> float:
    """Peak resident memory of this process so far (MB)."""
    return _maxrss_mb(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


@dataclass
class CommandResult:
    returncode: int
    wall_s: float
    peak_rss_mb: float | None
    log_path: Path
    cpu_s: float | None = None  # user + system CPU time of the child (s)


def thread_env(threads: int | None, extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment, with the BLAS/OpenMP/torch thread counts set if given."""
    env = dict(os.environ)
    if threads:
        for key in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            env[key] = str(threads)
    env.update(extra or {})
    return env


def run_command(cmd: Sequence[str], log_path: Path, *, cwd: Path | None = None, env: dict[str, str] | None = None,
                timeout_s: float | None = None, what: str = "training") -> CommandResult:
    """Run ``cmd`` with stdout and stderr to ``log_path``; wall time and the child's peak RSS.

    Raises :class:`TrainingError` (naming the command, the exit status and the log's last
    lines) when it cannot start, fails or runs past ``timeout_s``.
    """
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with open(log_path, "w", encoding="utf-8") as log:
        log.write("$ " + " ".join(str(c) for c in cmd) + "\n")
        log.flush()
        try:
            proc = subprocess.Popen([str(c) for c in cmd], cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL)
        except OSError as exc:
            raise TrainingError(f"{what}: cannot start {cmd[0]}: {exc}") from exc
        rusage = None
        deadline = None if timeout_s is None else start + timeout_s
        try:
            while True:
                pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
                if pid == proc.pid:
                    break
                if deadline is not None and time.perf_counter() > deadline:
                    raise TrainingError(f"{what}: {cmd[0]} ran past {timeout_s:.0f} s and was stopped; log {log_path}")
                time.sleep(0.05)
        except BaseException:  # a timeout, or the caller interrupted: the training must not outlive it
            proc.kill()
            os.wait4(proc.pid, 0)
            proc.returncode = -9
            raise
        proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    result = CommandResult(proc.returncode, wall, _maxrss_mb(rusage.ru_maxrss) if rusage else None, log_path,
                           rusage.ru_utime + rusage.ru_stime if rusage else None)
    if result.returncode != 0:
        raise TrainingError(
            f"{what}: {Path(str(cmd[0])).name} failed with exit status {result.returncode} after {wall:.0f} s; "
            f"log {log_path}:\n{tail(log_path)}"
        )
    return result


def tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(Path(path).read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return ""

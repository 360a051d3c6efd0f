"""Per-structure timeout: evaluate in a child process that can be killed.

A hung calculator cannot be stopped safely inside its own process: ``signal.alarm`` only
interrupts Python code between bytecodes, so a C extension that loops while holding the GIL
(a stuck torch kernel, a regular expression backtracking for hours) never sees it, and a
thread cannot be killed at all. So with a timeout the model lives in a child process
(``python -m surfbench.execution.guard_child``), loaded once; structures go to it one at a time
over pipes. When no result comes within the timeout the child is killed (SIGKILL, which
stops any C call), the structure is recorded with failure kind ``timeout`` and a fresh child
(loading the model again) takes the next structure. A child that dies on its own (a segfault
in a C extension, the kernel's OOM killer) gives failure kind ``crashed``.

The child is started with ``subprocess`` (not ``multiprocessing``), so it also works inside
Dask worker processes, which are daemonic and may not fork multiprocessing children. On
Linux the child asks the kernel to SIGKILL it when its parent dies, so a killed coordinator or
worker leaves no orphan behind.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from multiprocessing.connection import Connection
from typing import Any

from surfbench.evaluation.protocols import Outcome, Protocol
from surfbench.models.base import LoadedModel, ModelLoadError

TIMEOUT = "timeout"
CRASHED = "crashed"


class GuardedEvaluator:
    """A model in a killable child process; :meth:`evaluate` waits at most ``timeout_s``."""

    def __init__(self, model: LoadedModel, threads: int | None = None):
        self.model = model
        self.threads = threads
        self.info: dict[str, Any] = {}
        self._proc: subprocess.Popen | None = None
        self._to_child: Connection | None = None
        self._from_child: Connection | None = None

    # ------------------------------------------------------------------ child lifecycle
    def _start(self) -> None:
        down_r, down_w = os.pipe()  # parent -> child
        up_r, up_w = os.pipe()  # child -> parent
        env = dict(os.environ)
        # the child imports what this process can (ad-hoc 'module:factory' models included)
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "surfbench.execution.guard_child", str(down_r), str(up_w), str(os.getpid())],
            pass_fds=(down_r, up_w), env=env, stdin=subprocess.DEVNULL,
        )
        os.close(down_r)
        os.close(up_w)
        self._to_child = Connection(down_w, readable=False)
        self._from_child = Connection(up_r, writable=False)
        try:
            self._to_child.send(("init", self.model, self.threads))
            reply = self._from_child.recv()
        except (EOFError, OSError) as exc:
            code = self._stop()
            raise ModelLoadError(f"{self.model.name}: the evaluating process died while loading the model "
                                 f"(exit code {code})") from exc
        if reply[0] != "ok":
            self._stop()
            raise ModelLoadError(f"{self.model.name}: {reply[1]}")
        self.info = reply[1]

    def _stop(self) -> int | None:
        """Kill the child (if alive) and forget it; its exit code."""
        code = None
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.kill()
            code = self._proc.wait()
        for conn in (self._to_child, self._from_child):
            if conn is not None:
                with contextlib.suppress(OSError):
                    conn.close()
        self._proc = self._to_child = self._from_child = None
        return code

    close = _stop

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, protocol: Protocol, record, bulk_result: dict | None, timeout_s: float | None) -> Outcome:
        """The protocol's outcome for one record, or a ``timeout`` / ``crashed`` failure."""
        if self._proc is None:
            self._start()
        t0 = time.perf_counter()
        try:
            self._to_child.send(("eval", protocol, record, bulk_result))
            if not self._from_child.poll(timeout_s):
                pid = self.pid
                self._stop()
                return Outcome.failed(TIMEOUT, f"no result within {timeout_s:g} s; the evaluating process "
                                               f"(pid {pid}) was killed", time.perf_counter() - t0)
            reply = self._from_child.recv()
        except (EOFError, OSError):
            code = self._stop()
            return Outcome.failed(CRASHED, f"the evaluating process died (exit code {code}) on this structure",
                                  time.perf_counter() - t0)
        return reply

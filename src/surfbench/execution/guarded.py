"""Per-structure timeout: evaluate in a child process that can be killed.

A hung calculator cannot be stopped safely inside its own process: ``signal.alarm`` only
interrupts Python code between bytecodes, so a C extension that loops while holding the GIL
(a stuck torch kernel, a regular expression backtracking for hours) never sees it, and a
thread cannot be killed at all. So with a timeout the model lives in a child process
(``python -m surfbench.execution.guard_child``), loaded once; structures go to it one at a time
over pipes. A fresh child's first structure carries the model's one-off warm-up (kernel
loading, graph compilation, first allocations: 2.9 s for CHGNet's first call on CPU), which must
not be charged to it: it may take the timeout plus :data:`WARMUP_ALLOWANCE_S`, and when it took
longer than the timeout it is evaluated again, timed, on the now warm child. When no result
comes within the timeout the child is killed (SIGKILL, which stops any C call), the structure is
recorded with failure kind ``timeout`` (the message says how long it ran) and a fresh child
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
#: seconds a fresh child's first structure may take beyond the timeout: the model's one-off
#: warm-up on its first call (2.9 s for CHGNet on CPU, issue 17; a tiny warm-up structure does
#: not remove it: CHGNet's first 108-atom call after a one-atom call still took 2-3 s instead of
#: 0.9 s). A structure that really hangs as the first of a fresh child costs this much more.
WARMUP_ALLOWANCE_S = 30.0


class _Lost(Exception):
    """The child gave no reply: killed after a limit (``TIMEOUT``) or died (``CRASHED``)."""

    def __init__(self, kind: str, ran_s: float, pid: int | None, code: int | None):
        super().__init__(kind)
        self.kind, self.ran_s, self.pid, self.code = kind, ran_s, pid, code


class GuardedEvaluator:
    """A model in a killable child process; :meth:`evaluate` waits at most ``timeout_s``."""

    def __init__(self, model: LoadedModel, threads: int | None = None, warmup_allowance_s: float = WARMUP_ALLOWANCE_S):
        self.model = model
        self.threads = threads
        self.warmup_allowance_s = warmup_allowance_s
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
    def _ask(self, message: tuple, limit_s: float | None) -> tuple[Any, float]:
        """Send ``message`` to the child; its reply and the seconds it took. :class:`_Lost`
        (the child killed, or dead on its own) when none comes within ``limit_s``."""
        t0 = time.perf_counter()
        try:
            self._to_child.send(message)
            if not self._from_child.poll(limit_s):
                ran_s, pid = time.perf_counter() - t0, self.pid
                self._stop()
                raise _Lost(TIMEOUT, ran_s, pid, None)
            return self._from_child.recv(), time.perf_counter() - t0
        except (EOFError, OSError) as exc:
            ran_s, pid = time.perf_counter() - t0, self.pid
            raise _Lost(CRASHED, ran_s, pid, self._stop()) from exc

    def evaluate(self, protocol: Protocol, record, bulk_result: dict | None, timeout_s: float | None) -> Outcome:
        """The protocol's outcome for one record, or a ``timeout`` / ``crashed`` failure. The
        first structure of a fresh child may take ``timeout_s`` plus the warm-up allowance; if
        it took longer than ``timeout_s`` it is evaluated again (timed) on the warm child."""
        first = self._proc is None and timeout_s is not None
        if self._proc is None:
            self._start()
        first_s = None
        try:
            if first:
                reply, first_s = self._ask(("eval", protocol, record, bulk_result, False),
                                           timeout_s + self.warmup_allowance_s)
                if first_s <= timeout_s:
                    return reply
                first = False
            reply, _ = self._ask(("eval", protocol, record, bulk_result, first_s is not None), timeout_s)
        except _Lost as lost:
            if first:
                ran = (f"the structure ran {lost.ran_s:.2f} s in a fresh process ({self.warmup_allowance_s:g} s "
                       "allowed beyond the limit for the model's one-off warm-up)")
            elif first_s is not None:
                ran = (f"the structure ran {lost.ran_s:.2f} s in a warm process (its first evaluation, "
                       f"{first_s:.2f} s, carried the model's one-off warm-up)")
            else:
                ran = f"the structure ran {lost.ran_s:.2f} s"
            return self._lost_outcome(lost, timeout_s, ran)
        return reply

    @staticmethod
    def _lost_outcome(lost: _Lost, timeout_s: float | None, ran: str) -> Outcome:
        """The failure of a structure whose child was killed or died; ``ran``: how long it ran."""
        if lost.kind == TIMEOUT:
            return Outcome.failed(TIMEOUT, f"no result within {timeout_s:g} s: {ran}; the evaluating process "
                                           f"(pid {lost.pid}) was killed", lost.ran_s)
        return Outcome.failed(CRASHED, f"the evaluating process died (exit code {lost.code}) on this structure: {ran}",
                              lost.ran_s)

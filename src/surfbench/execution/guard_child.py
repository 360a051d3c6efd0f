"""The child process of :class:`surfbench.execution.guarded.GuardedEvaluator`:
``python -m surfbench.execution.guard_child READ_FD WRITE_FD PARENT_PID``. It loads the model
once (``init``), then answers one ``eval`` (protocol, record, bulk result, reset) at a time with
the protocol's :class:`~surfbench.evaluation.protocols.Outcome`, over pickling pipes; ``reset``
clears the calculator's cached results first, so that a structure evaluated again is computed
(and timed) again."""

from __future__ import annotations

import contextlib
import os
import sys
from multiprocessing.connection import Connection


def _die_with_parent(parent_pid: int) -> None:
    """Linux: SIGKILL this process when its parent dies (prctl PR_SET_PDEATHSIG)."""
    import signal

    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(signal.SIGKILL))
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


def _forget(calculator) -> None:
    """Clear cached results (an ASE calculator returns them for the same atoms without
    computing), through wrappers (``inner``)."""
    while calculator is not None:
        if hasattr(calculator, "reset"):
            calculator.reset()
        calculator = getattr(calculator, "inner", None)


def main(argv: list[str]) -> None:
    down_r, up_w, parent = (int(a) for a in argv)
    _die_with_parent(parent)
    inbox = Connection(down_r, writable=False)
    outbox = Connection(up_w, readable=False)
    calculator = None
    while True:
        try:
            msg = inbox.recv()
        except EOFError:  # the parent closed the pipe or died
            return
        if msg[0] == "init":
            _, model, threads = msg
            try:
                from surfbench.execution.tasks import calculator_info, set_threads

                calculator = model.calculator
                n_threads = set_threads(threads)  # after the build: the model's libraries are loaded
                outbox.send(("ok", {**calculator_info(calculator), "threads": n_threads, "pid": os.getpid()}))
            except Exception as exc:  # reported to the parent as a model load error
                outbox.send(("error", f"{type(exc).__name__}: {exc}"))
        elif msg[0] == "eval":
            _, protocol, record, bulk_result, reset = msg
            if reset:
                _forget(calculator)
            try:
                outcome = protocol.calc_record(record, calculator, bulk_result)
            except Exception as exc:  # protocols should not raise; record it rather than crash
                from surfbench.evaluation.protocols import CALCULATOR_ERROR, Outcome

                outcome = Outcome.failed(CALCULATOR_ERROR, f"{type(exc).__name__}: {exc}")
            outbox.send(outcome)


if __name__ == "__main__":
    main(sys.argv[1:])

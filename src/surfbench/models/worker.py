"""Worker process for models in their own environment (see :mod:`surfbench.models.isolated`).

Protocol: one JSON object per line on stdin, one reply per line on stdout. Operations:
``init`` (spec, device, dtype, weights), ``fingerprint``, ``build``, ``calculate`` (numbers,
positions, cell, pbc, properties) and ``close``. A failing ``calculate`` replies with
``error`` (the parent records it as a failed structure); a failing ``init`` / ``build`` /
``fingerprint`` replies with ``fatal``.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from dataclasses import asdict


def main() -> None:
    out = sys.stdout
    sys.stdout = sys.stderr  # anything a package prints must not corrupt the protocol
    if os.environ.get("SURFBENCH_TORCH_THREADS"):
        with contextlib.suppress(ImportError):
            import torch

            torch.set_num_threads(int(os.environ["SURFBENCH_TORCH_THREADS"]))
    model = None

    def reply(obj) -> None:
        out.write(json.dumps(obj) + "\n")
        out.flush()

    for line in sys.stdin:
        msg = json.loads(line)
        op = msg.get("op")
        if op == "close":
            reply({"ok": True})
            break
        try:
            if op == "init":
                from surfbench.models.base import LoadedModel, ModelSpec
                from surfbench.models.registry import backend_class

                entry = dict(msg["spec"])
                entry["elements"] = tuple(entry["elements"]) if entry.get("elements") else None
                spec = ModelSpec(**entry)
                backend = backend_class(spec)(spec, device=msg.get("device", "cpu"), dtype=msg.get("dtype"),
                                              weights=msg.get("weights"), **spec.kwargs)
                model = LoadedModel(spec, backend)
                reply({"ok": True})
            elif op == "fingerprint":
                reply({"fingerprint": asdict(model.fingerprint)})
            elif op == "build":
                model.calculator  # noqa: B018 - builds and caches it
                reply({"ok": True})
            elif op == "calculate":
                from ase import Atoms

                atoms = Atoms(numbers=msg["numbers"], positions=msg["positions"], cell=msg["cell"], pbc=msg["pbc"])
                atoms.calc = model.calculator
                props = msg.get("properties", ["energy"])
                try:
                    result = {"energy": float(atoms.get_potential_energy())}
                    if "forces" in props:
                        result["forces"] = atoms.get_forces().tolist()
                    if "stress" in props:
                        result["stress"] = atoms.get_stress().tolist()
                except Exception as exc:  # a failing structure, recorded by the parent
                    result = {"error": f"{type(exc).__name__}: {exc}"}
                reply(result)
            else:
                reply({"fatal": f"unknown op {op!r}"})
        except Exception as exc:
            reply({"fatal": f"{type(exc).__name__}: {exc}"})


if __name__ == "__main__":
    main()

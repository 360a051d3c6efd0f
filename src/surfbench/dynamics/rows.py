"""A finished MD run as a row of the store's ``md_runs`` table (:mod:`surfbench.store.md_runs`):
its verdict and numbers (NaN and inf stored as NULL, never 0), the settings as JSON, the sampled
time series (time in fs, temperature in K, potential and total energy per atom in eV/atom) as
JSON for the report, and the trajectory path relative to the store's folder.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from surfbench.dynamics.md import MDRun
from surfbench.store.schema import MD_NUMBER_COLUMNS


def _num(value) -> float | None:
    """A float for SQLite; None (NULL) for NaN/inf, never 0."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _series(run: MDRun, n_atoms: int) -> str:
    s = run.samples
    epot = np.asarray(s.epot_ev, dtype=float) / n_atoms
    etot = (np.asarray(s.epot_ev, dtype=float) + np.asarray(s.ekin_ev, dtype=float)) / n_atoms
    clean = lambda a: [_num(v) for v in a]  # noqa: E731 - JSON has no NaN
    return json.dumps({
        "time_fs": clean(s.time_fs), "temperature_k": clean(s.temperature_k),
        "epot_ev_per_atom": clean(epot), "etot_ev_per_atom": clean(etot),
    })


def md_row(
    *, root: Path, dataset: str, record_id: str, fingerprint: str, protocol: str, content_hash: str, model: str,
    element: str, preset: str, settings: dict, run: MDRun, n_atoms: int, device: str = "",
    threads: int | None = None,
) -> dict[str, Any]:
    """The ``md_runs`` row of ``run`` (``root``: the store's folder, which the trajectory path is
    made relative to when it lies inside it)."""
    v = run.verdict
    traj = None
    if run.trajectory is not None:
        path = Path(run.trajectory).resolve()
        inside = path.is_relative_to(root.resolve())
        traj = path.relative_to(root.resolve()).as_posix() if inside else str(path)
    return {
        "dataset": dataset, "record_id": record_id, "fingerprint": fingerprint, "protocol": protocol,
        "content_hash": content_hash, "model": model, "element": element, "preset": preset,
        "thermostat": settings["thermostat"], "temperature_k": run.temperature_k,
        "timestep_fs": settings["timestep_fs"], "steps": settings["steps"], "seed": settings["seed"],
        "settings": json.dumps(settings, sort_keys=True), "verdict": v.verdict, "failure_kind": v.failure_kind,
        "message": v.message[:2000], "steps_done": run.steps_done,
        "time_ps": run.steps_done * settings["timestep_fs"] / 1000.0,
        **{c: _num(v.numbers.get(c)) for c in MD_NUMBER_COLUMNS},
        "trajectory": traj, "series": _series(run, n_atoms), "wall_s": run.wall_s, "device": device,
        "threads": threads, "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }

"""Run the MD check of a model on selected slabs, reusing what the store already holds."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from surfbench.dynamics.md import run_md
from surfbench.dynamics.presets import MDSettings, protocol_key
from surfbench.dynamics.rows import md_row
from surfbench.dynamics.select import Choice
from surfbench.dynamics.verdicts import Thresholds
from surfbench.models.base import LoadedModel
from surfbench.models.model_info import cap_threads, model_details
from surfbench.records import Dataset
from surfbench.store.md_runs import MDStore
from surfbench.store.results import ResultStore

#: (record id, element, temperature K, steps) when a run starts; (steps done, steps) as it goes
StartFn = Callable[[str, str, float, int], None]
StepFn = Callable[[int, int], None]


@dataclass
class CheckResult:
    record_id: str
    element: str
    protocol: str
    reused: bool
    row: dict


def _safe(text: str) -> str:
    """A file name part: no '@' (ASE's read takes 'file@index'), no separators."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "x"


def trajectory_path(root: Path, fingerprint: str, record_id: str, protocol: str) -> Path:
    """``<store folder>/md/<fingerprint>/<record id>.<settings digest>.traj`` (ASE trajectory;
    '@' and path separators replaced by '_')."""
    return root / "md" / _safe(fingerprint) / f"{_safe(record_id)}.{protocol.split('@', 1)[-1]}.traj"


def run_checks(
    dataset: Dataset, choices: list[Choice], model: LoadedModel, store: ResultStore, settings: MDSettings,
    thresholds: Thresholds | None = None, *, preset: str = "custom", threads: int | None = None,
    rerun: bool = False, on_start: StartFn | None = None, on_step: StepFn | None = None,
) -> list[CheckResult]:
    """One NVT run per chosen slab (unless the store holds it for the same structure, model
    fingerprint and settings, or ``rerun``); every run is stored at once with its verdict."""
    thresholds = thresholds or Thresholds()
    md_store = MDStore(store)
    fp = model.fingerprint
    store.put_records(dataset)
    out: list[CheckResult] = []
    calculator = None
    n_threads = None
    for choice in choices:
        rec = choice.record
        key = settings.key(rec.element, thresholds.as_dict())
        protocol = protocol_key(key)
        row = None if rerun else md_store.get(dataset.name, rec.id, fp.id, protocol, rec.content_hash)
        if row is not None:
            out.append(CheckResult(rec.id, rec.element, protocol, True, row))
            continue
        if calculator is None:
            calculator = model.calculator
            n_threads = cap_threads(threads)  # after the build: the model's libraries are loaded
            store.put_model(fp, model_details(model, calculator))
        temperature = settings.temperature_for(rec.element)
        if on_start is not None:
            on_start(rec.id, rec.element, temperature, settings.steps)
        traj = trajectory_path(md_store.root, fp.id, rec.id, protocol)
        run = run_md(rec.atoms, calculator, settings, temperature, thresholds, trajectory=traj, progress=on_step)
        md_store.put(md_row(root=md_store.root, dataset=dataset.name, record_id=rec.id, fingerprint=fp.id,
                            protocol=protocol, content_hash=rec.content_hash, model=model.name, element=rec.element,
                            preset=preset, settings=key, run=run, n_atoms=rec.n_atoms, device=model.device,
                            threads=n_threads))
        out.append(CheckResult(rec.id, rec.element, protocol, False,
                               md_store.get(dataset.name, rec.id, fp.id, protocol)))
    return out

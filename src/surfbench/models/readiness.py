"""Whether a registry model can run here without a download: the "here" column of
``surfbench models`` and the models that ``surfbench run --model offline`` runs. Nothing is
imported or downloaded to decide it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from surfbench.models.base import ModelSpec


@dataclass(frozen=True)
class Readiness:
    ready: bool
    reason: str  # "ready", "package missing", "weights to download", ...
    colour: str | None = None  # rich colour of the reason in the models table

    @property
    def markup(self) -> str:
        return f"[{self.colour}]{self.reason}[/]" if self.colour else self.reason


def readiness(spec: ModelSpec) -> Readiness:
    """Ready when its package is installed and its weights are in the package, in the cache or
    at their local path. A model that runs in another Python (``python:``) is not checked here."""
    from surfbench.models.weights import resolve_weights
    from surfbench.util import package_version

    if spec.python:
        return Readiness(False, f"worker in {spec.python}")
    if spec.package and package_version(spec.package) == "not-installed":
        return Readiness(False, "package missing", "red")
    source = spec.weights.get("source")
    if source == "download":
        try:
            resolve_weights(spec, download=False)
        except Exception:  # noqa: BLE001 - any reason it is not in the cache means: not here
            return Readiness(False, "weights to download", "yellow")
    elif source == "local":
        if not spec.weights.get("path"):
            return Readiness(False, "needs --weights")
        if not Path(spec.weights["path"]).exists():
            return Readiness(False, "weights missing", "red")
    return Readiness(True, "ready", "green")


def offline_models() -> tuple[list[str], list[tuple[str, str]]]:
    """The registry's models that are ready here, and (name, reason) for the others."""
    from surfbench.models.registry import list_specs

    ready: list[str] = []
    skipped: list[tuple[str, str]] = []
    for spec in list_specs():
        r = readiness(spec)
        if r.ready:
            ready.append(spec.name)
        else:
            skipped.append((spec.name, r.reason))
    return ready, skipped

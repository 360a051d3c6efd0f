"""The evaluation protocols by name: the one table ``surfbench run --protocol`` (its help and its
options), :func:`surfbench.evaluate` (``protocol="..."``) and the runner read.

An entry names the protocol's class (imported on first use: ``relax.py`` costs 0.6 s for its ASE
constraints, which a static run never pays) and the settings the command line passes it. What a
protocol needs is declared on its class: ``needs_bulk`` (a slab reads its bulk's result under the
same protocol), ``builds_structures`` (it can evaluate reference-value records) and
``needs_first`` (protocols run before it on the same records, with their defaults: the relaxed
protocol's split of the error into its static and relaxation parts needs the static run).

Adding a protocol: a :class:`~surfbench.evaluation.protocols.Protocol` subclass in its own module
of this package, and one :class:`ProtocolEntry` in :data:`PROTOCOLS` (a setting the command line
does not have yet also needs its ``surfbench run`` option, in ``cli/run.py``).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from surfbench.evaluation.protocols import Protocol

__all__ = ["PROTOCOLS", "ProtocolEntry", "get_protocol", "protocol_entry", "protocol_from_options", "protocols_help"]


@dataclass(frozen=True)
class ProtocolEntry:
    """One protocol: the name a user types, its class as ``"module:Class"``, a few words for
    ``--protocol``'s help, and the settings (keyword arguments of the class, e.g.
    ``fmax_ev_per_a`` in eV/Angstrom) it takes from the command line's options."""

    name: str
    target: str
    summary: str
    options: tuple[str, ...] = ()

    def build(self, **settings: object) -> Protocol:
        """The protocol with ``settings`` (ValueError for settings it refuses)."""
        module, _, cls = self.target.partition(":")
        return getattr(importlib.import_module(module), cls)(**settings)


#: the protocols, in the order the help lists them
PROTOCOLS: dict[str, ProtocolEntry] = {e.name: e for e in (
    ProtocolEntry("static", "surfbench.evaluation.protocols:StaticProtocol", "DFT geometries"),
    ProtocolEntry("relaxed", "surfbench.evaluation.relax:RelaxedProtocol", "the model's own minimum",
                  ("fmax_ev_per_a", "steps", "optimizer", "fix_bottom_layers")),
    ProtocolEntry("model-built", "surfbench.evaluation.model_built:ModelBuiltProtocol",
                  "the model builds and relaxes its own bulk and slab; needed for reference-value data sets such as "
                  "mse21", ("fmax_ev_per_a", "steps", "optimizer", "layers", "vacuum_a")),
)}


def protocol_entry(name: str) -> ProtocolEntry:
    """The entry of ``name``; ValueError naming the known protocols for an unknown one."""
    try:
        return PROTOCOLS[name]
    except KeyError:
        raise ValueError(f"unknown protocol {name!r}; known: {', '.join(PROTOCOLS)}") from None


def get_protocol(name: str, **settings: object) -> Protocol:
    """A protocol by name (``static``, ``relaxed``, ``model-built``), with its settings as keyword arguments."""
    return protocol_entry(name).build(**settings)


def protocol_from_options(name: str, options: Mapping[str, object]) -> Protocol:
    """The protocol ``name`` built from a command line's options (setting name -> value): the
    settings it takes (:attr:`ProtocolEntry.options`) that were given (not None); the others,
    e.g. ``fix_bottom_layers`` under ``static``, are ignored. ValueError for an unknown protocol
    or settings it refuses (a vacuum under 5 Angstrom, ...)."""
    entry = protocol_entry(name)
    return entry.build(**{key: options[key] for key in entry.options if options.get(key) is not None})


def protocols_help() -> str:
    """``static (DFT geometries), relaxed (...) or model-built (...)``: every protocol with its summary."""
    parts = [f"{e.name} ({e.summary})" for e in PROTOCOLS.values()]
    return parts[0] if len(parts) == 1 else f"{', '.join(parts[:-1])} or {parts[-1]}"

"""A potential's own per-atom features, and a per-atom energy correction added inside its network.

Every supported family reads its energy out of invariant per-atom features ``h_i`` (eV-free
numbers, one vector per atom) with a per-atom read-out whose outputs are summed into the total
energy. A :class:`FeatureTap` puts PyTorch hooks on that read-out:

* it records ``h_i`` and the atomic numbers of the last forward pass, so that one energy-only
  forward gives the model's energy *and* its features (:meth:`FeatureTap.energy_and_features`);
* when a :class:`Readout` is active it adds ``c_i = w_Z . h_i + b_Z`` (eV) to each atom's
  energy inside the network, so the total energy becomes ``E = E_base + sum_i c_i`` and the
  package's own autograd forces and stress are the exact derivatives of the corrected energy.

Where the hooks sit (the input of the per-atom energy read-out, and how its output enters the
total energy):

==========  ================================================  ===================================
family      features ``h_i``                                  correction added to
==========  ================================================  ===================================
SevenNet    node features after ``reduce_input_to_hidden``    ``atomic_energy`` (after the
            (the input of ``reduce_hidden_to_energy``)        species-wise rescale), eV
CHGNet      atom features after the last atom convolution     the per-atom output of ``mlp``
            (and ``readout_norm``), the input of ``mlp``      (summed to the total energy), eV
matgl       node features entering ``final_layer``            the per-atom output of
(TensorNet,                                                   ``final_layer``, divided by the
M3GNet)                                                       potential's ``data_std``
==========  ================================================  ===================================

Each row is checked by the tests: with a readout active, the calculator's energy minus the
base energy equals ``sum_i (w_Z . h_i + b_Z)`` and the forces and stress match finite
differences of the corrected energy.

Units: energies eV; features have the model's own (dimensionless) scale.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from ase.data import atomic_numbers, chemical_symbols


class FeatureError(ValueError):
    """Per-atom features or a read-out correction are not available for this model or structure."""


# ---------------------------------------------------------------------------- coefficients


@dataclass(frozen=True)
class Readout:
    """Per-element linear read-out on a model's per-atom features: ``c_i = w_Z . h_i + b_Z`` (eV).

    ``weights``: (n_elements, n_features), eV per feature unit; ``bias_ev``: (n_elements,), eV
    per atom; rows in the order of ``elements`` (sorted symbols).
    """

    elements: tuple[str, ...]
    weights: np.ndarray
    bias_ev: np.ndarray
    base_fingerprint: str = ""  # the model whose features these are
    info: dict[str, Any] | None = None  # how it was fitted (free form, stored with it)

    def __post_init__(self) -> None:
        w = np.asarray(self.weights, dtype=float)
        b = np.asarray(self.bias_ev, dtype=float)
        if w.ndim != 2 or w.shape[0] != len(self.elements) or b.shape != (len(self.elements),):
            raise FeatureError(f"readout: weights {w.shape} and bias {b.shape} do not match elements {self.elements}")
        if not (np.all(np.isfinite(w)) and np.all(np.isfinite(b))):
            raise FeatureError("readout: non-finite coefficients")
        object.__setattr__(self, "weights", w)
        object.__setattr__(self, "bias_ev", b)
        object.__setattr__(self, "elements", tuple(self.elements))

    @property
    def n_features(self) -> int:
        return int(self.weights.shape[1])

    @property
    def n_parameters(self) -> int:
        return int(self.weights.size + self.bias_ev.size)

    def correction_ev(self, features: np.ndarray, numbers: np.ndarray) -> np.ndarray:
        """``c_i`` (eV) of each atom from its features (n, d) and atomic numbers (n,)."""
        rows = self._rows(numbers)
        return np.einsum("ij,ij->i", np.asarray(features, dtype=float), self.weights[rows]) + self.bias_ev[rows]

    def _rows(self, numbers) -> np.ndarray:
        index = {atomic_numbers[el]: i for i, el in enumerate(self.elements)}
        try:
            return np.array([index[int(z)] for z in np.asarray(numbers)], dtype=int)
        except KeyError as exc:
            raise FeatureError(f"readout fitted for {', '.join(self.elements)} has no coefficients for "
                               f"{chemical_symbols[int(exc.args[0])]}") from None

    def to_json(self) -> str:
        return json.dumps({
            "kind": "surfbench-readout", "elements": list(self.elements), "base_fingerprint": self.base_fingerprint,
            "weights": self.weights.tolist(), "bias_ev": self.bias_ev.tolist(), "info": self.info or {},
        }, indent=1, sort_keys=True)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(self.to_json(), encoding="utf-8")
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> Readout:
        path = Path(path)
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
            if d.get("kind") != "surfbench-readout":
                raise FeatureError(f"{path}: not a surfbench readout file (kind {d.get('kind')!r})")
            return cls(elements=tuple(d["elements"]), weights=np.asarray(d["weights"], dtype=float),
                       bias_ev=np.asarray(d["bias_ev"], dtype=float), base_fingerprint=d.get("base_fingerprint", ""),
                       info=d.get("info") or {})
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
            raise FeatureError(f"{path}: cannot read the readout ({type(exc).__name__}: {exc})") from None


# ---------------------------------------------------------------------------- taps


class FeatureTap:
    """Hooks on one family's calculator (module docs). One tap per calculator object."""

    family = ""

    def __init__(self, inner: Calculator):
        self.inner = inner
        self.readout: Readout | None = None
        self._torch_readout: tuple[Any, Any, Any] | None = None  # (lookup, weights, bias) tensors of self.readout
        self.last_features = None  # torch tensor (n, d) of the last forward
        self.last_numbers: np.ndarray | None = None
        self._install()

    # -- per family
    def _install(self) -> None:
        raise NotImplementedError

    def _energy_only(self, atoms: Atoms) -> float:
        """The base model's energy (eV) by a forward pass without forces."""
        raise NotImplementedError

    # -- shared
    def _correction(self, h, numbers):
        """Record ``h`` and ``numbers`` (tensors); the correction tensor (n,) or None."""
        import torch

        self.last_features = h.detach()
        self.last_numbers = numbers.detach().cpu().numpy().astype(int)
        if self.readout is None:
            return None
        if self._torch_readout is None or self._torch_readout[0].device != h.device:
            r = self.readout
            if r.n_features != h.shape[-1]:
                raise FeatureError(f"readout has {r.n_features} features per atom, the model gives {h.shape[-1]}")
            lookup = torch.full((119,), -1, dtype=torch.long)
            for i, el in enumerate(r.elements):
                lookup[atomic_numbers[el]] = i
            self._torch_readout = (lookup.to(h.device), torch.as_tensor(r.weights, device=h.device),
                                   torch.as_tensor(r.bias_ev, device=h.device))
        lookup, w, b = self._torch_readout
        rows = lookup[numbers.long()]
        if bool((rows < 0).any()):
            r = self.readout
            missing = sorted({chemical_symbols[int(z)] for z in numbers[rows < 0].tolist()})
            raise FeatureError(f"readout fitted for {', '.join(r.elements)} has no coefficients for {', '.join(missing)}")
        return ((h.to(w.dtype) * w[rows]).sum(-1) + b[rows]).to(h.dtype)

    def use(self, readout: Readout | None) -> None:
        self.readout = readout
        self._torch_readout = None

    def energy_and_features(self, atoms: Atoms) -> tuple[float, np.ndarray, np.ndarray]:
        """(base energy in eV, per-atom features (n, d), atomic numbers (n,)) from one
        energy-only forward pass, with no correction active; ``atoms`` is evaluated as a fully
        periodic cell."""
        work = atoms.copy()
        work.pbc = True
        work.calc = None
        saved = self.readout
        self.use(None)
        try:
            energy = float(self._energy_only(work))
        finally:
            self.use(saved)
        h = self.last_features.cpu().numpy().astype(float).reshape(len(work), -1)
        if self.last_numbers is None or not np.array_equal(self.last_numbers, work.numbers):
            raise FeatureError(f"{self.family}: the features do not follow the atom order of the structure")
        if not (np.isfinite(energy) and np.all(np.isfinite(h))):
            raise FeatureError(f"{self.family}: non-finite energy or features for {work.get_chemical_formula()}")
        return energy, h, work.numbers.copy()


class _SevenNetTap(FeatureTap):
    family = "SevenNet"

    def _install(self) -> None:
        import sevenn._keys as KEY

        self._key = KEY
        module = self.inner.model._modules.get("rescale_atomic_energy")
        if module is None or "reduce_hidden_to_energy" not in self.inner.model._modules:
            raise FeatureError("this SevenNet model has no rescale_atomic_energy / reduce_hidden_to_energy read-out")
        module.register_forward_hook(self._hook)

    def _hook(self, module, inputs, data):
        KEY = self._key
        corr = self._correction(data[KEY.NODE_FEATURE], data[KEY.ATOMIC_NUMBERS])
        if corr is not None:
            energy = data[KEY.ATOMIC_ENERGY]
            data[KEY.ATOMIC_ENERGY] = energy + corr.view(energy.shape).to(energy.dtype)
        return data

    def _energy_only(self, atoms: Atoms) -> float:
        import torch
        from sevenn.atom_graph_data import AtomGraphData
        from sevenn.train.dataload import unlabeled_atoms_to_graph

        calc, KEY = self.inner, self._key
        data = AtomGraphData.from_numpy_dict(unlabeled_atoms_to_graph(atoms, calc.cutoff, with_shift=False))
        if getattr(calc, "modal", None):
            data[KEY.DATA_MODALITY] = calc.modal
        data.to(calc.device)
        model = calc.model
        with torch.no_grad():  # as SevenNetCalculator.calculate, without the force/stress module
            data = model._preprocess(data)
            for name, module in model._modules.items():
                if name == "force_output":
                    break
                data = module(data)
        return float(data[KEY.PRED_TOTAL_ENERGY].detach().cpu().reshape(-1)[0])


class _ChgnetTap(FeatureTap):
    family = "CHGNet"

    def _install(self) -> None:
        model = self.inner.model
        if not getattr(model, "mlp_first", False):
            raise FeatureError("this CHGNet model reads its energy out of pooled crystal features (mlp_first False): "
                               "it has no per-atom read-out")
        self._numbers = None
        model.atom_embedding.register_forward_pre_hook(self._numbers_hook)
        model.mlp.register_forward_hook(self._hook)

    def _numbers_hook(self, module, inputs):
        self._numbers = inputs[0] + 1  # CHGNet embeds atomic_number - 1

    def _hook(self, module, inputs, out):
        corr = self._correction(inputs[0], self._numbers)
        return None if corr is None else out + corr.view(out.shape).to(out.dtype)

    def _energy_only(self, atoms: Atoms) -> float:
        from pymatgen.io.ase import AseAtomsAdaptor

        calc = self.inner
        structure = AseAtomsAdaptor.get_structure(atoms)
        graph = calc.model.graph_converter(structure)
        pred = calc.model.predict_graph(graph.to(calc.device), task="e")
        per_atom = float(np.asarray(pred["e"]).reshape(-1)[0])
        return per_atom * len(atoms) if calc.model.is_intensive else per_atom


class _MatglTap(FeatureTap):
    family = "matgl"

    def _install(self) -> None:
        potential = self.inner.potential
        model = potential.model
        if getattr(model, "is_intensive", False) or not hasattr(model, "final_layer"):
            raise FeatureError(f"this matgl model ({type(model).__name__}) has no per-atom energy read-out")
        self._types = None
        self._element_numbers = np.array([atomic_numbers[s] for s in model.element_types])
        model.register_forward_pre_hook(self._graph_hook, with_kwargs=True)
        model.final_layer.register_forward_hook(self._hook)

    def _graph_hook(self, module, args, kwargs):
        g = kwargs.get("g", args[0] if args else None)
        self._types = getattr(g, "node_type", None)

    def _hook(self, module, inputs, out):
        import torch

        numbers = torch.as_tensor(self._element_numbers, device=out.device)[self._types.long()]
        corr = self._correction(inputs[0], numbers)
        if corr is None:
            return None
        std = self.inner.potential.data_std
        return out + (corr.view(out.shape) / std).to(out.dtype)

    def _energy_only(self, atoms: Atoms) -> float:
        potential = self.inner.potential
        graph, lattice, state_attr = self.inner._atoms2graph.get_graph(atoms)
        flags = potential.calc_forces, potential.calc_stresses
        potential.calc_forces = potential.calc_stresses = False
        try:
            result = potential(graph, lattice, state_attr if self.inner.state_attr is None else self.inner.state_attr)
        finally:
            potential.calc_forces, potential.calc_stresses = flags
        return float(result[0].detach().cpu().reshape(-1)[0])


#: backend class name -> tap class
_TAPS: dict[str, type[FeatureTap]] = {
    "SevenNetBackend": _SevenNetTap,
    "ChgnetBackend": _ChgnetTap,
    "MatglBackend": _MatglTap,
}


def supports_readout(model) -> bool:
    """Whether surfbench can tap this loaded model's per-atom features (and correct its read-out)."""
    return type(model.backend).__name__ in _TAPS


def tap_families() -> str:
    return ", ".join(sorted(t.family for t in _TAPS.values()))


def tap_for(model) -> FeatureTap:
    """The tap on a loaded model's own calculator (made once per calculator)."""
    kind = type(model.backend).__name__
    if kind not in _TAPS:
        raise FeatureError(
            f"model {model.name} ({model.spec.family or kind}) exposes no per-atom read-out features in surfbench; "
            f"they are implemented for {tap_families()}")
    inner = model.calculator.inner  # the family's own calculator inside surfbench's PeriodicCalculator
    tap = getattr(inner, "_surfbench_tap", None)
    if tap is None:
        tap = _TAPS[kind](inner)
        inner._surfbench_tap = tap
    return tap


class ReadoutCalculator(Calculator):
    """A family's calculator with a :class:`Readout` active inside its network: energy
    ``E_base + sum_i (w_Z . h_i + b_Z)`` (eV), forces (eV/Angstrom) and stress (the family's
    unit) by the family's own autograd, so they are exact derivatives of that energy. Asked
    for the energy alone (the static protocol), it runs the energy-only pass (about 4x faster
    for SevenNet; the same energy)."""

    implemented_properties = ["energy", "free_energy", "forces", "stress"]

    def __init__(self, tap: FeatureTap, readout: Readout):
        super().__init__()
        self.tap = tap
        self.readout = readout

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        work = self.atoms.copy()
        self.tap.inner.reset()  # the inner calculator is shared: never reuse its cached results
        self.tap.use(self.readout)
        try:
            if set(properties) <= {"energy", "free_energy"}:  # one forward pass without the force graph
                work.pbc = True
                self.results["energy"] = self.results["free_energy"] = float(self.tap._energy_only(work))
                return
            work.calc = self.tap.inner
            self.results["energy"] = self.results["free_energy"] = float(work.get_potential_energy())
            if "forces" in properties or "stress" in properties:
                self.results["forces"] = np.asarray(work.get_forces())
            if "stress" in properties:
                self.results["stress"] = np.asarray(work.get_stress())
        finally:
            self.tap.use(None)
            self.tap.inner.reset()

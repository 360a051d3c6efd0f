"""Training presets: ``paper`` (the paper's protocol), ``cpu-quick`` (small models, few epochs,
for 2 CPU cores) and ``tiny`` (one or two epochs of a minimal model: the test suite's
end-to-end runs), per method and mode.

:func:`resolve` merges, in order: the preset's settings shared by all methods, the method's
settings, the method's settings of the mode (``scratch`` / ``finetune``), then the caller's
overrides (``surfbench train --set key=value``). The result is the ``settings`` dict of a
:class:`surfbench.training.base.TrainJob`; every driver reads the keys it knows and records
the whole dict with the trained model.

Shared vocabulary (a driver translates it to its package's names and units):

==================  ==========================================================================
key                 meaning
==================  ==========================================================================
epochs              maximum number of passes over the training frames
patience            early stopping: epochs without a lower validation loss before stopping
                    (None: no early stopping)
batch_size          training frames per optimiser step
lr                  learning rate of the optimiser (Adam / AMSGrad as the package does)
energy_weight       weight of the energy term; the term is the mean squared error of the
                    energy *per atom* ((eV/atom)^2) unless the method's row in the docs
                    table says otherwise
force_weight        weight of the force term, mean squared error per component ((eV/A)^2)
stress_weight       weight of the stress term (units per method, docs table); stress is
                    used only when every training and validation frame has one (the Ni and Cu
                    training frames of the mlearn extxyz have none): ``use_stress`` then
                    becomes False and the run says so
cutoff_a            radial cut-off (Angstrom) of a model trained from scratch (a fine-tuned
                    model keeps its foundation's)
valid_fraction,     validation frames: round(valid_fraction x pool), at most max_valid
max_valid           (``n_valid``: exactly that many)
max_test_frames     evaluate energies and forces on at most this many test frames (a seeded
                    choice; None: all)
dtype               training precision (float32 / float64)
==================  ==========================================================================

Method-specific keys are documented in each driver module. A driver module may define its own
presets (``DEFAULT_SETTINGS``, same form as :data:`METHOD_SETTINGS` for one method); where it
does, they replace this module's for that method and preset. The numbers and their sources are
the presets table of docs/commands/train.md (:func:`preset_table` prints it).
"""

from __future__ import annotations

import copy
from typing import Any

from surfbench.training.base import FINETUNE, SCRATCH, TrainingError

PRESET_NAMES = ("paper", "cpu-quick", "tiny")
METHODS = ("mace", "nequip", "mtp", "m3gnet", "chgnet", "sevennet", "readout", "snap", "qsnap")

#: preset -> settings shared by every method
COMMON: dict[str, dict[str, Any]] = {
    # the paper: 200 epochs with early stopping after 50 epochs without improvement
    "paper": {"epochs": 200, "patience": 50, "valid_fraction": 0.1, "max_valid": None, "dtype": "float64"},
    "cpu-quick": {"epochs": 20, "patience": 10, "valid_fraction": 0.1, "max_valid": 10, "dtype": "float32"},
    # the test suite's end-to-end runs: a few test frames only (max_test_frames)
    "tiny": {"epochs": 1, "patience": None, "valid_fraction": 0.1, "max_valid": 2, "dtype": "float64",
             "max_test_frames": 4},
}

#: preset -> method -> settings; a nested "scratch" / "finetune" dict overrides for that mode
METHOD_SETTINGS: dict[str, dict[str, dict[str, Any]]] = {
    "paper": {
        "mace": {
            # MACE-MP-0 medium's architecture (128 channels, L=1, r_max 6 A) for both modes
            "batch_size": 5, "lr": 0.01, "energy_weight": 1.0, "force_weight": 10.0, "stress_weight": 1.0,
            "cutoff_a": 6.0, "num_channels": 128, "max_L": 1, "num_interactions": 2, "correlation": 3,
            "max_ell": 3, "num_radial_basis": 10, "ema": True, "E0s": "average",
            FINETUNE: {"lr": 0.001},
        },
        "nequip": {
            "batch_size": 5, "lr": 0.01, "energy_weight": 1.0, "force_weight": 1.0, "stress_weight": 1.0,
            "cutoff_a": 5.0, "num_layers": 4, "l_max": 2, "num_features": 32, "num_bessels": 8,
            "radial_mlp_depth": 2, "radial_mlp_width": 64, "parity": True,
        },
        "mtp": {
            # the paper's MTP [Ong21]: levels 16-24, cut-offs 4.0-5.7 A (its Table S2)
            # to convergence (training/mtp.py): chunks of 50 L-BFGS-B iterations (about 8 min for level 16 on
            # 175 Mo frames, 2 CPU cores as 2 MPI ranks), checkpointed, until L-BFGS-B's own criterion or a
            # chunk lowering the loss by a relative 1e-3 or less: MLIP's own criterion (mlp train
            # --bfgs-conv-tol, default 1e-3 "over 50 BFGS iterations"), with which maml fitted the mlearn MTPs
            # (its MTPotential.train: bfgs_conv_tol=1e-3); maml's cap of 1000 iterations is not used: a fit
            # stops when it converges or at its budget, marked
            "level": 16, "min_dist_a": 1.6, "cutoff_a": 5.0, "maxiter": 20000, "chunk_iter": 50, "rel_tol": 1e-3, "init": "lls",
            "energy_weight": 1.0, "force_weight": 0.01, "stress_weight": 0.001,
        },
        "m3gnet": {
            "batch_size": 8, "lr": 0.001, "energy_weight": 1.0, "force_weight": 1.0, "stress_weight": 0.1,
            "cutoff_a": 5.0, "threebody_cutoff_a": 4.0,
            FINETUNE: {"lr": 0.0001},
        },
        "chgnet": {
            "batch_size": 8, "lr": 0.0001, "energy_weight": 1.0, "force_weight": 1.0, "stress_weight": 0.1,
            "magmom_weight": 0.0,
        },
        "sevennet": {
            "batch_size": 4, "lr": 0.0001, "energy_weight": 1.0, "force_weight": 1.0, "stress_weight": 0.01,
        },
        "readout": {},  # training/readout.py DEFAULT_SETTINGS
        "snap": {}, "qsnap": {},  # training/snap.py DEFAULT_SETTINGS
    },
    "cpu-quick": {
        "mace": {
            "batch_size": 4, "lr": 0.01, "energy_weight": 1.0, "force_weight": 10.0, "stress_weight": 1.0,
            "cutoff_a": 5.0, "num_channels": 16, "max_L": 0, "num_interactions": 2, "correlation": 2,
            "max_ell": 2, "num_radial_basis": 8, "ema": False, "E0s": "average",
            FINETUNE: {"lr": 0.001, "epochs": 10},
        },
        "nequip": {
            "batch_size": 4, "lr": 0.01, "energy_weight": 1.0, "force_weight": 1.0, "stress_weight": 1.0,
            "cutoff_a": 5.0, "num_layers": 2, "l_max": 1, "num_features": 16, "num_bessels": 8,
            "radial_mlp_depth": 1, "radial_mlp_width": 32, "parity": False,
        },
        "mtp": {
            "level": 8, "min_dist_a": 1.6, "cutoff_a": 5.0, "maxiter": 1000, "chunk_iter": 100, "rel_tol": 1e-3, "init": "lls",
            "energy_weight": 1.0, "force_weight": 0.01, "stress_weight": 0.001,
        },
        "m3gnet": {
            "batch_size": 4, "lr": 0.001, "energy_weight": 1.0, "force_weight": 1.0, "stress_weight": 0.1,
            "cutoff_a": 5.0, "threebody_cutoff_a": 4.0, "units": 32,
            FINETUNE: {"lr": 0.0001, "epochs": 10},
        },
        "chgnet": {
            "batch_size": 4, "lr": 0.0001, "energy_weight": 1.0, "force_weight": 1.0, "stress_weight": 0.1,
            "magmom_weight": 0.0, "epochs": 10,
        },
        "sevennet": {
            "batch_size": 4, "lr": 0.0001, "energy_weight": 1.0, "force_weight": 1.0, "stress_weight": 0.01,
            "epochs": 10,
        },
        "readout": {},  # training/readout.py DEFAULT_SETTINGS
        "snap": {}, "qsnap": {},  # training/snap.py DEFAULT_SETTINGS
    },
    "tiny": {
        "mace": {
            "batch_size": 4, "lr": 0.01, "energy_weight": 1.0, "force_weight": 10.0, "stress_weight": 1.0,
            "cutoff_a": 4.0, "num_channels": 8, "max_L": 0, "num_interactions": 2, "correlation": 2,
            "max_ell": 1, "num_radial_basis": 4, "ema": False, "E0s": "average", "dtype": "float32",
        },
        "nequip": {
            "batch_size": 4, "lr": 0.01, "energy_weight": 1.0, "force_weight": 1.0, "stress_weight": 1.0,
            "cutoff_a": 4.0, "num_layers": 2, "l_max": 1, "num_features": 8, "num_bessels": 4,
            "radial_mlp_depth": 1, "radial_mlp_width": 16, "parity": False,
        },
        "mtp": {
            "level": 4, "min_dist_a": 1.6, "cutoff_a": 5.0, "maxiter": 100, "chunk_iter": 50, "rel_tol": 1e-3, "init": "lls",
            "energy_weight": 1.0, "force_weight": 0.01, "stress_weight": 0.001,
        },
        "m3gnet": {
            "batch_size": 4, "lr": 0.001, "energy_weight": 1.0, "force_weight": 1.0, "stress_weight": 0.1,
            "cutoff_a": 5.0, "threebody_cutoff_a": 4.0, "units": 16,
        },
        "chgnet": {
            "batch_size": 4, "lr": 0.0001, "energy_weight": 1.0, "force_weight": 1.0, "stress_weight": 0.1,
            "magmom_weight": 0.0,
        },
        "sevennet": {
            "batch_size": 4, "lr": 0.0001, "energy_weight": 1.0, "force_weight": 1.0, "stress_weight": 0.01,
        },
        "readout": {},  # training/readout.py DEFAULT_SETTINGS
        "snap": {}, "qsnap": {},  # training/snap.py DEFAULT_SETTINGS
    },
}


def driver_settings(method: str) -> dict[str, dict[str, Any]]:
    """A driver module's own presets (its ``DEFAULT_SETTINGS``, preset -> settings), if it
    defines them; they replace this module's for that method and preset. The module is imported
    without its training package."""
    import importlib

    from surfbench.training.base import TRAINERS

    target = TRAINERS.get(method)
    if target is None:
        return {}
    try:
        module = importlib.import_module(target.partition(":")[0])
    except ImportError:
        return {}
    return dict(getattr(module, "DEFAULT_SETTINGS", {}) or {})


def resolve(method: str, preset: str, mode: str = SCRATCH, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The settings of ``method`` in ``preset`` and ``mode``, with ``overrides`` applied."""
    if preset not in METHOD_SETTINGS:
        raise TrainingError(f"unknown preset {preset!r}; known: {', '.join(PRESET_NAMES)}")
    if method not in METHOD_SETTINGS[preset]:
        raise TrainingError(f"preset {preset!r} has no settings for method {method!r}; known: {', '.join(METHODS)}")
    if mode not in (SCRATCH, FINETUNE):
        raise TrainingError(f"mode must be {SCRATCH!r} or {FINETUNE!r}, got {mode!r}")
    per_method = copy.deepcopy(driver_settings(method).get(preset) or METHOD_SETTINGS[preset][method])
    by_mode = {m: per_method.pop(m, {}) for m in (SCRATCH, FINETUNE)}
    settings = {**COMMON[preset], **per_method, **by_mode[mode], **(overrides or {})}
    settings["preset"] = preset
    return settings


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """``["epochs=2", "lr=1e-3", "patience=none"]`` -> values parsed as YAML scalars (numbers,
    true/false, lists; "none" is None)."""
    import yaml

    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise TrainingError(f"--set expects key=value, got {item!r}")
        parsed = yaml.safe_load(value)
        if isinstance(parsed, str):
            try:
                parsed = float(parsed)  # YAML 1.1 reads "1e-3" as text
            except ValueError:
                parsed = None if parsed.lower() == "none" else parsed
        out[key.strip()] = parsed
    return out


#: settings of a from-scratch architecture (a fine-tuned model keeps its foundation's)
ARCHITECTURE = {"num_channels", "max_L", "num_interactions", "correlation", "max_ell", "num_radial_basis",
                "threebody_cutoff_a", "units", "nblocks", "max_n", "max_l"}

#: shared keys a method does not use (motep fits with L-BFGS-B in float64: no epochs, batches, lr)
NOT_USED = {"mtp": ("epochs", "patience", "batch_size", "lr", "dtype"),
            # a closed-form ridge fit of energies on the base model's features, in float64
            "readout": ("epochs", "patience", "batch_size", "lr", "energy_weight", "force_weight", "stress_weight",
                        "cutoff_a", "dtype"),
            # linear least squares in float64, cut-off from the element's parameters, force weight chosen on validation
            "snap": ("epochs", "patience", "batch_size", "lr", "energy_weight", "force_weight", "cutoff_a", "dtype"),
            "qsnap": ("epochs", "patience", "batch_size", "lr", "energy_weight", "force_weight", "cutoff_a", "dtype")}


def preset_table(presets: tuple[str, ...] = ("paper", "cpu-quick")) -> str:
    """A Markdown table of the effective settings of every method, mode and preset."""
    keys = ["epochs", "patience", "batch_size", "lr", "energy_weight", "force_weight", "stress_weight", "cutoff_a",
            "dtype"]
    rows = ["| method | mode | preset | " + " | ".join(keys) + " | model |", "|" + "---|" * (len(keys) + 4)]
    modes = {"mace": (SCRATCH, FINETUNE), "nequip": (SCRATCH,), "mtp": (SCRATCH,), "m3gnet": (SCRATCH, FINETUNE),
             "chgnet": (FINETUNE,), "sevennet": (FINETUNE,), "readout": (FINETUNE,), "snap": (SCRATCH,),
             "qsnap": (SCRATCH,)}
    shared = set(keys) | set(COMMON["paper"]) | {"preset", "E0s", "ema", "threads", "decay_alpha", "loss", "n_valid"}
    for method in METHODS:
        for mode in modes[method]:
            for preset in presets:
                s = resolve(method, preset, mode)
                model = ", ".join(f"{k} {v}" for k, v in s.items()
                                  if k not in shared and not (mode == FINETUNE and k in ARCHITECTURE))
                if method in ("snap", "qsnap"):
                    model = ("linear least squares; Zuo et al. 2020's bispectrum settings per element; force weight "
                             "chosen on validation frames" + (f"; {model}" if model else ""))
                elif method == "readout":
                    model = "frozen foundation + per-element linear read-out of its features (energies, ridge)" + (
                        f"; {model}" if model else "")
                elif mode == FINETUNE:
                    model = "foundation's architecture" + (f"; {model}" if model else "")
                cells = ["n/a" if k in NOT_USED.get(method, ()) else
                         "foundation's" if k == "cutoff_a" and mode == FINETUNE else
                         "-" if s.get(k) is None else str(s.get(k)) for k in keys]
                rows.append(f"| {method} | {mode} | {preset} | " + " | ".join(cells) + f" | {model} |")
    return "\n".join(rows)

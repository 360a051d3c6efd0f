"""Named data sets. ``surfbench datasets`` lists them."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from surfbench.data.errors import DataError
from surfbench.records import Dataset


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    description: str
    reference: str
    licence: str
    loader: Callable[..., Dataset]


def _mlearn_surfaces(data_dir: str | os.PathLike | None = None, download: bool = True) -> Dataset:
    from surfbench.data.mlearn import load_mlearn_surfaces

    return load_mlearn_surfaces(data_dir, download=download)


def _mp_surfaces(data_dir: str | os.PathLike | None = None, download: bool = True) -> Dataset:
    """The newest build of mp-surfaces found in the data folders (``mp_surfaces/*.manifest.json``)."""
    from surfbench.data import mp_surfaces
    from surfbench.data.sources import search_path

    manifests = sorted(
        (m for folder in search_path(data_dir) for m in (folder / "mp_surfaces").glob("*.manifest.json")),
        key=lambda m: mp_surfaces.read_manifest(m)["db_version"],
    )
    if not manifests:
        searched = ", ".join(str(f / "mp_surfaces") for f in search_path(data_dir))
        raise DataError(
            f"no build of mp-surfaces found (searched {searched}). Build it with 'surfbench data build "
            "mp-surfaces' (needs an MP API key in MP_API_KEY and internet access), or pass the path of a "
            "manifest with --dataset. No pinned public release of the build exists yet."
        )
    return mp_surfaces.load(manifests[-1])


def _synthetic(data_dir: str | os.PathLike | None = None, download: bool = True) -> Dataset:
    from surfbench.data import synthetic

    return synthetic.load(synthetic.find_manifest(data_dir))


def _mse21(data_dir: str | os.PathLike | None = None, download: bool = True) -> Dataset:
    from surfbench.data.mse21 import load_mse21

    return load_mse21(data_dir, download=download)


DATASETS: dict[str, DatasetInfo] = {
    "mlearn-surfaces": DatasetInfo(
        name="mlearn-surfaces",
        description=(
            "Every 'Surface' frame of the mlearn Ni, Cu, Li, Mo, Si, Ge training and test "
            "sets (slabs taken from the Materials Project, recomputed with PBE), each "
            "element's ground-state crystal as bulk reference"
        ),
        reference="Zuo et al., J. Phys. Chem. A 124, 731 (2020)",
        licence="BSD-3-Clause (Materials Virtual Lab)",
        loader=_mlearn_surfaces,
    ),
    "mp-surfaces": DatasetInfo(
        name="mp-surfaces",
        description=(
            "Materials Project elemental surfaces (1497 slabs, 138 bulks, 73 elements in the "
            "paper's version), built with 'surfbench data build mp-surfaces' and an MP API key"
        ),
        reference="Tran et al., Sci. Data 3, 160080 (2016)",
        licence="CC BY 4.0 (Materials Project)",
        loader=_mp_surfaces,
    ),
    "mse21": DatasetInfo(
        name="mse21",
        description=(
            "Reference surface energies (PBE and experiment, J/m^2) of the close-packed facet of "
            "21 metals: bcc (110) of 10, fcc (111) of 11; no DFT energies, evaluated with "
            "--protocol model-built (the model builds and relaxes its own bulk and slab)"
        ),
        reference=("Tran et al., Phys. Rev. B 93, 235162 (2016): the 21-metal set as packaged in a public data "
                   "repository of an ml-peg author (benshi97/ml-peg-transition-metal-data, pinned commit)"),
        licence="no licence file in the source repository; cite the paper",
        loader=_mse21,
    ),
    "synthetic-paper-scale": DatasetInfo(
        name="synthetic-paper-scale",
        description=(
            "SYNTHETIC, not DFT: a paper-sized rehearsal set (about 1500 slabs of 72 elements cut with "
            "pymatgen from ASE's reference crystals) with energies from stand-in models (EMT, "
            "M3GNet-MP), for measuring cost and scaling only; built with 'surfbench data build "
            "synthetic-paper-scale'"
        ),
        reference="none: synthetic (see the build's manifest)",
        licence="generated locally",
        loader=_synthetic,
    ),
}


def load_dataset(name: str, data_dir: str | os.PathLike | None = None, *, download: bool = True) -> Dataset:
    """A named data set, or a user's file (extxyz / ASE database, see
    :mod:`surfbench.data.userdata`) given by its path. Every data set's records pass the same
    checks (:mod:`surfbench.data.checks`: elemental structures of the record's element, vacuum
    gaps, bulk references, finite energies, no negative DFT surface energy, no overlapping
    atoms); a data set with problems is refused, naming them, and warnings (an implausible
    surface energy, unusually close atoms) become notes. The data set returned is whole: its
    records are every member of the data set (:meth:`~surfbench.records.Dataset.as_whole`), so
    that records no longer in it are marked stale in a result store."""
    from surfbench.data.checks import validate_dataset

    if name not in DATASETS and Path(name).is_file():
        if name.endswith(".manifest.json"):
            from surfbench.data import synthetic
            from surfbench.data.mp_surfaces import load

            if synthetic.is_synthetic_manifest(name):
                return validate_dataset(synthetic.load(name), name).as_whole()
            return validate_dataset(load(name), name).as_whole()
        from surfbench.data.userdata import load_user_dataset

        return load_user_dataset(name).as_whole()  # the same checks, record by record of the file
    try:
        info = DATASETS[name]
    except KeyError:
        from surfbench.names import did_you_mean

        raise DataError(
            f"unknown data set {name!r}{did_you_mean(name, DATASETS)}; known: {', '.join(DATASETS)}, or the path of "
            "a data file"
        ) from None
    return validate_dataset(info.loader(data_dir=data_dir, download=download)).as_whole()


def stored_name(name: str | os.PathLike | None) -> str | None:
    """The name a data set given by name or path has in a result store: a user's data file
    is stored under its resolved path (:func:`surfbench.data.userdata.dataset_name`); a named
    data set, an mp-surfaces manifest or anything else keeps the name given."""
    from surfbench.data.userdata import dataset_name

    if name is None:
        return None
    name = os.fspath(name)
    if name in DATASETS or name.endswith(".manifest.json") or not Path(name).is_file():
        return name
    return dataset_name(name)

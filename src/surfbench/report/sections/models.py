"""The models section: per model its fingerprint, registry name, package and versions,
parameters, devices and threads, and its stored details as JSON."""

from __future__ import annotations

import json

import pandas as pd

from surfbench.report.markup import esc, html_table, is_num
from surfbench.report.outputs import jsonable
from surfbench.report.section import ReportContext, Section

#: details shown in their own rows (the others get a row each, by name)
_SHOWN = {"fingerprint", "family", "training_set", "package", "parameters", "nominal_parameters", "device",
          "torch", "ase", "python"}


def build(ctx: ReportContext) -> Section:
    """One column per model; the JSON gets every model's info."""
    order, info = ctx.order, ctx.info
    props: dict[str, list] = {}
    extras: set[str] = set()
    for m in order:
        extras |= {k for k in info[m]["details"] if k not in _SHOWN}
    for m in order:
        d = info[m]["details"]
        fp = d.get("fingerprint", {}) if isinstance(d.get("fingerprint"), dict) else {}
        rows = [
            ("fingerprint", info[m]["fingerprint"]), ("registry name", info[m]["name"]),
            ("family", d.get("family")), ("training set", d.get("training_set")),
            ("package", f"{fp.get('package') or d.get('package') or ''} {fp.get('package_version', '')}".strip()),
            ("weights sha256", fp.get("weights_sha256")), ("dtype", fp.get("dtype")), ("options", fp.get("options")),
            ("parameters (measured)", d.get("parameters")), ("parameters (nominal)", d.get("nominal_parameters")),
            ("device at load", d.get("device")), ("devices of the results", ", ".join(info[m]["devices"])),
            ("torch threads", ", ".join(map(str, info[m]["threads"]))),
            ("torch", d.get("torch")), ("ase", d.get("ase")), ("python", d.get("python")),
            ("first seen", info[m]["first_seen"]), ("last result", info[m]["last_result"]),
        ] + [(k, json.dumps(d[k]) if isinstance(d.get(k), (dict, list)) else d.get(k)) for k in sorted(extras)]
        for k, v in rows:
            props.setdefault(k, []).append("–" if v in (None, "") else (f"{v:,}" if is_num(v) else str(v)))
    spec = pd.DataFrame({"": list(props), **{m: [props[k][i] for k in props] for i, m in enumerate(order)}})
    jsons = "".join(f"<details><summary>{esc(m)}: details as stored (JSON)</summary>"
                    f"<pre>{esc(json.dumps(info[m]['details'], indent=1, sort_keys=True))}</pre></details>"
                    for m in order)
    body = ("<p>Each result in the store is keyed by the model fingerprint: name, package version, "
            "weights hash, dtype and options. Versions as recorded when the model was first run.</p>"
            + '<div class="figure">' + html_table(spec, align_numbers=False, cls="data spec") + "</div>" + jsons)
    return Section(body=body, payload={"models": [jsonable(dict(info[m].items())) for m in order]})

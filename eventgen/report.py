"""The evaluation report: ``metrics.json``, ``report.md`` and a self-contained ``report.html``.

:mod:`eventgen.evaluation` computes, this module renders. Every number stands next to its
truth-vs-truth value (two independent halves of the held-out simulation), the scale it must be
read against. The headline table also lists the baselines evaluated on the same reference and,
when the evaluation had the bundle, the decoder ceiling (held-out events encoded and decoded:
the best any sampler of that decoder can do) right beside eventgen.

Each file carries the provenance of its numbers (:func:`collect_provenance`): the command line,
the bundle's hash and the sampling settings (from the generated file's metadata), the evaluation
settings, every input file with its sha256 and number of events, and the package versions.

``report.html`` is one file with no external assets — styles inline, figures embedded as
base64 PNG — so it can be mailed, attached to a ticket or opened offline. The figures
(:mod:`eventgen.plots`) are also written as PNG files under ``plots/`` for talks; without the
``plots`` extra both reports are written without figures.
"""

from __future__ import annotations

import base64
import html
import json
import math
import platform
import shlex
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eventgen import __version__

if TYPE_CHECKING:
    from eventgen.io import EventTable
    from eventgen.plots import Plot

_PACKAGES = (
    "numpy",
    "scipy",
    "scikit-learn",
    "torch",
    "numba",
    "pyarrow",
    "h5py",
    "matplotlib",
    "hist",
    "mplhep",
)
_TENSION = 3.0
"""Per-quantity cells more than this many standard errors above truth vs truth are highlighted."""


def write_report(
    result: dict[str, Any],
    out_dir: str | Path,
    *,
    generated: EventTable | None = None,
    reference: EventTable | None = None,
    title: str = "eventgen evaluation",
    extra_rows: Sequence[tuple[str, dict[str, Any]]] | None = None,
    provenance: dict[str, Any] | None = None,
) -> Path:
    """Write ``metrics.json``, ``report.md``, ``report.html`` and the figures into ``out_dir``; returns ``report.md``.

    ``result`` is an :func:`eventgen.evaluation.evaluate` result; ``extra_rows`` adds columns to the
    headline table: ``(label, evaluate-result)`` of other generators (baselines) evaluated on the
    same reference. Figures need ``generated`` and ``reference`` (and the ``plots`` extra).
    ``provenance`` is a :func:`collect_provenance` record (default: one of ``generated`` alone).
    """
    from eventgen.plots import write_plots

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    extra = list(extra_rows or [])
    prov = provenance if provenance is not None else collect_provenance(generated=generated)
    _write(out / "metrics.json", json.dumps({**result, "provenance": prov}, indent=1, allow_nan=False))
    plots: list[Plot] = []
    if generated is not None and reference is not None:
        plots = write_plots(out, generated, reference, [("eventgen", result), *extra])
    content = ReportContent(result, title, extra, prov, plots)
    _write(out / "report.md", markdown(content))
    _write(out / "report.html", to_html(content, out))
    return out / "report.md"


def collect_provenance(
    *,
    generated: EventTable | None = None,
    inputs: Mapping[str, str | Path | None] | None = None,
    settings: Mapping[str, Any] | None = None,
    command: Sequence[str] | None = None,
) -> dict[str, Any]:
    """What produced a report, as a JSON-serialisable dict.

    ``generated`` supplies the bundle hash and the sampling settings from its file metadata;
    ``inputs`` maps a role (``generated``, ``reference``, ``train``) to a file or dataset
    directory, recorded with each file's sha256 and number of events; ``settings`` are the
    evaluation settings (seed, sample sizes); ``command`` is the command line as a list of words.
    """
    from eventgen.bundle import file_sha256
    from eventgen.io import count_events, dataset_files

    meta = generated.metadata if generated is not None else {}
    records: dict[str, Any] = {}
    for role, path in (inputs or {}).items():
        if path is None:
            continue
        files = dataset_files(path)
        records[role] = {
            "path": str(path),
            "n_events": sum(count_events(f) for f in files),
            "files": [{"name": Path(f).name, "sha256": file_sha256(f)} for f in files],
        }
    versions = {"eventgen": __version__, "python": platform.python_version()}
    for package in _PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return {
        "command": shlex.join(command) if command else None,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "bundle_hash": meta.get("bundle_hash"),
        "generation": {k: meta[k] for k in ("generator", "seed", "n_events", "sampling") if k in meta},
        "evaluation": dict(settings or {}),
        "inputs": records,
        "versions": versions,
    }


# ----------------------------------------------------------------------------- tables


def headline_table(
    result: dict[str, Any], extra: Sequence[tuple[str, dict[str, Any]]]
) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the headline table: metric, eventgen, [decoder ceiling], each baseline, truth vs truth."""
    from eventgen.evaluation import headline

    extra = list(extra)
    if "ceiling" in result:
        ceiling = {k: v for k, v in result.items() if k != "memorisation"}
        extra.insert(0, (CEILING_LABEL, {**ceiling, "generated": result["ceiling"]}))
    header = ["metric", "eventgen", *[label for label, _ in extra], "truth vs truth"]
    others = [{name: value for name, value, _ in headline(r)} for _, r in extra]
    rows = [
        [name, format_value(value), *[format_value(o.get(name)) for o in others], format_value(truth)]
        for name, value, truth in headline(result)
    ]
    return header, rows


def quantity_table(
    generated: dict[str, Any], truth: dict[str, Any], what: str
) -> tuple[list[str], list[list[str]], list[list[bool]]]:
    """Per quantity (column or observable), each metric of generated next to truth vs truth.

    Returns the header, the rows and, per cell, whether the generated value lies more than
    :data:`_TENSION` standard errors above truth vs truth.
    """
    header = [
        what,
        "W1/σ",
        "truth W1/σ",
        "χ²/ndf",
        "truth χ²/ndf",
        "prior-art χ²",
        "truth prior-art χ²",
        "10–90% range (simulation)",
        "10–90% width ratio",
        "truth width ratio",
    ]
    rows, flags = [], []
    for name, m in generated.items():
        t = truth[name]
        rows.append(
            [
                name,
                format_value(m["w1"]),
                format_value(t["w1"]),
                format_value(m["chi2_ndf"]),
                format_value(t["chi2_ndf"]),
                format_value(m["de_chi2"]),
                format_value(t["de_chi2"]),
                _central_range(m.get("central_range")),
                format_value(m.get("width_ratio")),
                format_value(t.get("width_ratio")),
            ]
        )
        flags.append(
            [
                False,
                _tension(m["w1"], t["w1"]),
                False,
                _tension(m["chi2_ndf"], t["chi2_ndf"]),
                False,
                False,
                False,
                False,
                False,
                False,
            ]
        )
    return header, rows, flags


def _central_range(ranges: dict[str, list[float]] | None) -> str:
    """``lo–hi (lo–hi)``: the generated and the simulated 10–90% ranges (results written before: –)."""
    if not ranges:
        return "–"
    (a, b), (c, d) = ranges["generated"], ranges["reference"]
    return f"{a:.4g}–{b:.4g} ({c:.4g}–{d:.4g})"


def memorisation_table(
    result: dict[str, Any], extra: Sequence[tuple[str, dict[str, Any]]]
) -> tuple[list[str], list[list[str]]]:
    """Memorisation ratio, fraction closer to the training sample and C_T, per generator and truth vs truth."""
    header = ["generator", "memorisation ratio", "closer to a training event", "data-copying C_T"]
    rows = []

    def row(label: str, m: dict[str, Any]) -> list[str]:
        return [label, format_value(m["ratio"]), format_value(m["closer_to_train"]), format_value(m["c_t"])]

    for label, r in [("eventgen", result), *extra]:
        if "memorisation" in r:
            rows.append(row(label, r["memorisation"]["generated"]))
    rows.append(row("truth vs truth (held-out half B)", result["memorisation"]["truth"]))
    return header, rows


def physicality_table(result: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Fraction of events passing each physicality check, generated and truth vs truth."""
    g, t = result["generated"]["physicality"], result["truth"]["physicality"]
    return ["check", "eventgen", "truth vs truth"], [
        [k, format_value(g[k]), format_value(t.get(k))] for k in g
    ]


def provenance_rows(prov: dict[str, Any]) -> list[tuple[str, list[str]]]:
    """The provenance as ``(key, lines)`` rows, the form both reports print."""
    rows: list[tuple[str, list[str]]] = []
    if prov.get("command"):
        rows.append(("command", [prov["command"]]))
    rows.append(("created", [prov.get("created", "–")]))
    if prov.get("bundle_hash"):
        rows.append(("bundle sha256", [prov["bundle_hash"]]))
    gen = prov.get("generation", {})
    if gen.get("sampling"):
        rows.append(("sampling", [", ".join(f"{k}={v}" for k, v in gen["sampling"].items())]))
    if gen:
        rows.append(("generation", [", ".join(f"{k}={v}" for k, v in gen.items() if k != "sampling")]))
    if prov.get("evaluation"):
        rows.append(("evaluation", [", ".join(f"{k}={v}" for k, v in prov["evaluation"].items())]))
    for role, rec in prov.get("inputs", {}).items():
        lines = [f"{rec['path']} ({rec['n_events']:,} events)"]
        lines += [f"{f['name']}  sha256 {f['sha256']}" for f in rec["files"]]
        rows.append((f"{role} events", lines))
    rows.append(("versions", [", ".join(f"{k} {v}" for k, v in prov.get("versions", {}).items())]))
    return rows


# ----------------------------------------------------------------------------- markdown


@dataclass(frozen=True)
class ReportContent:
    """What both reports show: an evaluation ``result`` under ``title``, the ``(label, result)`` of
    the baselines (``extra``), the provenance record and the figures written for it."""

    result: dict[str, Any]
    title: str
    extra: Sequence[tuple[str, dict[str, Any]]]
    provenance: dict[str, Any]
    plots: Sequence[Plot] = ()


def markdown(content: ReportContent) -> str:
    """``report.md``: the headline table first (``eventgen run`` prints it), then the details."""
    result, title, extra, prov, plots = _fields(content)
    lines = [f"# {title}", "", _lead(result), ""]
    lines += _md_table(*headline_table(result, extra))
    g, t = result["generated"], result["truth"]
    lines += ["", "## Per column", "", *_md_table(*quantity_table(g["columns"], t["columns"], "column")[:2])]
    if g.get("observables"):
        lines += ["", "## Derived observables", ""]
        lines += _md_table(*quantity_table(g["observables"], t["observables"], "observable")[:2])
    lines += ["", "## Physicality", "", *_md_table(*physicality_table(result))]
    if "memorisation" in result:
        lines += [
            "",
            "## Memorisation",
            "",
            _MEMORISATION,
            "",
            *_md_table(*memorisation_table(result, extra)),
        ]
    if plots:
        lines += ["", "## Plots", ""] + [f"![{p.name}]({p.path})" for p in plots]
    lines += ["", "## Provenance", ""]
    for key, values in provenance_rows(prov):
        lines.append(f"- {key}: " + "; ".join(f"`{v}`" for v in values))
    return "\n".join(lines) + "\n"


def _fields(
    content: ReportContent,
) -> tuple[dict[str, Any], str, Sequence[tuple[str, dict[str, Any]]], dict[str, Any], Sequence[Plot]]:
    return content.result, content.title, content.extra, content.provenance, content.plots


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"] + [
        "| " + " | ".join(r) + " |" for r in rows
    ]


# ----------------------------------------------------------------------------- html


def to_html(content: ReportContent, out_dir: str | Path = ".") -> str:
    """``report.html``: one self-contained page, the figures (files under ``out_dir``) embedded as base64 PNG."""
    result, title, extra, prov, plots = _fields(content)
    out = Path(out_dir)
    by_group: dict[str, list[Plot]] = {}
    for p in plots:
        by_group.setdefault(p.group, []).append(p)
    g, t = result["generated"], result["truth"]
    n = result["n_events"]
    facts = [
        f"schema <b>{_e(result['schema'])}</b>",
        f"{n['generated']:,} generated events",
        f"{n['reference_half']:,} + {n['reference_half']:,} held-out events",
        f"seed {result['seed']}",
    ]
    if prov.get("bundle_hash"):
        facts.append(f"bundle <code>{_e(prov['bundle_hash'][:12])}</code>")
    facts.append(_e(prov.get("created", "")))
    body = [
        f"<header><h1>{_e(title)}</h1><p class='lead'>{_e(_lead(result))}</p>",
        f"<p class='facts'>{' · '.join(facts)}</p></header>",
        "<section id='headline'><h2>Headline</h2><div class='row'>",
        _html_table(*headline_table(result, extra), cls="headline"),
        *[_figure(out, p, "summary") for p in by_group.get("summary", [])],
        "</div></section>",
    ]
    if "memorisation" in result:
        body += ["<section id='memorisation'><h2>Memorisation</h2>", f"<p>{_e(_MEMORISATION)}</p>"]
        body += [_html_table(*memorisation_table(result, extra)), "</section>"]
    for key, heading, what in (
        ("columns", "Per column", "column"),
        ("observables", "Derived observables", "observable"),
    ):
        if not g.get(key):
            continue
        header, rows, flags = quantity_table(g[key], t[key], what)
        body += [
            f"<section id='{key}'><h2>{heading}</h2>",
            f"<p class='note'>W1/σ: Wasserstein-1 distance over the simulation's standard deviation (bootstrap "
            f"error); χ²/ndf of 50-bin histograms with Poisson errors; prior-art χ² = Σ(p−q)²/(p+q) of 25 bins; "
            f"the 10–90% range holds the central 80% of events (a peak's width), and its width ratio is "
            f"generated over simulated. "
            f"<span class='tension'>Highlighted</span>: more than {_TENSION:g} standard errors above truth vs truth.</p>",
            _html_table(header, rows, flags=flags),
            "<div class='grid'>" + "".join(_figure(out, p) for p in by_group.get(key, [])) + "</div>",
            "</section>",
        ]
    body += [
        "<section id='physicality'><h2>Physicality</h2>",
        _html_table(*physicality_table(result)),
        "</section>",
    ]
    prov_rows = "".join(
        f"<tr><th>{_e(k)}</th><td>{'<br>'.join(f'<code>{_e(v)}</code>' for v in values)}</td></tr>"
        for k, values in provenance_rows(prov)
    )
    body += [
        f"<section id='provenance'><h2>Provenance</h2><table class='provenance'>{prov_rows}</table></section>"
    ]
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{_e(title)}</title><style>{_CSS}</style></head>\n<body><main>\n"
        + "\n".join(body)
        + "\n</main></body></html>\n"
    )


def _html_table(
    header: list[str], rows: list[list[str]], flags: list[list[bool]] | None = None, cls: str = ""
) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    lines = []
    for i, row in enumerate(rows):
        cells = "".join(
            f"<td class='tension'>{_e(c)}</td>" if flags and flags[i][j] else f"<td>{_e(c)}</td>"
            for j, c in enumerate(row[1:], start=1)
        )
        lines.append(f"<tr><th scope='row'>{_e(row[0])}</th>{cells}</tr>")
    return f"<table class='{cls}'><thead><tr>{head}</tr></thead><tbody>{''.join(lines)}</tbody></table>"


def _figure(out: Path, plot: Plot, cls: str = "") -> str:
    data = base64.b64encode((out / plot.path).read_bytes()).decode("ascii")
    return (
        f"<figure class='{cls}' id='fig-{_e(plot.name)}'><img alt='{_e(plot.name)}' "
        f"src='data:image/png;base64,{data}'><figcaption>{_e(plot.name)}</figcaption></figure>"
    )


_CSS = """
body{margin:0;background:#f6f7f9;color:#1d2330;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif}
main{max-width:1240px;margin:0 auto;padding:28px 32px 60px}
h1{font-size:26px;margin:0 0 6px}h2{font-size:19px;margin:34px 0 10px;border-bottom:2px solid #d8dde6;padding-bottom:4px}
.lead{max-width:900px;margin:4px 0}.facts{color:#556;font-size:13.5px}.note{color:#556;font-size:13.5px;max-width:980px}
table{border-collapse:collapse;background:#fff;box-shadow:0 1px 2px rgba(0,0,0,.08);margin:8px 0;font-size:14px}
th,td{padding:5px 10px;border-bottom:1px solid #e4e7ee;text-align:right;white-space:nowrap}
thead th{background:#27344d;color:#fff;font-weight:600;text-align:center;white-space:normal}
tbody th{text-align:left;font-weight:500}td{font-variant-numeric:tabular-nums}
tbody tr:nth-child(even){background:#f8f9fb}table.headline td:nth-child(2){font-weight:600}
table.headline td:last-child{color:#2c5aa0}
td.tension{background:#fde2e1;color:#8b1a16;font-weight:600}span.tension{background:#fde2e1;color:#8b1a16;padding:0 4px}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(360px,1fr));gap:12px;margin-top:14px}
figure{margin:0;background:#fff;padding:6px;box-shadow:0 1px 2px rgba(0,0,0,.08)}figure.summary{flex:0 1 760px;min-width:320px}
.row{display:flex;flex-wrap:wrap;gap:20px;align-items:flex-start}
figure img{width:100%;height:auto;display:block}figcaption{font-size:12px;color:#667;text-align:center}
table.provenance th{text-align:left;vertical-align:top;background:#eef1f6;color:#1d2330}
table.provenance td{text-align:left;white-space:normal;word-break:break-all}code{font-size:12.5px}
"""

CEILING_LABEL = "decoder ceiling"
_MEMORISATION = (
    "With the collision's symmetries divided out (azimuths relative to the leading object, mirrored; η "
    "mirrored; log energies; standardised), so that a rotated or mirrored copy counts as a copy. Memorisation "
    "ratio: median distance of each event to its nearest training event over that to its nearest held-out "
    "event (equal-size samples): 1 for fresh events, 0 for copies. C_T (Meehan et al., arXiv:2004.05675): "
    "Mann–Whitney Z of generated vs held-out distances to the training sample in k-means cells, averaged: "
    "≈ 0 fresh, ≪ 0 copying, ≫ 0 blurred."
)


def _lead(result: dict[str, Any]) -> str:
    n = result["n_events"]
    text = (
        f"Generated events against {n['reference_half']} held-out events of the original "
        "simulation; the truth-vs-truth column compares two independent halves of the held-out sample, the "
        "scale every number must be read against. "
    )
    if "ceiling" in result:
        text += (
            "The decoder ceiling is the other half encoded and decoded through the bundle: no sampler of "
            "this decoder can do better, so the gap between it and eventgen is the sampling error. "
        )
    if "classifier_train" in n:
        text += (
            f"The classifier sees the columns, object masses, ΔR of object pairs and the derived "
            f"observables, and trains on {n['classifier_train']:,} events per class. "
        )
    return text + "Uncertainties are ± one standard error."


def _tension(value: Any, truth: Any) -> bool:
    """Whether ``[v, e]`` lies more than :data:`_TENSION` combined standard errors above ``[t, e]``."""
    if value[0] is None or truth[0] is None:
        return False
    error = ((value[1] or 0.0) ** 2 + (truth[1] or 0.0) ** 2) ** 0.5
    return bool(value[0] - truth[0] > _TENSION * error) if error > 0 else bool(value[0] > truth[0])


def format_value(value: Any) -> str:
    """A number, or ``[value, error]`` rounded to the error's two significant digits."""
    if isinstance(value, (list, tuple)) and len(value) == 2:
        v, e = value
        if v is None:
            return "–"
        if e is None or not math.isfinite(e) or e <= 1e-12 * abs(v) or not math.isfinite(v):
            return f"{v:.4g}"  # no error, or one at float rounding (a ratio of equal ranges)
        decimals = 1 - math.floor(math.log10(e))
        if (0 <= decimals <= 5 and (abs(v) >= 1e-3 or decimals <= 3)) or (
            abs(v) >= 0.1 and 0 <= decimals <= 7
        ):
            return f"{v:.{decimals}f} ± {e:.{decimals}f}"
        k = math.floor(math.log10(max(abs(v), e)))
        m, me = v / 10.0**k, e / 10.0**k
        digits = min(max(1 - math.floor(math.log10(me)), 0), 4)
        return f"({m:.{digits}f} ± {me:.{digits}f})e{k}"
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _write(path: Path, text: str) -> None:
    """Write through a temporary name, then rename."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)

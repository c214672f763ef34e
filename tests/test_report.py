"""The report: self-contained HTML with every table, provenance in every file, rendering in Chromium."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from eventgen.evaluation import evaluate
from eventgen.io import EventTable, read_events
from eventgen.report import collect_provenance, format_value, quantity_table, write_report
from eventgen.schema import Schema

DATA = Path(__file__).parent / "data" / "ttbar_small.parquet"
KEEP = ["met", "met_phi", "j1_e", "j1_pt", "j1_eta", "j1_phi", "n_jets"]
COMMAND = ["eventgen", "evaluate", "--generated", "g.parquet", "--reference", str(DATA)]


def _small(table: EventTable, rows: slice) -> EventTable:
    schema = Schema("ttbar-small", tuple(c for c in table.schema.columns if c.name in KEEP))
    return EventTable(table.data[rows][:, [table.schema.index(n) for n in KEEP]], schema, table.metadata)


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A report of a smeared sample (with one baseline and a stand-in decoder ceiling) on a seven-column
    schema, figures included."""
    table = read_events(DATA)
    train, test = _small(table, slice(0, 1500)), _small(table, slice(1500, None))
    noisy = EventTable((test.data * 1.08).astype(np.float32), test.schema, {"bundle_hash": "ab" * 32})
    result = evaluate(noisy, test, train, seed=0, max_events=600)
    baseline = evaluate(train, test, train, seed=0, max_events=600, truth_from=result)
    result["ceiling"] = baseline["generated"]  # the place of a bundle's reconstruction of half B
    out = tmp_path_factory.mktemp("report")
    provenance = collect_provenance(
        generated=noisy,
        inputs={"reference": DATA, "train": None},
        settings={"seed": 0, "max_events": 600},
        command=COMMAND,
    )
    write_report(
        result,
        out,
        generated=noisy,
        reference=test,
        title="test report",
        extra_rows=[("replay", baseline)],
        provenance=provenance,
    )
    return out


def test_html_is_self_contained_with_every_table(report_dir: Path) -> None:
    page = (report_dir / "report.html").read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "<link" not in page and "<script" not in page and "url(" not in page
    sources = re.findall(r"<img [^>]*src='([^']*)'", page)
    assert len(sources) == len(KEEP) + 1 + 1  # columns, ht (met is a column), AUC vs memorisation
    for src in sources:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    for heading in (
        "Headline",
        "Memorisation",
        "Per column",
        "Derived observables",
        "Physicality",
        "Provenance",
    ):
        assert f"<h2>{heading}</h2>" in page
    assert "<th>eventgen</th><th>decoder ceiling</th><th>replay</th><th>truth vs truth</th>" in page
    assert "<th>data-copying C_T</th>" in page and "decoder ceiling" in page.split("<h2>Headline")[0]
    assert "<th>W1/σ</th><th>truth W1/σ</th><th>χ²/ndf</th><th>truth χ²/ndf</th>" in page
    for name in [*KEEP, "ht"]:
        assert f"<th scope='row'>{name}</th>" in page
    assert "class='tension'" in page  # a sample scaled by 8% is far from truth in some column


def test_provenance_in_every_file(report_dir: Path) -> None:
    sha = hashlib.sha256(DATA.read_bytes()).hexdigest()
    meta = json.loads((report_dir / "metrics.json").read_text())
    prov = meta["provenance"]
    assert prov["command"] == " ".join(COMMAND)
    assert prov["bundle_hash"] == "ab" * 32
    assert prov["inputs"]["reference"] == {
        "path": str(DATA),
        "n_events": 3000,
        "files": [{"name": DATA.name, "sha256": sha}],
    }
    assert "train" not in prov["inputs"] and prov["evaluation"] == {"seed": 0, "max_events": 600}
    assert {"eventgen", "python", "numpy", "torch", "hist", "mplhep"} <= set(prov["versions"])
    assert meta["generated"]["classifier_auc"][0] > 0.5
    for name in ("report.md", "report.html"):
        text = (report_dir / name).read_text()
        assert sha in text and "ab" * 32 in text and " ".join(COMMAND) in text
    markdown = (report_dir / "report.md").read_text()
    assert markdown.splitlines()[4] == "| metric | eventgen | decoder ceiling | replay | truth vs truth |"
    assert meta["ceiling"]["classifier_auc"][0] is not None
    assert markdown.index("## Per column") < markdown.index("## Provenance")


def test_sampling_settings_come_from_the_generated_file(tmp_path: Path) -> None:
    from eventgen.bundle import Bundle
    from eventgen.generation import EventSource
    from eventgen.io import write_events

    bundle = Bundle.load(Path(__file__).parent / "data" / "bundle")
    events = read_events(DATA).data[:300]
    metadata = EventSource(bundle, {"gamma": 0.2}, seed=4, device="cpu").run_metadata(
        300
    )  # what generate writes
    write_events(tmp_path / "g.parquet", events, bundle.schema, metadata)
    table = read_events(tmp_path / "g.parquet")
    prov = collect_provenance(generated=table, inputs={"generated": tmp_path / "g.parquet"})
    assert prov["bundle_hash"] == bundle.hash
    assert prov["generation"]["seed"] == 4 and prov["generation"]["sampling"]["gamma"] == 0.2
    assert prov["inputs"]["generated"]["n_events"] == 300 and prov["command"] is None


def test_cli_evaluate_records_its_command_and_inputs(tmp_path: Path) -> None:
    from eventgen.cli import main
    from eventgen.io import write_events

    table = read_events(DATA)
    reference, generated = _small(table, slice(0, 1000)), _small(table, slice(1000, 1600))
    write_events(tmp_path / "ref.parquet", reference.data, reference.schema)
    write_events(tmp_path / "gen.parquet", generated.data, generated.schema, {"bundle_hash": "cd" * 32})
    argv = [
        "evaluate",
        "--generated",
        str(tmp_path / "gen.parquet"),
        "--reference",
        str(tmp_path / "ref.parquet"),
    ]
    argv += ["-o", str(tmp_path / "rep"), "--max-events", "300", "-q"]
    assert main(argv) == 0
    prov = json.loads((tmp_path / "rep" / "metrics.json").read_text())["provenance"]
    assert prov["command"] == "eventgen " + " ".join(argv)
    assert prov["bundle_hash"] == "cd" * 32 and prov["evaluation"] == {"seed": 0, "max_events": 300}
    for role, name in (("generated", "gen.parquet"), ("reference", "ref.parquet")):
        sha = hashlib.sha256((tmp_path / name).read_bytes()).hexdigest()
        assert prov["inputs"][role]["files"] == [{"name": name, "sha256": sha}]
    assert (tmp_path / "rep" / "report.html").stat().st_size > 100_000  # figures embedded


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ([0.7213, 0.0102], "0.721 ± 0.010"),
        ([46.55, 2.71], "46.5 ± 2.7"),
        ([0.0005092, 9.1e-05], "(5.09 ± 0.91)e-4"),
        ([1.0, 0.0061], "1.0000 ± 0.0061"),
        ([123456.0, 20.0], "123456 ± 20"),
        ([0.3, None], "0.3"),
        ([1.0, 2.2e-16], "1"),  # an error at float rounding is no error
        ([None, None], "–"),
        (0.051444, "0.05144"),
        (None, "–"),
    ],
)
def test_values_are_rounded_to_their_errors(value: object, text: str) -> None:
    assert format_value(value) == text


def test_tension_marks_only_values_well_above_truth() -> None:
    one = {"w1": [1.0, 0.1], "chi2_ndf": [0.9, 0.1], "de_chi2": 0.1}
    truth = {"w1": [0.5, 0.1], "chi2_ndf": [0.5, 0.1], "de_chi2": 0.1}
    _, rows, flags = quantity_table({"x": one}, {"x": truth}, "column")
    assert rows[0][:3] == ["x", "1.00 ± 0.10", "0.50 ± 0.10"]
    assert flags[0][1] and not flags[0][3]  # 0.5 > 3 * 0.141; 0.4 < 3 * 0.141
    _, _, none = quantity_table({"x": {**one, "w1": [None, None]}}, {"x": truth}, "column")
    assert not any(none[0])
    assert rows[0][7:] == ["–", "–", "–"]  # results written before the 10–90% ranges


def test_quantity_table_shows_the_central_ranges_and_width_ratios() -> None:
    peak = {"w1": [0.01, 0.004], "chi2_ndf": [1.1, 0.2], "de_chi2": 0.001, "width_ratio": [0.98318, 0.0312]}
    ranges = {"generated": [88.4912, 91.1876], "reference": [88.4401, 91.1876]}
    header, rows, _ = quantity_table(
        {"m_ll": {**peak, "central_range": ranges}}, {"m_ll": peak}, "observable"
    )
    cells = dict(zip(header, rows[0], strict=True))
    assert cells["10–90% range (simulation)"] == "88.49–91.19 (88.44–91.19)"
    assert (cells["10–90% width ratio"], cells["truth width ratio"]) == ("0.983 ± 0.031", "0.983 ± 0.031")


def test_without_the_plots_extra_one_warning_and_no_images(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    table = read_events(DATA)
    test = _small(table, slice(0, 600))
    result = evaluate(test, test, None, seed=0, max_events=200)
    monkeypatch.setitem(sys.modules, "mplhep", None)  # import mplhep raises ImportError
    write_report(result, tmp_path, generated=test, reference=test)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "pip install 'eventgen[plots]'" in warnings[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json", "report.html", "report.md"]
    page = (tmp_path / "report.html").read_text()
    assert "<img" not in page and "<h2>Per column</h2>" in page and "<h2>Provenance</h2>" in page


PROBE = """<script>
addEventListener('load', () => {
  const probe = document.createElement('pre');
  probe.id = 'probe';
  probe.textContent = JSON.stringify({
    tables: [...document.querySelectorAll('table')].map(t => [t.rows.length, t.getBoundingClientRect().height]),
    images: [...document.images].map(i => [i.complete, i.naturalWidth, i.naturalHeight, i.getBoundingClientRect().width]),
  });
  document.body.appendChild(probe);
});
</script>"""


def _chromium(*args: str) -> subprocess.CompletedProcess[str]:
    command = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)


@pytest.mark.chromium
@pytest.mark.skipif(
    shutil.which("chromium") is None, reason="needs the chromium browser (apt install chromium)"
)
def test_report_renders_in_headless_chromium(report_dir: Path, tmp_path: Path) -> None:
    page = (report_dir / "report.html").read_text()
    probed = tmp_path / "probed.html"
    probed.write_text(page.replace("</body>", PROBE + "</body>"))
    dom = _chromium(
        "--virtual-time-budget=10000", "--window-size=1280,2000", "--dump-dom", probed.as_uri()
    ).stdout
    found = re.search(r"<pre id=\"probe\">(.*?)</pre>", dom, re.S)
    assert found, "the page did not finish loading"
    seen = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert len(seen["tables"]) == 6  # headline, memorisation, columns, observables, physicality, provenance
    assert all(rows >= 2 and height > 40 for rows, height in seen["tables"])
    assert len(seen["images"]) == len(KEEP) + 2
    assert all(
        done and (w, h) in ((1000, 1000), (1300, 900)) and shown > 200 for done, w, h, shown in seen["images"]
    )

    shot = tmp_path / "shot.png"
    _chromium(
        "--virtual-time-budget=10000", "--window-size=1280,1600", f"--screenshot={shot}", probed.as_uri()
    )
    from PIL import Image

    with Image.open(shot) as image:
        pixels = np.asarray(image.convert("L"), dtype=np.float64)
    assert pixels.shape == (1600, 1280)
    assert pixels.std() > 20 and (pixels < 100).mean() > 0.01  # text, tables and figures, not a blank page

"""The report's files: one CSV row per case and one static HTML page (no script, no server, no network)."""

from __future__ import annotations

import csv
import html
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lgeseg.core.atomic import atomic_output
from lgeseg.report.measures import AHA_SEGMENTS

#: CSV columns before the 16 segment columns: the case and its patient/study, the volumes with their
#: reference ranges, the enhancement estimate, the wall and quality numbers, the model.
COLUMNS = ("case", "patient_id", "study", "study_date", "series", "sex", "age_years", "height_cm", "weight_kg",
           "bsa_m2", "study_source",
           "edv_ml", "edv_ref", "edv_vs_ref", "edv_per_bsa_ml_m2", "edv_per_bsa_ref", "edv_per_bsa_vs_ref",
           "myocardium_ml", "myocardium_mass_g", "mass_ref", "mass_vs_ref", "mass_per_bsa_g_m2", "mass_per_bsa_ref",
           "mass_per_bsa_vs_ref",
           "scar_nsd_percent", "scar_nsd_ml", "scar_fwhm_percent", "scar_fwhm_ml", "scar_n_sd", "scar_remote_segment",
           "scar_note",
           "lv_slices", "ring_slices", "wall_median_mm", "qc_flagged", "qc_score", "qc_reasons", "segments_note",
           "montage", "model", "model_version")
#: The reference comparisons of a row: (value column, range column, status column, label, unit).
REFERENCE_ROWS = (("edv_ml", "edv_ref", "edv_vs_ref", "EDV", "mL"),
                  ("edv_per_bsa_ml_m2", "edv_per_bsa_ref", "edv_per_bsa_vs_ref", "EDV / BSA", "mL/m2"),
                  ("myocardium_mass_g", "mass_ref", "mass_vs_ref", "myocardial mass", "g"),
                  ("mass_per_bsa_g_m2", "mass_per_bsa_ref", "mass_per_bsa_vs_ref", "mass / BSA", "g/m2"))
SEGMENT_COLUMNS = tuple(f"aha{n}_{level}_{name}_mm" for n, level, name in AHA_SEGMENTS)


#: Decimals of a column's numbers where one decimal is too coarse.
DECIMALS = {"bsa_m2": 2}


def _cell(value: Any, decimals: int = 1) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.{decimals}f}"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def empty_row(case: str) -> dict[str, Any]:
    """A row with every column empty (NaN for the segments) but ``case``: what a row must hold.

    Example:
        >>> row = empty_row("c1")
        >>> row["case"], row["edv_ml"], len(row) == len(COLUMNS) + len(SEGMENT_COLUMNS)
        ('c1', '', True)
    """
    return {**dict.fromkeys(COLUMNS, ""), **dict.fromkeys(SEGMENT_COLUMNS, math.nan), "case": case,
            "qc_flagged": False}


def write_csv(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    """Write ``rows`` (dicts with ``COLUMNS`` + ``SEGMENT_COLUMNS``) to ``path`` atomically; NaN as empty.

    Example:
        >>> import csv, tempfile
        >>> row = empty_row("c1")  # no segments: NaN
        >>> row.update(edv_ml=92.87)
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     write_csv(Path(folder) / "report.csv", [row])
        ...     written = next(csv.DictReader((Path(folder) / "report.csv").open()))
        >>> written["case"], written["edv_ml"], written["aha1_basal_anterior_mm"]  # one decimal; NaN as empty
        ('c1', '92.9', '')
    """
    with atomic_output(path, suffix=".csv") as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[*COLUMNS, *SEGMENT_COLUMNS])
        writer.writeheader()
        for row in rows:
            writer.writerow({key: _cell(row[key], DECIMALS.get(key, 1)) for key in writer.fieldnames})


_STYLE = """
body { font-family: DejaVu Sans, Arial, sans-serif; margin: 24px; color: #222; max-width: 1200px; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 17px; margin-top: 28px; }
p.note { color: #555; font-size: 13px; margin-top: 2px; } p.meta { font-size: 13px; margin: 2px 0; }
table { border-collapse: collapse; font-size: 13px; margin: 8px 0; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th { background: #eef2f6; } td.l, th.l { text-align: left; }
tr.flag td { background: #fff0e0; } span.flag { color: #b34700; font-weight: bold; }
span.out { color: #b34700; font-weight: bold; }
img { max-width: 100%; border: 1px solid #ddd; margin-top: 6px; }
div.row { display: flex; gap: 24px; align-items: flex-start; flex-wrap: wrap; }
"""


def _status(status: str) -> str:
    return f"<span class='out'>{html.escape(status)}</span>" if status in ("above", "below") else html.escape(status)


def _summary_table(rows: Sequence[dict[str, Any]]) -> str:
    n_sd = next((f"{row['scar_n_sd']:g}-SD " for row in rows if isinstance(row["scar_n_sd"], float)), "")
    head = ("<tr><th class='l'>case</th><th class='l'>patient</th><th class='l'>study date</th><th>EDV (mL)</th>"
            f"<th>mass (g)</th><th>scar, {n_sd}estimate (% of mass)</th><th>LV slices</th><th>wall median (mm)</th>"
            "<th class='l'>quality check</th></tr>")
    lines = [head]
    for row in rows:
        flag = "<span class='flag'>check: " + html.escape(row["qc_reasons"] or "flagged") + "</span>" \
            if row["qc_flagged"] else "passed"
        case = html.escape(row["case"])
        edv = _cell(row["edv_ml"]) + (f" ({_status(row['edv_vs_ref'])})" if row["edv_vs_ref"] else "")
        mass_status = (_status(row["mass_vs_ref"]) if row["mass_vs_ref"] else  # the default ranges: per BSA only
                       f"{_status(row['mass_per_bsa_vs_ref'])} per BSA" if row["mass_per_bsa_vs_ref"] else "")
        mass = _cell(row["myocardium_mass_g"]) + (f" ({mass_status})" if mass_status else "")
        lines.append(f"<tr{' class=flag' if row['qc_flagged'] else ''}><td class='l'><a href='#{case}'>{case}</a>"
                     f"</td><td class='l'>{html.escape(str(row['patient_id']))}</td>"
                     f"<td class='l'>{html.escape(str(row['study_date']) or '-')}</td><td>{edv}</td><td>{mass}</td>"
                     f"<td>{_cell(row['scar_nsd_percent']) or '-'}</td><td>{row['lv_slices']}</td>"
                     f"<td>{_cell(row['wall_median_mm'])}</td><td class='l'>{flag}</td></tr>")
    return "<table>" + "\n".join(lines) + "</table>"


def _patient_line(row: dict[str, Any]) -> str:
    parts = [f"patient {row['patient_id'] or 'unknown'}"]
    parts += [f"study {row['study']}"] if row["study"] else []
    parts.append(f"date {row['study_date'] or 'unknown'}")
    parts += [f"series {row['series']}"] if row["series"] else []
    parts.append({"M": "male", "F": "female", "O": "sex other"}.get(str(row["sex"]), "sex unknown"))
    parts += [f"age {row['age_years']:.0f} y"] if isinstance(row["age_years"], float) else []
    body = [f"{_cell(row[k])} {u}" for k, u in (("height_cm", "cm"), ("weight_kg", "kg")) if _cell(row[k])]
    parts.append(", ".join(body) + f", BSA {_cell(row['bsa_m2'], 2)} m2" if _cell(row["bsa_m2"])
                 else "no height/weight: no BSA-indexed values")
    return f"<p class='meta'>{html.escape('; '.join(parts))} (from {html.escape(str(row['study_source']))}).</p>"


def _reference_table(row: dict[str, Any]) -> str:
    lines = ["<tr><th class='l'>measure</th><th>value</th><th class='l'>reference range</th><th class='l'></th></tr>"]
    for value, reference, status, label, unit in REFERENCE_ROWS:
        if not _cell(row[value]):
            continue
        lines.append(f"<tr><td class='l'>{label}</td><td>{_cell(row[value])} {unit}</td>"
                     f"<td class='l'>{html.escape(str(row[reference])) or '-'}</td>"
                     f"<td class='l'>{_status(str(row[status]))}</td></tr>")
    return "<table>" + "".join(lines) + "</table>"


def _scar_line(row: dict[str, Any]) -> str:
    if not _cell(row["scar_nsd_percent"]):
        why = row["scar_note"] or "not estimated"
        return f"<p class='meta'>Enhancement (scar) burden: not estimated ({html.escape(str(why))}).</p>"
    fwhm = (f"FWHM {_cell(row['scar_fwhm_percent'])} % ({_cell(row['scar_fwhm_ml'])} mL)"
            if _cell(row["scar_fwhm_percent"]) else "FWHM not given")
    note = f" {row['scar_note']}." if row["scar_note"] else ""
    return (f"<p class='meta'><b>Enhancement (scar) burden, an automatic estimate:</b> {row['scar_n_sd']:g}-SD "
            f"{_cell(row['scar_nsd_percent'])} % of the myocardial mass ({_cell(row['scar_nsd_ml'])} mL); "
            f"{html.escape(fwhm)}. Remote myocardium: {html.escape(str(row['scar_remote_segment']))} (the darkest "
            f"segment).{html.escape(note)}</p>")


def _segment_table(row: dict[str, Any]) -> str:
    """Wall thickness per AHA segment as a compact grid: one column per level, segments in AHA order."""
    if row["segments_note"]:
        note = html.escape(row["segments_note"])
        return f"<p class='note'>Wall thickness per AHA segment: not measured ({note}).</p>"
    levels: dict[str, list[str]] = {"basal": [], "mid": [], "apical": []}
    for (number, level, name), column in zip(AHA_SEGMENTS, SEGMENT_COLUMNS, strict=True):
        levels[level].append(f"<td>{number}</td><td class='l'>{name}</td><td>{_cell(row[column]) or '-'}</td>")
    lines = ["<tr>" + "".join(f"<th colspan='3'>{level} (wall, mm)</th>" for level in levels) + "</tr>"]
    for k in range(6):
        lines.append("<tr>" + "".join(cells[k] if k < len(cells) else "<td></td><td></td><td></td>"
                                      for cells in levels.values()) + "</tr>")
    return "<table>" + "".join(lines) + "</table>"


def render_page(title: str, rows: Sequence[dict[str, Any]], notes: Sequence[str],
                header: Sequence[str] = ()) -> str:
    """The report as one self-contained HTML document (montages linked as relative PNG paths, no script).

    Args:
        title: the page's title and heading (the study).
        rows: one dict per case (``empty_row`` lists the keys).
        notes: what the numbers are, printed under the header.
        header: lines under the title (the model, how the page was made).

    Example:
        >>> row = empty_row("c1")
        >>> row.update(segments_note="no ring", montage="montages/c1.png", edv_ml=230.0, edv_vs_ref="above")
        >>> page = render_page("LV report: patient P1", [row], notes=["Check every contour."], header=["model m1"])
        >>> page.startswith("<!DOCTYPE html>"), "montages/c1.png" in page, "<script" in page
        (True, True, False)
        >>> "230.0 (<span class='out'>above</span>)" in page  # outside the reference range, highlighted
        True
    """
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{_STYLE}</style></head><body>", f"<h1>{html.escape(title)}</h1>"]
    parts += [f"<p class='meta'>{html.escape(line)}</p>" for line in header]
    parts += [f"<p class='note'>{html.escape(note)}</p>" for note in notes]
    parts.append(_summary_table(rows))
    for row in rows:
        parts.append(f"<h2 id='{html.escape(row['case'])}'>{html.escape(row['case'])}</h2>")
        parts.append(_patient_line(row))
        parts.append(f"<p class='note'>EDV {_cell(row['edv_ml'])} mL, myocardium {_cell(row['myocardium_ml'])} mL, "
                     f"mass {_cell(row['myocardium_mass_g'])} g, {row['ring_slices']} slice(s) with a myocardial "
                     f"ring, median wall {_cell(row['wall_median_mm']) or '-'} mm.</p>")
        parts.append(f"<div class='row'>{_reference_table(row)}{_segment_table(row)}</div>")
        parts.append(_scar_line(row))
        parts.append(f"<img src='{html.escape(row['montage'])}' alt='every slice of {html.escape(row['case'])} with "
                     "the endocardial (red) and epicardial (green) contours'>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_page(path: Path, title: str, rows: Sequence[dict[str, Any]], notes: Sequence[str],
               header: Sequence[str] = ()) -> None:
    """Write ``render_page(...)`` to ``path`` atomically.

    Example:
        >>> import tempfile
        >>> row = empty_row("c1")
        >>> row.update(segments_note="no ring", montage="montages/c1.png")
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     write_page(Path(folder) / "index.html", "lgeseg report", [row], notes=[])
        ...     (Path(folder) / "index.html").read_text().count("<h1>lgeseg report</h1>")
        1
    """
    with atomic_output(path, suffix=".html") as tmp:
        tmp.write_text(render_page(title, rows, notes, header), encoding="utf-8")

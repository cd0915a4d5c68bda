"""Build the report of a prediction folder: measurements, quality flags, montages, CSV and HTML page.

Reads the label maps ``PRED_DIR/<case><ending>`` (any ending lgeseg reads), the quality records
``PRED_DIR/qc.json`` that ``lgeseg_predict`` writes (``lgeseg.inference.quality``; a case without a
record, e.g. predicted by another tool, is assessed here from its label map, without the mirror
check), the record of the models ``PRED_DIR/lgeseg_predictions.json`` (``study.prediction_models``),
and optionally the images the predictions were made from (``IMAGES``: a folder as ``lgeseg_predict -i``
takes it, image files or DICOM series): the contours are drawn on them, the enhancement (scar) burden
is estimated from them (``enhancement``), and a DICOM series gives the patient and study
(``study.read_dicom_study``; else the file name). The volumes are compared with published reference
ranges by sex, and per BSA when height and weight are known (``reference``). Writes into ``OUT``
(default ``PRED_DIR/report``): ``index.html``, ``report.csv`` and ``montages/<case>.png``; an existing
report there is replaced only with ``overwrite`` (``check_report_output``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from lgeseg import __version__
from lgeseg.core.errors import OutputConflictError
from lgeseg.files import io
from lgeseg.inference.input_cases import list_input_cases, read_case
from lgeseg.inference.overlays import write_overlay
from lgeseg.inference.quality import CaseQuality, assess_segmentation, is_constant_image, read_quality_report
from lgeseg.report.enhancement import DEFAULT_N_SD, EnhancementEstimate, estimate_enhancement
from lgeseg.report.measures import CaseMeasures, measure_case
from lgeseg.report.page import SEGMENT_COLUMNS, empty_row, write_csv, write_page
from lgeseg.report.reference import (
    DEFAULT_RANGES,
    ReferenceRange,
    body_surface_area,
    compare_case,
    load_reference_ranges,
)
from lgeseg.report.study import (
    ModelSummary,
    StudyInfo,
    prediction_models,
    read_dicom_study,
    report_title,
    study_from_file_name,
    with_patient,
)

logger = logging.getLogger(__name__)

#: What the page says about the numbers (docs/clinical_use.md has the details).
NOTES = (
    "EDV: LV blood-pool volume of the LGE stack (slice summation, gaps between slices included). LGE is "
    "acquired at one phase, usually mid-diastole, so this estimates the end-diastolic volume; it is not a cine EDV.",
    "Myocardial mass: myocardial volume x 1.05 g/mL. Wall thickness: median length of 360 radial rays "
    "inside the myocardium per slice; AHA segments are placed from the image orientation (septum towards "
    "the patient's right-anterior), to within about 30 degrees, without the right-ventricular insertion points.",
    "Reference ranges: adults, cine SSFP, by sex (both sexes' limits together when the sex is unknown), per BSA "
    "(Mosteller) when height and weight are known; limits = published mean +- 2 SD. EDV: Hudsmith et al., "
    "J Cardiovasc Magn Reson 2005 (papillary muscles in the mass); EDV/BSA: Alfakih et al., J Magn Reson Imaging "
    "2003; mass/BSA: Petersen et al. (UK Biobank), J Cardiovasc Magn Reson 2017 (papillary muscles in the volume, "
    "as lgeseg counts them). No absolute myocardial mass range (no source whose table could be read): the mass "
    "range is per BSA and needs the patient's height and weight (--height-cm and --weight-kg, or the DICOM tags "
    "PatientSize and PatientWeight). A site's own ranges: --reference-ranges. The LGE volume is not a cine EDV "
    "and lgeseg counts papillary muscles as blood pool: compare with care.",
    "Enhancement (scar) burden: an automatic estimate from the image intensities inside the predicted myocardium "
    "(n-SD above the darkest myocardial segment, and FWHM); it is only as good as the myocardial contour and was "
    "not compared with manual scar quantification.",
    "Automatic segmentation for research: check every contour below before using a number.",
)


def _label_maps(pred_dir: Path) -> dict[str, Path]:
    maps = {io.strip_ending(p): p for p in sorted(pred_dir.iterdir())
            if p.is_file() and io.file_ending(p) and not p.name.startswith(".")}
    if not maps:
        raise FileNotFoundError(f"{pred_dir}: no predicted label maps found (expected <case>.nii.gz files)")
    return maps


def _images(images_dir: Path | None) -> dict[str, Any]:
    if images_dir is None:
        return {}
    return {case.case_id: case for case in list_input_cases(images_dir)}


def _row(case_id: str, measures: CaseMeasures, quality: CaseQuality, montage: str) -> dict[str, Any]:
    row = empty_row(case_id)
    row.update({
        "edv_ml": measures.blood_pool_ml, "myocardium_ml": measures.myocardium_ml,
        "myocardium_mass_g": measures.myocardium_mass_g, "lv_slices": measures.lv_slices,
        "ring_slices": measures.ring_slices, "wall_median_mm": measures.wall_mean_mm,
        "qc_flagged": quality.flagged, "qc_score": quality.score, "qc_reasons": ";".join(quality.reasons),
        "segments_note": measures.segments_note, "montage": montage})
    row.update({column: measures.segments_mm[n] for n, column in enumerate(SEGMENT_COLUMNS, start=1)})
    return row


def _add_study(row: dict[str, Any], study: StudyInfo, ranges: Sequence[ReferenceRange]) -> None:
    """The patient/study columns and the reference comparisons of the row's EDV and mass."""
    bsa = body_surface_area(study.height_cm, study.weight_kg)
    row.update(patient_id=study.patient_id, study=study.study, study_date=study.study_date, series=study.series,
               sex=study.sex, age_years=study.age_years, height_cm=study.height_cm, weight_kg=study.weight_kg,
               bsa_m2=bsa, study_source=study.source)
    edv, edv_bsa, mass, mass_bsa = compare_case(row["edv_ml"], row["myocardium_mass_g"], study.sex, study.age_years,
                                                bsa, ranges)
    row.update(edv_ref=edv.range_text, edv_vs_ref=edv.status, edv_per_bsa_ml_m2=edv_bsa.value,
               edv_per_bsa_ref=edv_bsa.range_text if not math.isnan(bsa) else "",
               edv_per_bsa_vs_ref=edv_bsa.status, mass_ref=mass.range_text, mass_vs_ref=mass.status,
               mass_per_bsa_g_m2=mass_bsa.value, mass_per_bsa_ref=mass_bsa.range_text if not math.isnan(bsa) else "",
               mass_per_bsa_vs_ref=mass_bsa.status)


def _add_enhancement(row: dict[str, Any], estimate: EnhancementEstimate | None, n_sd: float) -> None:
    if estimate is None:
        row.update(scar_n_sd=n_sd, scar_note="no image given (lgeseg_report -i IMAGES)")
        return
    row.update(scar_nsd_percent=estimate.nsd_percent, scar_nsd_ml=estimate.nsd_ml,
               scar_fwhm_percent=estimate.fwhm_percent, scar_fwhm_ml=estimate.fwhm_ml, scar_n_sd=estimate.n_sd,
               scar_remote_segment=estimate.remote_segment, scar_note=estimate.note)


def _study_of(case_id: str, case: Any) -> StudyInfo:
    """A DICOM series' tags, else the file name's ID and date."""
    if case is not None and getattr(case, "series", None) is not None:
        return read_dicom_study(case.series.files[0])
    return study_from_file_name(case_id)


def _header(models: Sequence[ModelSummary]) -> list[str]:
    lines = [f"Model: {m.name}" + (f" ({m.members} members)" if m.members > 1 else "") + f"; version: {m.version}"
             + (f". {m.description}" if m.description else "") for m in models]
    if not models:
        lines.append("Model: unknown (no lgeseg_predictions.json in the predictions folder: predicted by another tool "
                     "or an older lgeseg)")
    lines.append(f"Report written by lgeseg {__version__}. Research software, not a medical device.")
    return lines


def _case_image(case: Any, labels: np.ndarray, geometry: Any) -> tuple[np.ndarray, bool]:
    """The image to draw on (channel 0), and whether it is constant; zeros when there is none."""
    if case is None:
        return np.zeros(labels.shape, np.float32), False
    image, image_geometry = read_case(case)
    problems = io.geometry_mismatch(image_geometry, geometry)
    if problems:
        raise ValueError(f"{case.paths[0]}: image grid differs from its prediction's: {'; '.join(problems)}")
    return image[0], is_constant_image(image)


def check_report_output(pred_dir: Path, out_dir: Path, images_dir: Path | None, cases: list[str],
                        overwrite: bool = False) -> None:
    """Refuse a report folder that is the predictions folder, is (or is inside) the images folder, or,
    unless ``overwrite``, already holds ``index.html``, ``report.csv`` or a montage of one of ``cases``.

    Example:
        >>> import tempfile
        >>> tmp = Path(tempfile.mkdtemp())
        >>> check_report_output(tmp / "pred", tmp / "pred" / "report", None, ["c1"])  # the default: fine
        >>> check_report_output(tmp / "pred", tmp / "pred", None, ["c1"])
        Traceback (most recent call last):
        ValueError: ...pred: the report folder must not be the predictions folder (...); ...
        >>> _ = (tmp / "pred" / "report").mkdir(parents=True), (tmp / "pred" / "report" / "index.html").write_text("")
        >>> check_report_output(tmp / "pred", tmp / "pred" / "report", None, ["c1"])
        Traceback (most recent call last):
        lgeseg.core.errors.OutputConflictError: .../index.html: already exists (a report); use --overwrite to replace
        ...
        >>> import shutil; shutil.rmtree(tmp)
    """
    out = out_dir.resolve()
    if out == pred_dir.resolve():
        raise ValueError(f"{out_dir}: the report folder must not be the predictions folder ({pred_dir}); leave -o "
                         "out for PRED_DIR/report, or choose another folder")
    if images_dir is not None and (out == images_dir.resolve() or images_dir.resolve() in out.parents):
        raise ValueError(f"{out_dir}: the report folder must not be the images folder ({images_dir}) or inside it; "
                         "choose another folder")
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputConflictError(f"{out_dir}: exists and is a file; the report needs a folder")
    outputs = [out_dir / "index.html", out_dir / "report.csv", *(out_dir / "montages" / f"{c}.png" for c in cases)]
    existing = [path for path in outputs if path.exists()]
    if existing and not overwrite:
        more = f" (and {len(existing) - 1} more report file(s))" if len(existing) > 1 else " (a report)"
        raise OutputConflictError(f"{existing[0]}: already exists{more}; use --overwrite to replace the report, or "
                                  "choose another folder with -o")


def make_report(pred_dir: str | Path, out_dir: str | Path | None = None, images_dir: str | Path | None = None,
                title: str | None = None, overwrite: bool = False, *, sex: str | None = None,
                height_cm: float | None = None, weight_kg: float | None = None, n_sd: float = DEFAULT_N_SD,
                reference_ranges: str | Path | Sequence[ReferenceRange] | None = None) -> Path:
    """Write the report of a prediction folder.

    Args:
        pred_dir: folder of predicted label maps (1 blood pool, 2 myocardium), e.g. ``lgeseg_predict -o``.
        out_dir: where to write (default ``pred_dir/report``); created.
        images_dir: the images predicted (image files or DICOM series), for the montages, the
            enhancement estimate and (DICOM) the patient and study; None draws the contours on a black
            background and estimates no enhancement.
        title: page title (default: the study, ``study.report_title``).
        overwrite: replace the report files already in ``out_dir`` (otherwise refused before any work).
        sex, height_cm, weight_kg: the patient's, for every case (they take precedence over the DICOM
            tags); height and weight give the BSA-indexed values.
        n_sd: the n of the n-SD enhancement threshold.
        reference_ranges: a JSON file of the site's ranges (``reference.load_reference_ranges``) or the
            ranges; default ``reference.DEFAULT_RANGES``.

    Returns:
        The path of ``index.html``. Raises ``FileNotFoundError`` when ``pred_dir`` holds no label map
        and ``ValueError`` naming the file when an image's grid differs from its prediction's.

    Example:
        >>> import csv, shutil, tempfile
        >>> from lgeseg.synth import synthesize_case
        >>> tmp = Path(tempfile.mkdtemp())
        >>> case = synthesize_case(1, index=0, seed=0, in_plane_size=64)  # its label map stands in for a prediction
        >>> io.write_label(tmp / "predictions" / "P017_20240312.nii.gz", case.label, case.geometry)
        >>> make_report(tmp / "predictions", sex="M").relative_to(tmp).as_posix()
        'predictions/report/index.html'
        >>> with open(tmp / "predictions" / "report" / "report.csv") as handle:
        ...     row = next(csv.DictReader(handle))
        >>> row["patient_id"], row["study_date"], round(float(row["edv_ml"])), row["edv_ref"], row["edv_vs_ref"]
        ('P017', '2024-03-12', 93, '102-218 mL (men)', 'below')
        >>> page = (tmp / "predictions" / "report" / "index.html").read_text()
        >>> "<title>LV report: patient P017, 2024-03-12</title>" in page  # the study, not the folder
        True
        >>> shutil.rmtree(tmp)
    """
    pred_dir = Path(pred_dir)
    out_dir = Path(out_dir) if out_dir is not None else pred_dir / "report"
    maps = _label_maps(pred_dir)
    check_report_output(pred_dir, out_dir, Path(images_dir) if images_dir is not None else None, list(maps),
                        overwrite)
    ranges = (load_reference_ranges(reference_ranges) if isinstance(reference_ranges, (str, Path))
              else tuple(reference_ranges or DEFAULT_RANGES))
    images = _images(Path(images_dir) if images_dir is not None else None)
    qualities = {q.case_id: q for q in read_quality_report(pred_dir)}
    models = prediction_models(pred_dir)
    model_name = "; ".join(m.name for m in models)
    model_version = "; ".join(m.version for m in models)
    rows, studies = [], []
    for case_id, path in tqdm(maps.items(), desc="report", unit="case"):
        labels, geometry = io.read_label(path)
        case = images.get(case_id)
        image, constant = _case_image(case, labels, geometry)
        quality = qualities.get(case_id) or assess_segmentation(labels, geometry.spacing, case_id,
                                                                input_constant=constant)
        measures = measure_case(labels, geometry.spacing, geometry.direction)
        montage = f"montages/{case_id}.png"
        write_overlay(out_dir / montage, image, labels, geometry.spacing, title=case_id)
        row = _row(case_id, measures, quality, montage)
        study = with_patient(_study_of(case_id, case), sex, height_cm, weight_kg)
        studies.append(study)
        _add_study(row, study, ranges)
        estimate = None if case is None else estimate_enhancement(image, labels, geometry.spacing,
                                                                  geometry.direction, n_sd)
        _add_enhancement(row, estimate, n_sd)
        row.update(model=model_name, model_version=model_version)
        rows.append(row)
    missing = sorted(set(images) - set(maps))
    if missing:
        logger.warning("%d image case(s) have no prediction in %s: %s", len(missing), pred_dir, ", ".join(missing))
    write_csv(out_dir / "report.csv", rows)
    page = out_dir / "index.html"
    write_page(page, title or report_title(studies), rows, NOTES, _header(models))
    return page

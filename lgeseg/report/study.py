"""Who and what the report is about: patient and study of each case, and the model that predicted them.

- **Patient and study**: for a DICOM series, the tags of its first file (read with SimpleITK's
  ``ImageFileReader`` header only): PatientID, StudyID, AccessionNumber, StudyDate, StudyDescription,
  SeriesDescription, PatientSex, PatientAge, PatientSize (m) and PatientWeight (kg). For an image file
  (or without ``-i``), the file name: a date written ``YYYYMMDD`` or ``YYYY-MM-DD`` in it is the study
  date, the rest of the name is the patient/study ID. The patient's name is not read.
- **Model**: ``lgeseg_predictions.json`` (written by ``lgeseg_predict`` into its output folder) names the
  model folders and checkpoints; each folder still present gives its card's name (an ensemble's
  ``model_card.json``, else ``model.json``'s ``model_card``), the lgeseg version that trained it and a
  SHA-256 of its weights, which is the version a report can be traced back to.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import SimpleITK as sitk

from lgeseg.core.records import load_json
from lgeseg.inference.output_folder import PROVENANCE_FILE
from lgeseg.model.archive import hash_file_into
from lgeseg.model.folder import MODEL_INFO_FILE

#: DICOM tags read for the report (SimpleITK's "gggg|eeee" keys).
STUDY_TAGS = {"patient_id": "0010|0020", "sex": "0010|0040", "age": "0010|1010", "size_m": "0010|1020",
              "weight_kg": "0010|1030", "study_id": "0020|0010", "accession": "0008|0050", "study_date": "0008|0020",
              "study_description": "0008|1030", "series_description": "0008|103e"}
#: A date in a file name: YYYYMMDD or YYYY-MM-DD (or with '_'), not part of a longer number.
_DATE = re.compile(r"(?<!\d)((?:19|20)\d\d)[-_]?(0[1-9]|1[0-2])[-_]?(0[1-9]|[12]\d|3[01])(?!\d)")


@dataclasses.dataclass(frozen=True)
class StudyInfo:
    """Patient and study of one case ("" or None where unknown).

    Attributes:
        patient_id: PatientID, or the file name's ID.
        study: StudyID / AccessionNumber / StudyDescription, whichever the series has ("" for a file).
        study_date: ISO date (YYYY-MM-DD).
        series: SeriesDescription.
        sex: ``"M"``, ``"F"``, ``"O"`` or "".
        age_years: PatientAge in years.
        height_cm, weight_kg: PatientSize (converted from m) and PatientWeight.
        source: where these came from: ``"DICOM"``, ``"file name"`` or, for values given on the command
            line, ``"... + command line"``.
    """

    patient_id: str = ""
    study: str = ""
    study_date: str = ""
    series: str = ""
    sex: str = ""
    age_years: float | None = None
    height_cm: float | None = None
    weight_kg: float | None = None
    source: str = ""


def dicom_date(text: str) -> str:
    """A DICOM DA value (``YYYYMMDD``) as ``YYYY-MM-DD``; "" when it is not a date.

    Example:
        >>> dicom_date("20240312"), dicom_date(""), dicom_date("2024")
        ('2024-03-12', '', '')
    """
    match = _DATE.fullmatch(text.strip())
    return "-".join(match.groups()) if match else ""


def dicom_age(text: str) -> float | None:
    """A DICOM AS value (``045Y``, ``018M``, ``012W``, ``005D``) in years; None when absent or malformed.

    Example:
        >>> dicom_age("045Y"), dicom_age("018M"), dicom_age("")
        (45.0, 1.5, None)
    """
    match = re.fullmatch(r"(\d{1,3})([DWMY])", text.strip())
    if not match:
        return None
    return int(match[1]) / {"D": 365.25, "W": 52.1775, "M": 12.0, "Y": 1.0}[match[2]]


def _number(text: str) -> float | None:
    try:
        value = float(text.strip().split("\\")[0])
    except ValueError:
        return None
    return value if math.isfinite(value) and value > 0 else None


def read_dicom_study(path: str | Path) -> StudyInfo:
    """The patient and study tags of one DICOM file (its header only; pixel data is not read).

    Usage (needs a DICOM file; ``tests/test_report.py`` writes one)::

        info = read_dicom_study("PACS_EXPORT/patient1/lge/IM0001.dcm")
        info.patient_id, info.study_date, info.sex, info.height_cm
    """
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.ReadImageInformation()
    tags = {name: reader.GetMetaData(tag).strip() if reader.HasMetaDataKey(tag) else ""
            for name, tag in STUDY_TAGS.items()}
    size_m = _number(tags["size_m"])
    study = " / ".join(t for t in (tags["study_id"], tags["accession"], tags["study_description"]) if t)
    sex = tags["sex"].upper()[:1]
    return StudyInfo(patient_id=tags["patient_id"], study=study, study_date=dicom_date(tags["study_date"]),
                     series=tags["series_description"], sex=sex if sex in ("M", "F", "O") else "",
                     age_years=dicom_age(tags["age"]), height_cm=None if size_m is None else size_m * 100.0,
                     weight_kg=_number(tags["weight_kg"]), source="DICOM")


def study_from_file_name(case_id: str) -> StudyInfo:
    """Patient/study ID and date from a case's file name (the case id).

    Example:
        >>> study_from_file_name("P017_20240312")
        StudyInfo(patient_id='P017', study='', study_date='2024-03-12', series='', sex='', age_years=None, \
height_cm=None, weight_kg=None, source='file name')
        >>> study_from_file_name("myops_3001").patient_id, study_from_file_name("myops_3001").study_date
        ('myops_3001', '')
    """
    match = _DATE.search(case_id)
    if not match:
        return StudyInfo(patient_id=case_id, source="file name")
    rest = (case_id[:match.start()] + " " + case_id[match.end():]).strip(" _-.")
    rest = re.sub(r"[ _.-]{2,}", "_", rest)
    return StudyInfo(patient_id=rest or case_id, study_date="-".join(match.groups()), source="file name")


def with_patient(info: StudyInfo, sex: str | None = None, height_cm: float | None = None,
                 weight_kg: float | None = None) -> StudyInfo:
    """``info`` with the sex, height and weight given on the command line (they take precedence).

    Example:
        >>> info = with_patient(StudyInfo(patient_id="P1", source="DICOM"), sex="f", height_cm=165)
        >>> info.sex, info.height_cm, info.weight_kg, info.source
        ('F', 165, None, 'DICOM + command line')
    """
    if sex is None and height_cm is None and weight_kg is None:
        return info
    return dataclasses.replace(
        info, sex=sex.upper()[:1] if sex else info.sex,
        height_cm=height_cm if height_cm is not None else info.height_cm,
        weight_kg=weight_kg if weight_kg is not None else info.weight_kg,
        source=f"{info.source} + command line" if info.source else "command line")


def _study_words(info: StudyInfo) -> str:
    words = [f"patient {info.patient_id}" if info.patient_id else "patient unknown"]
    if info.study:
        words.append(f"study {info.study}")
    words.append(info.study_date or "date unknown")
    return ", ".join(words)


def report_title(studies: Sequence[StudyInfo]) -> str:
    """The page title: the study (patient, study, date), or the number of studies and their patients.

    Example:
        >>> report_title([StudyInfo("P1", "CMR 42", "2024-03-12"), StudyInfo("P1", "CMR 42", "2024-03-12")])
        'LV report: patient P1, study CMR 42, 2024-03-12'
        >>> report_title([StudyInfo("P1", "", "2024-03-12"), StudyInfo("P2")])
        'LV report: 2 studies (patient P1, 2024-03-12; patient P2, date unknown)'
    """
    distinct = list(dict.fromkeys(_study_words(s) for s in studies))
    if len(distinct) == 1:
        return f"LV report: {distinct[0]}"
    shown = "; ".join(distinct[:4]) + ("; ..." if len(distinct) > 4 else "")
    return f"LV report: {len(distinct)} studies ({shown})"


@dataclasses.dataclass(frozen=True)
class ModelSummary:
    """A model that made the predictions.

    Attributes:
        name: the model's name (its card's ``model``, else its folder name; an ensemble's folder name).
        version: how to tell these weights from others: the lgeseg version that trained it, the
            checkpoint file, and the first 12 hex digits of the SHA-256 of its weights (all members).
        members: model folders ensembled.
        description: the card's description ("" when none).
    """

    name: str
    version: str
    members: int
    description: str = ""


def _card_of(folder: Path) -> dict[str, Any]:
    """An ensemble's ``model_card.json``, else ``model.json``'s card over its top-level fields; {} if neither."""
    if (folder / "model_card.json").is_file():
        card = load_json(folder / "model_card.json")
        return card if isinstance(card, dict) else {}
    if (folder / MODEL_INFO_FILE).is_file():
        data = load_json(folder / MODEL_INFO_FILE)
        if isinstance(data, dict):
            return {"lgeseg_version": data.get("lgeseg_version"), **(data.get("model_card") or {})}
    return {}



def _summary(folder: Path, entries: list[dict[str, Any]], lgeseg_version: str) -> ModelSummary:
    checkpoints = sorted({str(e.get("checkpoint", "")) for e in entries})
    paths = [Path(str(e.get("model", ""))) / str(e.get("checkpoint", "")) for e in entries]
    if not all(p.is_file() for p in paths):
        return ModelSummary(folder.name, f"{', '.join(checkpoints)}; model folder no longer at {folder} (predicted "
                                         f"with lgeseg {lgeseg_version})", len(entries))
    digest = hashlib.sha256()
    for path in paths:
        hash_file_into(digest, path)
    card = _card_of(folder) or _card_of(paths[0].parent)
    trained = card.get("lgeseg_version") or "unknown"
    version = f"trained with lgeseg {trained}, {', '.join(checkpoints)}, weights SHA-256 {digest.hexdigest()[:12]}"
    name = str(card.get("model") or folder.name)
    if name != folder.name:  # the card names the folder it was trained in; say where it is now
        name = f"{name} (folder {folder.name})"
    return ModelSummary(name, version, len(entries), str(card.get("description", "")))


def prediction_models(pred_dir: str | Path) -> list[ModelSummary]:
    """The models named by ``PRED_DIR/lgeseg_predictions.json``; [] when the folder has no such record.

    Members of one ensemble folder (``fold_<k>`` with a ``model_card.json`` beside them) count as one model.

    Example:
        >>> import json, tempfile
        >>> from lgeseg.model.folder import write_untrained_model
        >>> tmp = Path(tempfile.mkdtemp())
        >>> model = write_untrained_model(tmp / "lv_model")
        >>> record = {"lgeseg_version": "0.1.0", "models": [{"model": str(model), "checkpoint": "checkpoint_final.pt"}]}
        >>> _ = (tmp / "pred").mkdir(), (tmp / "pred" / "lgeseg_predictions.json").write_text(json.dumps(record))
        >>> summary = prediction_models(tmp / "pred")[0]
        >>> summary.name, summary.version.startswith("trained with lgeseg"), "SHA-256" in summary.version
        ('lv_model', True, True)
        >>> import shutil; shutil.rmtree(tmp)
    """
    path = Path(pred_dir) / PROVENANCE_FILE
    if not path.is_file():
        return []
    record = load_json(path)
    entries = record.get("models", []) if isinstance(record, dict) else []
    groups: dict[Path, list[dict[str, Any]]] = {}
    for entry in entries:
        folder = Path(str(entry.get("model", "")))
        if (folder.parent / "model_card.json").is_file() and folder.name.startswith("fold_"):
            folder = folder.parent
        groups.setdefault(folder, []).append(entry)
    return [_summary(folder, group, str(record.get("lgeseg_version", "unknown"))) for folder, group in groups.items()]

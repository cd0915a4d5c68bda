"""lgeseg_report: volumes, mass, AHA wall thickness, quality flags, montages, CSV and HTML."""

from __future__ import annotations

import csv
import hashlib
import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from lgeseg.cli.predict import main as predict_main
from lgeseg.cli.report import main as report_main
from lgeseg.core.records import CaseGeometry
from lgeseg.files import io
from lgeseg.files.dicom import find_series, read_series
from lgeseg.inference.quality import assess_segmentation, write_quality_report
from lgeseg.report import estimate_enhancement, measure_case
from lgeseg.report.build import NOTES
from lgeseg.report.enhancement import myocardial_segments
from lgeseg.report.reference import (
    DEFAULT_RANGES,
    MASS_NEEDS_BSA,
    MASS_PER_BSA_ONLY,
    compare_case,
    load_reference_ranges,
)
from lgeseg.synth import generate_case
from lgeseg.synth.dicom_series import write_dicom_series

IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
SPACING = (8.0, 0.5, 0.5)


def _ring_stack(slices: int = 6, wall_mm: float = 8.0, anterior_wall_mm: float = 12.0) -> np.ndarray:
    """A blood-pool disc (20 mm) in a myocardial ring, thicker over +-30 degrees around the anterior direction.

    With the identity orientation the septum faces (-x, -y) and the anterior wall (+x, -y) (LPS axes).
    """
    n = 140
    yy, xx = (np.mgrid[:n, :n] - n / 2 + 0.5) * SPACING[1]
    radius = np.hypot(xx, yy)
    anterior = np.array([1.0, -1.0]) / math.sqrt(2.0)
    angle = np.degrees(np.arccos(np.clip((xx * anterior[0] + yy * anterior[1]) / np.maximum(radius, 1e-9), -1, 1)))
    outer = np.where(angle < 30, 20.0 + anterior_wall_mm, 20.0 + wall_mm)
    ring = np.zeros((n, n), np.uint8)
    ring[radius < outer] = 2
    ring[radius < 20.0] = 1
    return np.repeat(ring[None], slices, axis=0)


def test_volumes_mass_and_wall_thickness_per_aha_segment_of_a_known_ring() -> None:
    labels = _ring_stack()
    measures = measure_case(labels, SPACING, IDENTITY)
    voxel_ml = np.prod(SPACING) / 1000
    assert measures.blood_pool_ml == pytest.approx(np.count_nonzero(labels == 1) * voxel_ml)
    assert measures.myocardium_mass_g == pytest.approx(np.count_nonzero(labels == 2) * voxel_ml * 1.05)
    assert measures.ring_slices == 6 and measures.segments_note == ""
    for anterior in (1, 7, 13):  # basal, mid and apical anterior segments hold the thick wall
        assert measures.segments_mm[anterior] == pytest.approx(12.0, abs=0.6)
    for other in (2, 3, 4, 5, 9, 10, 11, 14, 15):
        assert measures.segments_mm[other] == pytest.approx(8.0, abs=0.6)
    assert measures.wall_mean_mm == pytest.approx(8.0, abs=0.6)


def test_too_few_slices_or_an_unknown_orientation_give_no_segments_and_say_why() -> None:
    measures = measure_case(_ring_stack(slices=2), SPACING, IDENTITY)
    assert "at least 3" in measures.segments_note and all(math.isnan(v) for v in measures.segments_mm.values())
    assert measures.wall_mean_mm == pytest.approx(8.0, abs=0.6)
    axial_to_septum = (0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0)  # slice plane holds z and y only
    assert "orientation" in measure_case(_ring_stack(), SPACING, axial_to_septum).segments_note


def test_report_writes_page_csv_and_a_montage_per_case_with_the_quality_flags(tmp_path: Path) -> None:
    image, label, geometry = generate_case(1, 0, seed=3, in_plane_size=64, num_slices=6)
    io.write_image(tmp_path / "images" / "p1_0000.nii.gz", image, geometry)
    io.write_label(tmp_path / "pred" / "p1.nii.gz", label, geometry)
    empty_geometry = CaseGeometry(shape=(3, 20, 20), spacing=(8.0, 1.5, 1.5), origin=(0.0, 0.0, 0.0),
                                  direction=IDENTITY)
    io.write_label(tmp_path / "pred" / "p2.nii.gz", np.zeros(empty_geometry.shape, np.uint8), empty_geometry)
    io.write_image(tmp_path / "images" / "p2_0000.nii.gz", np.ones(empty_geometry.shape, np.float32),
                   empty_geometry)
    recorded = assess_segmentation(label, geometry.spacing, "p1", mirror_disagreement=0.5)  # as lgeseg_predict
    write_quality_report([recorded], tmp_path / "pred")
    assert report_main([str(tmp_path / "pred"), "-i", str(tmp_path / "images")]) == 0
    report = tmp_path / "pred" / "report"
    rows = {row["case"]: row for row in csv.DictReader((report / "report.csv").open())}
    voxel_ml = np.prod(geometry.spacing) / 1000
    assert float(rows["p1"]["edv_ml"]) == pytest.approx(np.count_nonzero(label == 1) * voxel_ml, abs=0.05)
    assert rows["p1"]["qc_flagged"] == "yes" and "mirror_unstable" in rows["p1"]["qc_reasons"]  # from qc.json
    assert rows["p2"]["qc_flagged"] == "yes" and "no_foreground" in rows["p2"]["qc_reasons"]  # assessed here
    assert "input_constant" in rows["p2"]["qc_reasons"]
    page = (report / "index.html").read_text()
    assert "montages/p1.png" in page and "check: " in page and "<script" not in page
    assert (report / "montages" / "p1.png").stat().st_size > 1000 and (report / "montages" / "p2.png").is_file()


def test_an_image_on_another_grid_is_refused_by_name(tmp_path: Path) -> None:
    geometry = CaseGeometry(shape=(3, 20, 20), spacing=(8.0, 1.5, 1.5), origin=(0.0, 0.0, 0.0), direction=IDENTITY)
    io.write_label(tmp_path / "pred" / "a.nii.gz", np.zeros(geometry.shape, np.uint8), geometry)
    moved = CaseGeometry(shape=geometry.shape, spacing=geometry.spacing, origin=(5.0, 0.0, 0.0), direction=IDENTITY)
    io.write_image(tmp_path / "images" / "a_0000.nii.gz", np.zeros(geometry.shape, np.float32), moved)
    assert report_main([str(tmp_path / "pred"), "-i", str(tmp_path / "images")]) == 1
    assert not (tmp_path / "pred" / "report" / "index.html").exists()


# --- issue 25, item 5: who, which model, against what, how much scar ----------------------------------------------

PATIENT_TAGS = {"0010|0020": "PAT-4711", "0010|0040": "F", "0010|1010": "054Y", "0010|1020": "1.65",
                "0010|1030": "60", "0008|0020": "20240312", "0020|0010": "CMR-88", "0008|0050": "ACC123",
                "0008|1030": "Cardiac MRI"}


def _write_dicom(folder: Path, image: np.ndarray, geometry: CaseGeometry, tags: dict[str, str]) -> None:
    """One MR slice file per z with a scanner's geometry tags and ``tags`` (the patient and study)."""
    write_dicom_series(folder, np.clip(image, 0, 32767), geometry, "1.2.826.0.1.3680043.8.498.25", 12, "SAX LGE", tags)


def test_report_names_patient_study_and_date_from_dicom_and_compares_with_reference_ranges(tmp_path: Path) -> None:
    image, label, geometry = generate_case(1, 0, seed=3, in_plane_size=64, num_slices=6)
    _write_dicom(tmp_path / "export" / "lge", image, geometry, PATIENT_TAGS)
    series = find_series(tmp_path / "export")[0]
    _, read_geometry = read_series(series)
    io.write_label(tmp_path / "pred" / f"{series.case_id}.nii.gz", label, read_geometry)
    assert report_main([str(tmp_path / "pred"), "-i", str(tmp_path / "export")]) == 0
    row = next(csv.DictReader((tmp_path / "pred" / "report" / "report.csv").open()))
    assert (row["patient_id"], row["study_date"], row["sex"], row["study_source"]) == \
        ("PAT-4711", "2024-03-12", "F", "DICOM")
    assert row["study"] == "CMR-88 / ACC123 / Cardiac MRI" and row["series"] == "SAX LGE"
    bsa = math.sqrt(165 * 60 / 3600)
    assert float(row["bsa_m2"]) == pytest.approx(bsa, abs=0.05)
    assert float(row["edv_per_bsa_ml_m2"]) == pytest.approx(float(row["edv_ml"]) / bsa, abs=0.1)
    assert row["edv_ref"].endswith("mL (women)") and row["mass_per_bsa_ref"].endswith("g/m2 (women)")
    assert row["edv_vs_ref"] in ("within", "below", "above") and row["scar_nsd_percent"] != ""
    page = (tmp_path / "pred" / "report" / "index.html").read_text()
    assert "<title>LV report: patient PAT-4711, study CMR-88 / ACC123 / Cardiac MRI, 2024-03-12</title>" in page
    assert "pred</title>" not in page and "<script" not in page
    assert "Enhancement (scar) burden, an automatic estimate" in page
    # height and weight from the DICOM tags: the mass is compared per BSA, and has no absolute range
    assert row["mass_ref"] == MASS_PER_BSA_ONLY and row["mass_vs_ref"] == ""
    assert row["mass_per_bsa_vs_ref"] in ("within", "below", "above") and "verified" not in page.lower()


def test_command_line_sex_height_and_weight_and_file_name_dates(tmp_path: Path) -> None:
    _, label, geometry = generate_case(1, 0, seed=3, in_plane_size=64, num_slices=6)
    io.write_label(tmp_path / "pred" / "P017_2024-03-12.nii.gz", label, geometry)
    assert report_main([str(tmp_path / "pred"), "--sex", "M", "--height-cm", "180", "--weight-kg", "80"]) == 0
    row = next(csv.DictReader((tmp_path / "pred" / "report" / "report.csv").open()))
    assert (row["patient_id"], row["study_date"], row["sex"]) == ("P017", "2024-03-12", "M")
    assert row["study_source"] == "file name + command line" and float(row["bsa_m2"]) == pytest.approx(2.0)
    assert row["edv_ref"].endswith("(men)") and row["edv_per_bsa_ref"].endswith("mL/m2 (men)")
    assert row["mass_per_bsa_ref"] == "35-71 g/m2 (men)" and row["mass_ref"] == MASS_PER_BSA_ONLY
    assert row["scar_nsd_percent"] == "" and "no image given" in row["scar_note"]  # no -i: no estimate
    with pytest.raises(SystemExit) as usage_error:
        report_main([str(tmp_path / "pred"), "--sex", "X", "--overwrite"])
    assert usage_error.value.code == 2


def test_lv_mass_has_no_absolute_range_and_the_report_says_it_needs_height_and_weight(tmp_path: Path) -> None:
    """The default table gives the LV mass per BSA only (Petersen 2017): without height and weight the mass
    has no range and the report says why and which options give them; with them, the indexed range."""
    mass, indexed = compare_case(150.0, 120.0, "M", 50)[2:]
    assert (mass.status, mass.range_text, math.isnan(indexed.value)) == ("", MASS_NEEDS_BSA, True)
    assert all(name in MASS_NEEDS_BSA for name in ("--height-cm", "--weight-kg", "PatientSize", "PatientWeight"))
    mass, indexed = compare_case(150.0, 120.0, "F", 50, bsa_m2=2.0)[2:]
    assert (mass.status, mass.range_text) == ("", MASS_PER_BSA_ONLY)
    assert (indexed.value, indexed.status, indexed.range_text) == (60.0, "above", "28-56 g/m2 (women)")
    assert compare_case(150.0, 120.0, "F", 15)[2].range_text.startswith("no adult range")  # a child: no range
    own = tmp_path / "ranges.json"  # a site's table with an absolute mass range: used
    own.write_text(json.dumps([{"quantity": "mass", "sex": "F", "mean": 100, "sd": 15, "lower": 70, "upper": 130}]))
    assert compare_case(150.0, 120.0, "F", ranges=load_reference_ranges(own))[2].range_text == "70-130 g (women)"

    _, label, geometry = generate_case(1, 0, seed=3, in_plane_size=64, num_slices=6)
    io.write_label(tmp_path / "pred" / "P017_2024-03-12.nii.gz", label, geometry)
    assert report_main([str(tmp_path / "pred"), "--sex", "F"]) == 0  # no height, no weight
    row = next(csv.DictReader((tmp_path / "pred" / "report" / "report.csv").open()))
    assert (row["mass_ref"], row["mass_vs_ref"], row["mass_per_bsa_ref"]) == (MASS_NEEDS_BSA, "", "")
    page = (tmp_path / "pred" / "report" / "index.html").read_text()
    assert "none: the LV mass reference range is per BSA and needs the patient&#x27;s height and weight" in page
    assert report_main([str(tmp_path / "pred"), "--sex", "F", "--height-cm", "165", "--weight-kg", "60",
                        "--overwrite"]) == 0
    row = next(csv.DictReader((tmp_path / "pred" / "report" / "report.csv").open()))
    assert (row["mass_ref"], row["mass_per_bsa_ref"]) == (MASS_PER_BSA_ONLY, "28-56 g/m2 (women)")
    assert row["mass_per_bsa_vs_ref"] in ("within", "below", "above")


def test_reference_ranges_by_sex_per_bsa_and_a_sites_own_file(tmp_path: Path) -> None:
    above, indexed, _, _ = compare_case(240.0, 100.0, "M", 60, bsa_m2=2.0)
    assert above.status == "above" and indexed.status == "above" and indexed.value == pytest.approx(120.0)
    unknown = compare_case(240.0, 100.0, "")[0]
    assert "men and women together" in unknown.range_text
    assert compare_case(240.0, 100.0, "F", age_years=15)[0].status == ""  # no adult range for a child
    path = tmp_path / "ranges.json"
    path.write_text(json.dumps([{"quantity": "edv", "sex": "F", "mean": 120, "sd": 20, "lower": 80, "upper": 160}]))
    assert compare_case(170.0, 90.0, "F", ranges=load_reference_ranges(path))[0].status == "above"
    path.write_text(json.dumps([{"quantity": "edv", "sex": "F", "mean": 120}]))
    with pytest.raises(ValueError, match=r"ranges.json: entry 0: expected quantity, sex, mean, sd, lower, upper"):
        load_reference_ranges(path)


DOCS = Path(__file__).resolve().parents[1] / "docs"
#: Rows of docs/clinical_use.md's "Reference ranges" table -> DEFAULT_RANGES quantities.
DOC_ROWS = {"EDV (mL)": "edv", "EDV / BSA (mL/m2)": "edv_per_bsa", "LV mass / BSA (g/m2)": "mass_per_bsa"}
#: (quantity, sex) -> (mean, SD) as printed in the abstracts read (docs/clinical_use.md quotes them):
PUBLISHED = {
    # Hudsmith LE et al., J Cardiovasc Magn Reson 2005;7:775-782, doi:10.1080/10976640500295516, abstract:
    # "LV end-diastolic volume 160 +/- 29 mL vs. 135 +/- 26 mL" (males vs. females), SSFP.
    ("edv", "M"): (160.0, 29.0), ("edv", "F"): (135.0, 26.0),
    # Alfakih et al., J Magn Reson Imaging 2003;17(3):323-329, doi:10.1002/jmri.10262, abstract: LV EDV/BSA
    # (mL/m2) "in SSFP in males it was 82.3 +/- 14.7 and in females it was 77.7 +/- 10.8".
    ("edv_per_bsa", "M"): (82.3, 14.7), ("edv_per_bsa", "F"): (77.7, 10.8),
    # Petersen SE et al. (UK Biobank), J Cardiovasc Magn Reson 2017, doi:10.1186/s12968-017-0327-9, abstract:
    # "LV mass was significantly higher in males compared to females (mean ± SD of 53 ± 9 g/m2 vs 42 ± 7 g/m2)".
    ("mass_per_bsa", "M"): (53.0, 9.0), ("mass_per_bsa", "F"): (42.0, 7.0),
}
#: The DOI each quantity's source string must name.
DOIS = {"edv": "10.1080/10976640500295516", "edv_per_bsa": "10.1002/jmri.10262",
        "mass_per_bsa": "10.1186/s12968-017-0327-9"}


def _documented_ranges() -> dict[tuple[str, str], tuple[float, ...]]:
    text = (DOCS / "clinical_use.md").read_text()
    table = text[text.index("### Reference ranges"):].split("\n\n")[1]
    documented = {}
    for line in table.splitlines()[2:]:
        name, men, women, _source = (cell.strip() for cell in line.strip("|").split("|"))
        for sex, cell in (("M", men), ("F", women)):
            mean, rest = cell.split(" +- ")
            sd, limits = rest.split(" (")
            lower, upper = limits.rstrip(")").split("-")
            documented[(DOC_ROWS[name], sex)] = tuple(float(v) for v in (mean, sd, lower, upper))
    return documented


def test_default_reference_ranges_are_the_published_means_and_sds() -> None:
    """Each default is the mean and SD its source prints, limits mean +- 2 SD, the source named; there is no
    absolute mass row (no readable source gave one)."""
    in_code = {(r.quantity, r.sex): r for r in DEFAULT_RANGES}
    assert len(in_code) == len(DEFAULT_RANGES) == 6 and in_code.keys() == PUBLISHED.keys()
    for key, (mean, sd) in PUBLISHED.items():
        found = in_code[key]
        assert (found.mean, found.sd) == (mean, sd), key
        assert (found.lower, found.upper) == pytest.approx((mean - 2 * sd, mean + 2 * sd)), key
        assert DOIS[key[0]] in found.source and "verified" not in found.source.lower(), key
    men, women = compare_case(230.0, 100.0, "M")[0], compare_case(230.0, 100.0, "F")[0]
    assert men.range_text == "102-218 mL (men)" and women.range_text == "83-187 mL (women)"


def test_documented_reference_ranges_are_the_code_and_carry_their_caveat() -> None:
    """docs/clinical_use.md shows the same table as the code and quotes the sources' numbers; the report
    page and the docs say that the absolute mass has no range and that height and weight give the indexed one."""
    documented = _documented_ranges()
    in_code = {(r.quantity, r.sex): (r.mean, r.sd, r.lower, r.upper) for r in DEFAULT_RANGES}
    assert documented.keys() == in_code.keys()
    for key, values in in_code.items():
        assert documented[key] == pytest.approx(values, abs=0.051), key  # limits shown to 0.1
    text = " ".join((DOCS / "clinical_use.md").read_text().split())  # quotes may wrap
    for quoted in ("160 +/- 29 mL vs. 135 +/- 26 mL", "82.3 +/- 14.7 and in females it was 77.7 +/- 10.8",
                   "53 ± 9 g/m2 vs 42 ± 7 g/m2"):
        assert quoted in text
    assert "| LV mass (g) |" not in text and "absolute LV mass has no reference range, on purpose" in text
    assert "not verified" not in text.lower() and "from memory" not in text
    assert any("No absolute myocardial mass range" in note and "--height-cm and --weight-kg" in note for note in NOTES)


def test_scar_burden_by_n_sd_above_the_darkest_segment_and_by_fwhm() -> None:
    labels = _ring_stack(slices=6, wall_mm=8.0, anterior_wall_mm=8.0)
    segments, names = myocardial_segments(labels, SPACING, IDENTITY)
    index = {name: i for i, name in names.items()}
    rng = np.random.default_rng(0)
    image = rng.normal(200.0, 10.0, labels.shape)
    scar = np.isin(segments, [index["AHA 6 basal anterolateral"], index["AHA 12 mid anterolateral"]])
    image[scar] = 900.0
    remote = segments == index["AHA 9 mid inferoseptal"]
    image[remote] = rng.normal(185.0, 10.0, int(remote.sum()))  # the darkest myocardium
    estimate = estimate_enhancement(image, labels, SPACING, IDENTITY, n_sd=5.0)
    truth = 100.0 * scar.sum() / (labels == 2).sum()
    assert estimate.remote_segment == "AHA 9 mid inferoseptal" and estimate.remote_mean == pytest.approx(185, abs=2)
    assert estimate.nsd_percent == pytest.approx(truth, abs=0.1) and 10 < truth < 20
    assert estimate.fwhm_percent == pytest.approx(truth, abs=0.1)
    assert estimate.nsd_ml == pytest.approx(scar.sum() * np.prod(SPACING) / 1000, abs=0.1)
    healthy = estimate_enhancement(rng.normal(200.0, 10.0, labels.shape), labels, SPACING, IDENTITY)
    assert healthy.nsd_percent < 0.1 and healthy.fwhm_percent == 0.0


def test_report_names_the_model_and_its_version_from_the_prediction_record(tmp_path: Path, tiny_model: Path,
                                                                           write_input_image: Callable[..., object]
                                                                           ) -> None:
    write_input_image(tmp_path / "in" / "c_0000.nii.gz", (2, 30, 30))
    assert predict_main(["-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "-m", str(tiny_model),
                         "--disable_tta"]) == 0
    assert report_main([str(tmp_path / "out"), "-i", str(tmp_path / "in")]) == 0
    weights = hashlib.sha256((tiny_model / "checkpoint_final.pt").read_bytes()).hexdigest()[:12]
    page = (tmp_path / "out" / "report" / "index.html").read_text()
    assert f"Model: {tiny_model.name}; version: trained with lgeseg" in page and weights in page
    row = next(csv.DictReader((tmp_path / "out" / "report" / "report.csv").open()))
    assert row["model"] == tiny_model.name and weights in row["model_version"]


def test_an_implausible_myocardium_is_flagged_in_the_report(tmp_path: Path) -> None:
    """The issue's 1321 mL / 971 g myocardium passed every check; it is now flagged (inference.quality)."""
    geometry = CaseGeometry(shape=(10, 120, 120), spacing=(10.0, 1.5, 1.5), origin=(0.0, 0.0, 0.0), direction=IDENTITY)
    yy, xx = np.mgrid[:120, :120] - 59.5
    ring = np.where(np.hypot(yy, xx) < 10, 1, np.where(np.hypot(yy, xx) < 58, 2, 0)).astype(np.uint8)
    io.write_label(tmp_path / "pred" / "huge.nii.gz", np.repeat(ring[None], 10, axis=0), geometry)
    assert report_main([str(tmp_path / "pred"), "--height-cm", "170", "--weight-kg", "70"]) == 0
    row = next(csv.DictReader((tmp_path / "pred" / "report" / "report.csv").open()))
    assert float(row["myocardium_ml"]) > 1000 and row["qc_flagged"] == "yes"
    assert "volume_implausible" in row["qc_reasons"] and row["mass_per_bsa_vs_ref"] == "above"
    assert "(<span class='out'>above</span> per BSA)" in (tmp_path / "pred" / "report" / "index.html").read_text()

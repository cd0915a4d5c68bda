"""Converters for EMIDEC, MS-CMRSeg 2019 and M&Ms on small fake copies of their source layouts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from lgeseg.cli import convert as convert_cli
from lgeseg.converters import convert_emidec, convert_mnms, convert_mscmr
from lgeseg.converters.mnms import read_frames
from lgeseg.core.records import LABELS, CaseGeometry, load_json
from lgeseg.datasets.layout import list_cases, load_dataset_info
from lgeseg.datasets.validate import validate_dataset
from lgeseg.files import io

# The mappings of issue 2, written out here so a wrong table in the converters fails the tests.
EMIDEC_LABELS = {0: 0, 1: 1, 2: 2, 3: 2, 4: 2}  # cavity, myocardium, infarct, no-reflow
MSCMR_LABELS = {0: 0, 500: 1, 200: 2, 600: 0}  # LV blood pool, LV myocardium, RV
MNMS_LABELS = {0: 0, 1: 1, 2: 2, 3: 0}  # LV, MYO, RV
SHAPE = (3, 6, 7)
ANGLE = np.deg2rad(20.0)
ROTATION = np.array([[np.cos(ANGLE), 0.0, -np.sin(ANGLE)], [0.0, 1.0, 0.0], [np.sin(ANGLE), 0.0, np.cos(ANGLE)]])
GEOMETRY = CaseGeometry(shape=SHAPE, spacing=(10.0, 1.4, 1.35), origin=(-120.5, 33.25, 8.0),
                        direction=tuple(ROTATION.ravel().tolist()))


def _image(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 900, size=SHAPE).astype(np.int16)


def _labels(values: list[int], seed: int) -> np.ndarray:
    """A label map using every value of ``values`` (0 everywhere else)."""
    label = np.zeros(SHAPE, dtype=np.int16)
    flat = label.reshape(-1)
    idx = np.random.default_rng(seed).permutation(flat.size)
    for i, value in enumerate(values):
        flat[idx[i * 5:(i + 1) * 5]] = value
    return label


def _assert_case(dst: Path, case_id: str, image: np.ndarray, label: np.ndarray | None,
                 mapping: dict[int, int], source_geometry: CaseGeometry) -> None:
    """The written case holds the source voxels, remapped labels and the source file's geometry, exactly."""
    subset = "Tr" if label is not None else "Ts"
    out_image, out_geometry = io.read_image(dst / f"images{subset}" / f"{case_id}_0000.nii.gz")
    np.testing.assert_array_equal(out_image, image.astype(np.float32))
    assert out_geometry == source_geometry
    if label is not None:
        out_label, label_geometry = io.read_label(dst / "labelsTr" / f"{case_id}.nii.gz")
        expected = np.vectorize(mapping.get)(label).astype(np.uint8)
        np.testing.assert_array_equal(out_label, expected)
        assert label_geometry == source_geometry


# --- EMIDEC ------------------------------------------------------------------------------------


def _fake_emidec(src: Path, bad_value: int | None = None) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    cases: dict[str, tuple[np.ndarray, np.ndarray | None]] = {
        "Case_N001": (_image(1), _labels([1, 2], 1)),
        "Case_P002": (_image(2), _labels([1, 2, 3, 4] + ([bad_value] if bad_value else []), 2)),
        "Case_P003": (_image(3), None),  # test case: no Contours
    }
    root = src / "emidec-dataset-1.0.1"
    for name, (image, label) in cases.items():
        io.write_image(root / name / "Images" / f"{name}.nii.gz", image, GEOMETRY)
        if label is not None:
            io.write_image(root / name / "Contours" / f"{name}.nii.gz", label.astype(np.uint8), GEOMETRY)
    return cases


def test_emidec_unexpected_label_value_names_file_and_writes_nothing(tmp_path: Path) -> None:
    _fake_emidec(tmp_path / "src", bad_value=7)
    dst = tmp_path / "EMIDEC"
    with pytest.raises(ValueError, match=r"Case_P002/Contours/Case_P002\.nii\.gz: unexpected label value\(s\) \[7\]"):
        convert_emidec(tmp_path / "src", dst)
    assert not dst.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["src"]  # no staging folder left behind


def test_refuses_non_empty_destination_unless_overwrite(tmp_path: Path) -> None:
    _fake_emidec(tmp_path / "src")
    dst = tmp_path / "EMIDEC"
    (dst / "imagesTr").mkdir(parents=True)
    (dst / "imagesTr" / "stale_0000.nii.gz").write_bytes(b"old")
    (dst / "notes.md").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty"):
        convert_emidec(tmp_path / "src", dst)
    assert (dst / "imagesTr" / "stale_0000.nii.gz").exists()
    assert convert_emidec(tmp_path / "src", dst, overwrite=True) == 3
    assert not (dst / "imagesTr" / "stale_0000.nii.gz").exists()
    assert (dst / "notes.md").read_text() == "mine"


# --- MS-CMRSeg 2019 ------------------------------------------------------------------------------


def _fake_mscmr(src: Path, bad: dict[int, int] | None = None) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    bad = bad or {}
    cases: dict[str, tuple[np.ndarray, np.ndarray | None]] = {
        "patient1": (_image(11), _labels([200, 500, 600] + ([bad[1]] if 1 in bad else []), 11)),
        "patient2": (_image(12), _labels([200, 500] + ([bad[2]] if 2 in bad else []), 12)),
        "patient10": (_image(13), None),  # no manual label
    }
    for name, (image, label) in cases.items():
        io.write_image(src / "c0t2lge" / f"{name}_LGE.nii.gz", image, GEOMETRY)
        if label is not None:  # labels in another folder, values above 255
            io.write_image(src / "lgegt" / f"{name}_LGE_manual.nii.gz", label, GEOMETRY)
    return cases


def test_mscmr_reports_every_bad_label_file_with_its_value(tmp_path: Path) -> None:
    _fake_mscmr(tmp_path / "src", bad={1: 1220, 2: 3})
    with pytest.raises(ValueError) as info:
        convert_mscmr(tmp_path / "src", tmp_path / "MSCMR")
    text = str(info.value)
    assert "patient1_LGE_manual.nii.gz: unexpected label value(s) [1220]" in text
    assert "patient2_LGE_manual.nii.gz: unexpected label value(s) [3]" in text
    assert not (tmp_path / "MSCMR").exists()


# --- EMIDEC and MS-CMRSeg: labels remapped, geometry and metadata kept -----------------------------

#: Per dataset: converter, fake source writer, a case's source image, label mapping, (center, vendor, field strength).
LGE_CONVERTERS = {
    "EMIDEC": (convert_emidec, _fake_emidec,
               lambda src, name: src / "emidec-dataset-1.0.1" / name / "Images" / f"{name}.nii.gz",
               EMIDEC_LABELS, ("EMIDEC (Dijon)", "Siemens", None)),
    "MSCMR": (convert_mscmr, _fake_mscmr, lambda src, name: src / "c0t2lge" / f"{name}_LGE.nii.gz",
              MSCMR_LABELS, ("MSCMR (Shanghai Renji)", "Philips", "1.5T")),
}


@pytest.mark.parametrize("name", list(LGE_CONVERTERS))
def test_lge_converters_remap_labels_and_keep_geometry(tmp_path: Path, name: str) -> None:
    convert, fake, source_image, mapping, site = LGE_CONVERTERS[name]
    cases = fake(tmp_path / "src")
    dst = tmp_path / name
    assert convert(tmp_path / "src", dst) == 3
    for case_id, (image, label) in cases.items():
        _assert_case(dst, case_id, image, label, mapping, io.read_geometry(source_image(tmp_path / "src", case_id))[0])
    info = load_dataset_info(dst)
    assert info.labels == LABELS and info.num_training == 2 and info.channel_names == {"0": "LGE"}
    assert (info.center, info.vendor, info.field_strength, info.file_ending) == (*site, ".nii.gz")
    labelled = sorted(case_id for case_id, (_, label) in cases.items() if label is not None)
    assert [c.case_id for c in list_cases(dst)] == labelled  # unlabelled cases go to imagesTs
    assert validate_dataset(dst) == []


# --- M&Ms ----------------------------------------------------------------------------------------

N_FRAMES = 5


def _write_4d(path: Path, frames: np.ndarray) -> None:
    """Write (t, z, y, x) as a 4D NIfTI whose first three axes carry GEOMETRY."""
    image = sitk.JoinSeries([sitk.GetImageFromArray(frame) for frame in frames])
    image.SetSpacing((*reversed(GEOMETRY.spacing), 28.5))
    image.SetOrigin((*GEOMETRY.origin, 0.0))
    direction = np.eye(4)
    direction[:3, :3] = ROTATION
    image.SetDirection(tuple(direction.ravel().tolist()))
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path))


def _fake_mnms(src: Path, patients: dict[str, tuple[str, str, int, int]], labelled: bool = True) -> dict:
    """patients: code -> (centre, vendor name, ED, ES). Returns code -> (frames, label frames)."""
    rows = ["External code,VendorName,Vendor,Centre,ED,ES"]
    data = {}
    for k, (code, (centre, vendor, ed, es)) in enumerate(patients.items()):
        frames = np.stack([_image(100 * k + t) for t in range(N_FRAMES)])
        labels = np.zeros((N_FRAMES, *SHAPE), dtype=np.uint8)
        labels[ed], labels[es] = _labels([1, 2, 3], 7 * k), _labels([1, 2, 3], 7 * k + 1)
        folder = src / "OpenDataset" / "Training" / "Labeled" / code
        _write_4d(folder / f"{code}_sa.nii.gz", frames)
        if labelled:
            _write_4d(folder / f"{code}_sa_gt.nii.gz", labels)
        rows.append(f"{code},{vendor},{'AB'[k % 2]},{centre},{ed},{es}")
        data[code] = (frames, labels)
    (src / "OpenDataset" / "mnms_info.csv").write_text("\n".join(rows) + "\n")
    return data


MNMS_PATIENTS = {"A0S9V9": ("1", "Siemens", 0, 3), "B3D0N1": ("2", "Philips", 4, 1)}


def test_mnms_splits_ed_es_into_3d_cases_with_remapped_labels(tmp_path: Path) -> None:
    data = _fake_mnms(tmp_path / "src", MNMS_PATIENTS)
    dst = tmp_path / "MNMs"
    assert convert_mnms(tmp_path / "src", dst) == 4
    for code, (_, _, ed, es) in MNMS_PATIENTS.items():
        frames, labels = data[code]
        source = read_frames(tmp_path / "src" / "OpenDataset" / "Training" / "Labeled" / code / f"{code}_sa.nii.gz")
        assert source[1].spacing == pytest.approx(GEOMETRY.spacing) and source[1].origin == GEOMETRY.origin
        _assert_case(dst, f"{code}_ED", frames[ed], labels[ed], MNMS_LABELS, source[1])
        _assert_case(dst, f"{code}_ES", frames[es], labels[es], MNMS_LABELS, source[1])
    raw = load_json(dst / "dataset.json")
    assert raw["center"] == "M&Ms (centres 1, 2)" and raw["vendor"] == "Philips, Siemens"
    assert raw["case_metadata"]["B3D0N1_ES"] == {"center": "M&Ms centre 2", "vendor": "Philips",
                                                 "vendor_code": "B", "phase": "ES", "frame": 1}
    assert validate_dataset(dst) == []


def test_mnms_split_centers_writes_one_dataset_per_centre(tmp_path: Path) -> None:
    _fake_mnms(tmp_path / "src", MNMS_PATIENTS)
    assert convert_mnms(tmp_path / "src", tmp_path / "MNMs", split_centers=True) == 4
    first = load_dataset_info(tmp_path / "MNMs" / "mnms_centre1")
    assert (first.center, first.vendor, first.num_training) == ("M&Ms centre 1", "Siemens", 2)
    assert [c.case_id for c in list_cases(tmp_path / "MNMs" / "mnms_centre2")] == ["B3D0N1_ED", "B3D0N1_ES"]


def test_mnms_frame_outside_cine_is_an_error_naming_the_file(tmp_path: Path) -> None:
    _fake_mnms(tmp_path / "src", {"A0S9V9": ("1", "Siemens", 0, 2)})
    csv_path = tmp_path / "src" / "OpenDataset" / "mnms_info.csv"
    csv_path.write_text(csv_path.read_text().replace("1,0,2", f"1,0,{N_FRAMES}"))
    with pytest.raises(ValueError, match=rf"A0S9V9_sa\.nii\.gz: ES frame {N_FRAMES} .* outside 0\.\.{N_FRAMES - 1}"):
        convert_mnms(tmp_path / "src", tmp_path / "MNMs")


def test_mnms_without_csv_asks_for_info(tmp_path: Path) -> None:
    _fake_mnms(tmp_path / "src", MNMS_PATIENTS)
    csv_path = tmp_path / "src" / "OpenDataset" / "mnms_info.csv"
    moved = csv_path.rename(tmp_path / "info.csv")
    with pytest.raises(FileNotFoundError, match="--info"):
        convert_mnms(tmp_path / "src", tmp_path / "MNMs")
    assert convert_mnms(tmp_path / "src", tmp_path / "MNMs", info_csv=moved) == 4


def test_mnms_unlabelled_patients_go_to_images_ts(tmp_path: Path) -> None:
    data = _fake_mnms(tmp_path / "src", MNMS_PATIENTS, labelled=False)
    dst = tmp_path / "MNMs"
    assert convert_mnms(tmp_path / "src", dst) == 4
    frames = data["A0S9V9"][0]
    source = read_frames(tmp_path / "src" / "OpenDataset" / "Training" / "Labeled" / "A0S9V9" / "A0S9V9_sa.nii.gz")
    _assert_case(dst, "A0S9V9_ES", frames[3], None, {}, source[1])
    assert load_dataset_info(dst).num_training == 0 and list_cases(dst) == []
    assert validate_dataset(dst) == []


# --- CLI -----------------------------------------------------------------------------------------


def test_cli_converts_and_refuses_to_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _fake_mscmr(tmp_path / "src")
    dst = tmp_path / "MSCMR"
    assert convert_cli.main(["mscmr", str(tmp_path / "src"), str(dst)]) == 0
    assert "wrote 3 case(s)" in capsys.readouterr().out
    assert convert_cli.main(["mscmr", str(tmp_path / "src"), str(dst)]) == 1
    assert "not empty" in capsys.readouterr().err
    assert convert_cli.main(["mscmr", str(tmp_path / "src"), str(dst), "--overwrite"]) == 0
    assert convert_cli.main(["emidec", str(tmp_path / "src"), str(tmp_path / "E")]) == 1
    assert "no EMIDEC cases found" in capsys.readouterr().err

"""lgeseg.datasets.validate and lgeseg_validate: every planted defect is reported, naming its file."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from lgeseg.cli import validate as validate_cli
from lgeseg.core.records import LABELS, CaseGeometry, load_json, save_json
from lgeseg.datasets.layout import Problem, list_cases, load_dataset_info
from lgeseg.datasets.validate import count_problems, format_problems, validate_dataset
from lgeseg.files import io

SHAPE = (3, 8, 9)
GEOMETRY = CaseGeometry(shape=SHAPE, spacing=(8.0, 1.25, 1.3), origin=(-5.0, 10.0, 2.5),
                        direction=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))
N_CASES = 10


def _label() -> np.ndarray:
    label = np.zeros(SHAPE, dtype=np.uint8)
    label[:, 2:6, 2:7] = 2
    label[:, 3:5, 3:6] = 1
    return label


def _write_dataset(root: Path, n_cases: int = N_CASES) -> Path:
    """A clean two-channel dataset: case_000 .. case_<n-1>."""
    rng = np.random.default_rng(0)
    for i in range(n_cases):
        for channel in (0, 1):
            image = rng.normal(100.0, 20.0, size=SHAPE).astype(np.float32)
            io.write_image(root / "imagesTr" / f"case_{i:03d}_{channel:04d}.nii.gz", image, GEOMETRY)
        io.write_label(root / "labelsTr" / f"case_{i:03d}.nii.gz", _label(), GEOMETRY)
    save_json({"channel_names": {"0": "LGE", "1": "T2"}, "labels": dict(LABELS), "numTraining": n_cases,
               "file_ending": ".nii.gz", "center": "test"}, root / "dataset.json")
    return root


def _write_sitk(path: Path, array: np.ndarray) -> None:
    """Write an array of any dimension with SimpleITK directly (for 4D/2D files io refuses)."""
    sitk.WriteImage(sitk.GetImageFromArray(array), str(path))


# Each defect: (plant(root), file the problem must name (relative), severity, message pattern).
def _missing_label(root: Path) -> None:
    (root / "labelsTr/case_000.nii.gz").unlink()


def _orphan_label(root: Path) -> None:
    io.write_label(root / "labelsTr/case_099.nii.gz", _label(), GEOMETRY)


def _missing_channel(root: Path) -> None:
    (root / "imagesTr/case_001_0001.nii.gz").unlink()


def _geometry_mismatch(root: Path) -> None:
    shifted = CaseGeometry(SHAPE, (8.0, 1.5, 1.3), GEOMETRY.origin, GEOMETRY.direction)
    io.write_label(root / "labelsTr/case_002.nii.gz", _label(), shifted)


def _undeclared_label(root: Path) -> None:
    label = _label()
    label[0, 0, 0] = 5
    io.write_label(root / "labelsTr/case_003.nii.gz", label, GEOMETRY)


def _nan_image(root: Path) -> None:
    image = np.ones(SHAPE, dtype=np.float32)
    image[1, 2, 3] = np.nan
    image[0, 0, 0] = np.inf
    io.write_image(root / "imagesTr/case_004_0000.nii.gz", image, GEOMETRY)


def _image_4d(root: Path) -> None:
    frame = sitk.GetImageFromArray(np.ones(SHAPE, dtype=np.float32))
    sitk.WriteImage(sitk.JoinSeries([frame, frame]), str(root / "imagesTr/case_005_0001.nii.gz"))


def _label_2d(root: Path) -> None:
    _write_sitk(root / "labelsTr/case_006.nii.gz", _label()[0])


def _empty_label(root: Path) -> None:
    io.write_label(root / "labelsTr/case_007.nii.gz", np.zeros(SHAPE, dtype=np.uint8), GEOMETRY)


def _corrupt_label(root: Path) -> None:
    (root / "labelsTr/case_008.nii.gz").write_bytes(b"\x1f\x8b this is not a NIfTI file")


def _wrong_ending(root: Path) -> None:
    path = root / "imagesTr/case_009_0001.nii.gz"
    io.write_image(path.with_name("case_009_0001.nrrd"), *io.read_image(path))
    path.unlink()


def _unsupported_file(root: Path) -> None:
    (root / "labelsTr/notes.txt").write_text("segmented by hand")


def _num_training(root: Path) -> None:
    raw = load_json(root / "dataset.json")
    save_json({**raw, "numTraining": 12}, root / "dataset.json")


DEFECTS: dict[str, tuple[Callable[[Path], None], str, str, str]] = {
    "missing label": (_missing_label, "imagesTr/case_000_0000.nii.gz", "error", r"image without label.*case_000"),
    "unpaired label": (_orphan_label, "labelsTr/case_099.nii.gz", "error", r"label without image"),
    "missing channel": (_missing_channel, "imagesTr/case_001_0001.nii.gz", "error",
                        r"channel 1 \(T2\) missing.*declares 2.*_0000"),
    "geometry mismatch": (_geometry_mismatch, "labelsTr/case_002.nii.gz", "error", r"geometry differs.*spacing"),
    "undeclared label": (_undeclared_label, "labelsTr/case_003.nii.gz", "error", r"\[5\] not declared"),
    "nan and inf": (_nan_image, "imagesTr/case_004_0000.nii.gz", "error", r"1 NaN and 1 Inf"),
    "4d image": (_image_4d, "imagesTr/case_005_0001.nii.gz", "error", r"expected a 3D image, found 4D"),
    "2d label": (_label_2d, "labelsTr/case_006.nii.gz", "error", r"expected a 3D image, found 2D"),
    "empty label": (_empty_label, "labelsTr/case_007.nii.gz", "warning", r"empty \(all background\)"),
    "corrupt file": (_corrupt_label, "labelsTr/case_008.nii.gz", "error", r"cannot be read"),
    "wrong ending": (_wrong_ending, "imagesTr/case_009_0001.nrrd", "error",
                     r"ending '\.nrrd' differs from dataset.json file_ending '\.nii\.gz'"),
    "unsupported ending": (_unsupported_file, "labelsTr/notes.txt", "error", r"unsupported file ending"),
    "numTraining": (_num_training, "dataset.json", "warning", r"numTraining is 12 but imagesTr holds 10"),
}


def _find(problems: list[Problem], root: Path, relpath: str, severity: str, pattern: str) -> list[Problem]:
    return [p for p in problems if Path(p.path) == root / relpath and p.severity == severity
            and re.search(pattern, p.message)]


def _snapshot(root: Path) -> dict[str, tuple[int, bytes]]:
    return {str(p.relative_to(root)): (p.stat().st_mtime_ns, p.read_bytes()) for p in root.rglob("*") if p.is_file()}


def test_clean_dataset_has_no_problems(tmp_path: Path) -> None:
    assert validate_dataset(_write_dataset(tmp_path / "ds")) == []


@pytest.mark.parametrize("name", list(DEFECTS))
def test_each_defect_is_reported_naming_its_file(tmp_path: Path, name: str) -> None:
    root = _write_dataset(tmp_path / "ds")
    plant, relpath, severity, pattern = DEFECTS[name]
    plant(root)
    problems = validate_dataset(root)
    assert _find(problems, root, relpath, severity, pattern), format_problems(problems)
    # no false alarms about untouched cases
    touched = re.search(r"case_\d{3}", relpath)
    for problem in problems:
        planted = Path(problem.path) == root / relpath or (touched is not None and touched.group(0) in problem.path)
        assert planted or problem.path.endswith("dataset.json"), problem


def test_all_defects_are_reported_together_and_nothing_is_modified(tmp_path: Path) -> None:
    root = _write_dataset(tmp_path / "ds")
    for plant, *_ in DEFECTS.values():
        plant(root)
    before = _snapshot(root)
    problems = validate_dataset(root)
    assert _snapshot(root) == before
    for name, (_, relpath, severity, pattern) in DEFECTS.items():
        assert _find(problems, root, relpath, severity, pattern), f"{name} not reported:\n{format_problems(problems)}"
    assert validate_dataset(root, num_workers=3) == problems


def test_headers_only_skips_voxel_checks_but_keeps_geometry(tmp_path: Path) -> None:
    root = _write_dataset(tmp_path / "ds")
    _nan_image(root)
    _geometry_mismatch(root)
    problems = validate_dataset(root, check_images=False)
    assert [Path(p.path).name for p in problems] == ["case_002.nii.gz"]


def test_missing_dataset_json_is_an_error(tmp_path: Path) -> None:
    root = _write_dataset(tmp_path / "ds", n_cases=1)
    (root / "dataset.json").unlink()
    problems = validate_dataset(root)
    assert [(p.severity, Path(p.path).name) for p in problems] == [("error", "dataset.json")]
    assert "not found" in problems[0].message


def test_bad_dataset_json_fields_are_all_reported(tmp_path: Path) -> None:
    root = _write_dataset(tmp_path / "ds", n_cases=1)
    save_json({"channel_names": {}, "labels": {"blood_pool": 1}, "file_ending": "nii", "numTraining": "one"},
              root / "dataset.json")
    messages = " | ".join(p.message for p in validate_dataset(root) if p.path.endswith("dataset.json"))
    for fragment in ("'channel_names' must be a non-empty", "background as 0", "'file_ending' must be one of",
                     "'numTraining' must be a non-negative integer"):
        assert fragment in messages


def test_missing_folders_are_reported(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    root.mkdir()
    save_json({"channel_names": {"0": "LGE"}, "labels": dict(LABELS), "numTraining": 0, "file_ending": ".nii.gz"},
              root / "dataset.json")
    paths = {Path(p.path).name for p in validate_dataset(root) if p.severity == "error"}
    assert paths == {"imagesTr", "labelsTr"}


def test_missing_dataset_folder_is_one_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert validate_dataset(tmp_path / "nope") == [Problem("error", str(tmp_path / "nope"), "dataset folder not found")]
    assert validate_cli.main([str(tmp_path / "nope")]) == 1
    assert f"ERROR   {tmp_path / 'nope'}: dataset folder not found" in capsys.readouterr().out


def test_cli_exit_codes_and_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clean = _write_dataset(tmp_path / "clean", n_cases=2)
    warned = _write_dataset(tmp_path / "warned", n_cases=2)
    io.write_label(warned / "labelsTr/case_001.nii.gz", np.zeros(SHAPE, dtype=np.uint8), GEOMETRY)
    broken = _write_dataset(tmp_path / "broken", n_cases=2)
    _missing_label(broken)

    assert validate_cli.main([str(clean), str(warned)]) == 0
    out = capsys.readouterr().out
    assert "labelsTr/case_001.nii.gz: label is empty" in out
    assert "OK: 2 dataset(s) checked, 0 error(s), 1 warning(s)" in out

    assert validate_cli.main([str(clean), str(broken)]) == 1
    out = capsys.readouterr().out
    assert f"{broken}: 1 error(s), 0 warning(s)" in out
    assert "imagesTr/case_000_0000.nii.gz: image without label" in out
    assert out.strip().splitlines()[-1].startswith("FAILED: 2 dataset(s) checked, 1 error(s)")


def test_count_problems() -> None:
    problems = [Problem("error", "a", "x"), Problem("warning", "b", "y"), Problem("error", "c", "z")]
    assert count_problems(problems) == (2, 1)


def test_synthetic_multicenter_datasets_validate_clean(raw_centers: dict[str, Path]) -> None:
    for dataset in raw_centers.values():
        problems = validate_dataset(dataset)
        assert problems == [], format_problems(problems)
        assert [case.case_id for case in list_cases(dataset)] == [f"{dataset.name.replace('center', 'c')}_{i:03d}"
                                                                 for i in range(2)]


@pytest.mark.parametrize("field, value", [("labels", {"background": 0, "blood_pool": True, "myocardium": 2}),
                                          ("file_ending", ".png"),
                                          ("channel_names", {"1": "LGE"})])
def test_loading_refuses_what_validation_reports(tmp_path: Path, field: str, value: object) -> None:
    """dataset.json has one parser: a field validation calls an error also stops load_dataset_info and list_cases."""
    root = _write_dataset(tmp_path / "ds", n_cases=1)
    raw = load_json(root / "dataset.json")
    raw[field] = value
    save_json(raw, root / "dataset.json")
    assert any(f"'{field}'" in p.message for p in validate_dataset(root, check_images=False))
    for read in (load_dataset_info, list_cases):
        with pytest.raises(ValueError, match=f"dataset.json: .*'{field}'"):
            read(root)


def test_list_cases_leaves_out_the_files_validation_reports(tmp_path: Path) -> None:
    root = _write_dataset(tmp_path / "ds", n_cases=2)
    (root / "imagesTr" / "case_000_0000.nii.gz").rename(root / "imagesTr" / "case_000.nii.gz")
    problems = validate_dataset(root, check_images=False)
    assert any(p.path.endswith("case_000.nii.gz") and "channel suffix" in p.message for p in problems)
    cases = list_cases(root)
    assert [c.case_id for c in cases] == ["case_000", "case_001"]
    assert [p.name for p in cases[0].image_paths] == ["case_000_0001.nii.gz"]

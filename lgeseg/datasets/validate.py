"""Check a raw dataset and report every problem at once (``lgeseg_validate``).

``validate_dataset`` takes ``lgeseg.datasets.layout.parse_dataset``'s problems with ``dataset.json`` and the
file names, then reads every header (and, by default, the voxels) and returns a list of ``Problem``s,
each naming the file it is about. It never writes, moves or touches anything in the dataset.

Errors make a dataset unusable for planning and training (missing or unpaired files, geometry
mismatches, undeclared label values, NaN/Inf, non-3D or unreadable files, wrong endings,
malformed ``dataset.json``); warnings are worth a look but do not stop anything (empty labels,
``numTraining`` differing from the files found, constant images).

Example:
    >>> import tempfile
    >>> from lgeseg.synth import tiny_dataset
    >>> tmp = tempfile.TemporaryDirectory()
    >>> root = Path(tmp.name)
    >>> center1 = tiny_dataset(root)
    >>> print(format_problems(validate_dataset(center1), root=center1))
    no problems found
    >>> (center1 / "labelsTr" / "c1_000.nii.gz").unlink()
    >>> print(format_problems(validate_dataset(center1), root=center1))
    ERROR   imagesTr/c1_000_0000.nii.gz: image without label: expected labelsTr/c1_000.nii.gz
    >>> tmp.cleanup()
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from tqdm import tqdm

from lgeseg.core.records import CaseGeometry
from lgeseg.datasets.layout import IGNORE_LABEL, DatasetJson, Problem, RawCase, parse_dataset, strip_path
from lgeseg.files import io

#: Show a progress bar from this many cases on.
_PROGRESS_MIN_CASES = 16


def count_problems(problems: Iterable[Problem]) -> tuple[int, int]:
    """Return (number of errors, number of warnings) in ``problems``.

    Example:
        >>> count_problems([Problem.error("a.nii.gz", "unreadable"), Problem("warning", "b.nii.gz", "empty label")])
        (1, 1)
    """
    problems = list(problems)
    errors = sum(p.severity == "error" for p in problems)
    return errors, len(problems) - errors


def format_problems(problems: Sequence[Problem], root: Path | None = None) -> str:
    """Render problems one per line, errors first, paths relative to ``root`` when below it.

    Returns:
        The text (no trailing newline); ``"no problems found"`` for an empty list.

    Example:
        >>> problems = [Problem("warning", "/raw/labelsTr/c2.nii.gz", "label map is empty"),
        ...             Problem.error("/raw/imagesTr/c1_0000.nii.gz", "image holds 3 NaN and 0 Inf voxel(s) of 4096")]
        >>> print(format_problems(problems, root=Path("/raw")))  # errors first
        ERROR   imagesTr/c1_0000.nii.gz: image holds 3 NaN and 0 Inf voxel(s) of 4096
        WARNING labelsTr/c2.nii.gz: label map is empty
    """
    if not problems:
        return "no problems found"
    ordered = sorted(problems, key=lambda p: p.severity != "error")  # stable: keeps file order
    lines = []
    for problem in ordered:
        path = problem.path
        if root is not None and Path(path).is_relative_to(root) and Path(path) != Path(root):
            path = str(Path(path).relative_to(root))
        lines.append(f"{problem.severity.upper():<7} {path}: {problem.message}")
    return "\n".join(lines)


def validate_dataset(dataset_dir: str | Path, check_images: bool = True, num_workers: int = 1,
                     allow_unusual_spacing: bool = False) -> list[Problem]:
    """Check a raw dataset (nnU-Net v2 layout) and return every problem found.

    Args:
        dataset_dir: the dataset folder (holding ``dataset.json``, ``imagesTr``, ``labelsTr``).
        check_images: also read the voxel data (NaN/Inf, label values, empty labels, corrupt
            data); False checks names, headers and geometry only (fast).
        num_workers: threads reading cases in parallel (SimpleITK releases the GIL while reading).
        allow_unusual_spacing: accept image spacing outside ``io.IN_PLANE_SPACING_MM`` /
            ``io.THROUGH_PLANE_SPACING_MM`` (zero or negative spacing is an error always).

    Returns:
        Problems in a stable order: ``dataset.json`` first, then file listing, then per case.
        Empty when the dataset is fine. The dataset is never modified.

    Example:
        >>> import tempfile
        >>> from lgeseg.synth import tiny_dataset
        >>> tmp = tempfile.TemporaryDirectory()
        >>> raw = tiny_dataset(tmp.name, cases=2)
        >>> validate_dataset(raw)
        []
        >>> label, geometry = io.read_label(raw / "labelsTr" / "c1_001.nii.gz")
        >>> io.write_label(raw / "labelsTr" / "c1_001.nii.gz", np.where(label == 2, 3, label), geometry)
        >>> [(problem.severity, Path(problem.path).name) for problem in validate_dataset(raw)]  # label 3 undeclared
        [('error', 'c1_001.nii.gz')]
        >>> tmp.cleanup()
    """
    parsed = parse_dataset(dataset_dir)
    cases = parsed.cases["Tr"] + parsed.cases["Ts"]
    return parsed.problems + _check_all_cases(cases, parsed.declared, check_images, num_workers,
                                              allow_unusual_spacing)


# --- file contents ------------------------------------------------------------------------------


def _check_all_cases(cases: list[RawCase], declared: DatasetJson, check_images: bool,
                     num_workers: int, allow_unusual_spacing: bool) -> list[Problem]:
    def check(case: RawCase) -> list[Problem]:
        return _check_case(case, declared, check_images, allow_unusual_spacing)

    with ThreadPoolExecutor(max_workers=max(1, num_workers)) as pool:
        results = tqdm(pool.map(check, cases), total=len(cases), desc="validating", unit="case",
                       disable=len(cases) < _PROGRESS_MIN_CASES)
        return [problem for result in results for problem in result]


def _check_case(case: RawCase, declared: DatasetJson, check_images: bool,
                allow_unusual_spacing: bool = False) -> list[Problem]:
    """Header, geometry and (optionally) voxel checks for one case's images and label."""
    problems: list[Problem] = []
    reference: tuple[Path, CaseGeometry] | None = None
    for path in case.image_paths:
        geometry = _read_header(path, problems)
        if geometry is None:
            continue
        if reference is None:
            reference = (path, geometry)
            spacing = io.spacing_problem(geometry.spacing, allow_unusual_spacing)
            if spacing:
                problems.append(Problem.error(path, spacing))
        else:
            _compare_geometry(path, geometry, reference, "image", problems)
        if check_images:
            _check_image_values(path, problems)
    if case.label_path is not None:
        geometry = _read_header(case.label_path, problems)
        if geometry is not None:
            if reference is not None:
                _compare_geometry(case.label_path, geometry, reference, "label", problems)
            if check_images:
                _check_label_values(case.label_path, declared, problems)
    return problems


def _read_header(path: Path, problems: list[Problem]) -> CaseGeometry | None:
    try:
        geometry, components = io.read_geometry(path)
    except (ValueError, FileNotFoundError) as err:
        problems.append(Problem.error(path, strip_path(err, path)))
        return None
    if components != 1:
        problems.append(Problem.error(path, f"{components} values per voxel; expected 1 (a scalar image)"))
        return None
    return geometry


def _compare_geometry(path: Path, geometry: CaseGeometry, reference: tuple[Path, CaseGeometry], kind: str,
                      problems: list[Problem]) -> None:
    differences = io.geometry_mismatch(reference[1], geometry)
    if differences:
        text = f"{kind} geometry differs from image {reference[0].name} (image vs {kind}): " + "; ".join(differences)
        problems.append(Problem.error(path, text))


def _check_image_values(path: Path, problems: list[Problem]) -> None:
    try:
        array, _ = io.read_image(path)
    except (ValueError, FileNotFoundError) as err:
        problems.append(Problem.error(path, strip_path(err, path)))
        return
    # io.read_image refused truncated files, NaN/Inf voxels, beyond-float32 values and spacing <= 0.
    if array.size and float(array.min()) == float(array.max()):
        problems.append(Problem.warning(path, f"image is constant (every voxel is {float(array.min())})"))


def _check_label_values(path: Path, declared: DatasetJson, problems: list[Problem]) -> None:
    try:
        array, _ = io.read_label(path)
    except (ValueError, FileNotFoundError) as err:
        problems.append(Problem.error(path, strip_path(err, path)))
        return
    values = [int(v) for v in np.unique(array)]
    if declared.labels is not None:
        undeclared = sorted(set(values) - declared.label_values)  # the ignore label's value is declared too
        if undeclared:
            shown = declared.labels if declared.ignore_label is None else {**declared.labels,
                                                                           IGNORE_LABEL: declared.ignore_label}
            text = f"label value(s) {undeclared} not declared in dataset.json labels {shown}"
            problems.append(Problem.error(path, text))
    if values == [0]:
        problems.append(Problem.warning(path, "label is empty (all background)"))

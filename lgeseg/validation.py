"""Check a raw dataset and report every problem at once (``lgeseg_validate``).

``validate_dataset`` walks ``dataset.json``, ``imagesTr``/``labelsTr`` (and ``imagesTs``/``labelsTs``
when present) and returns a list of ``Problem``s, each naming the file it is about. It reads the
files but never writes, moves or touches anything in the dataset.

Errors make a dataset unusable for planning and training (missing or unpaired files, geometry
mismatches, undeclared label values, NaN/Inf, non-3D or unreadable files, wrong endings,
malformed ``dataset.json``); warnings are worth a look but do not stop anything (empty labels,
``numTraining`` differing from the files found, constant images).

Example:
    >>> problems = validate_dataset(Path("raw/center1"))
    >>> print(format_problems(problems, root=Path("raw/center1")))
"""

from __future__ import annotations

import dataclasses
import gzip
import struct
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from lgeseg import io
from lgeseg.records import CaseGeometry, load_json

#: Show a progress bar from this many cases on.
_PROGRESS_MIN_CASES = 16


@dataclasses.dataclass(frozen=True)
class Problem:
    """One thing wrong with a dataset.

    Attributes:
        severity: ``"error"`` (the dataset cannot be used as is) or ``"warning"``.
        path: the file or folder the problem is about (as given, not resolved).
        message: what is wrong, with what was expected and what was found.
    """

    severity: str
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.severity.upper()}: {self.path}: {self.message}"


@dataclasses.dataclass(frozen=True)
class _Spec:
    """What ``dataset.json`` declares, or None for each field it does not declare usably."""

    num_channels: int | None = None
    channel_names: dict[str, str] | None = None
    label_values: dict[str, int] | None = None
    file_ending: str | None = None
    num_training: int | None = None


@dataclasses.dataclass(frozen=True)
class _CaseFiles:
    case_id: str
    images: dict[int, Path]
    label: Path | None


def count_problems(problems: Iterable[Problem]) -> tuple[int, int]:
    """Return (number of errors, number of warnings) in ``problems``."""
    problems = list(problems)
    errors = sum(p.severity == "error" for p in problems)
    return errors, len(problems) - errors


def format_problems(problems: Sequence[Problem], root: Path | None = None) -> str:
    """Render problems one per line, errors first, paths relative to ``root`` when below it.

    Returns:
        The text (no trailing newline); ``"no problems found"`` for an empty list.
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


def validate_dataset(dataset_dir: str | Path, check_images: bool = True, num_workers: int = 1) -> list[Problem]:
    """Check a raw dataset (nnU-Net v2 layout) and return every problem found.

    Args:
        dataset_dir: the dataset folder (holding ``dataset.json``, ``imagesTr``, ``labelsTr``).
        check_images: also read the voxel data (NaN/Inf, label values, empty labels, corrupt
            data); False checks names, headers and geometry only (fast).
        num_workers: threads reading cases in parallel (SimpleITK releases the GIL while reading).

    Returns:
        Problems in a stable order: ``dataset.json`` first, then file listing, then per case.
        Empty when the dataset is fine. The dataset is never modified.
    """
    dataset_dir = Path(dataset_dir)
    if not dataset_dir.is_dir():
        return [_error(dataset_dir, "dataset folder not found")]
    problems, spec = _check_dataset_json(dataset_dir / "dataset.json")
    cases: list[_CaseFiles] = []
    for subset in ("Tr", "Ts"):
        subset_cases, listing_problems = _collect_subset(dataset_dir, subset, spec)
        problems += listing_problems
        if subset == "Tr":
            problems += _check_num_training(dataset_dir / "dataset.json", spec, len(subset_cases))
        cases += subset_cases
    problems += _check_all_cases(cases, spec, check_images, num_workers)
    return problems


# --- dataset.json -------------------------------------------------------------------------------


#: dataset.json fields: name -> (severity when missing, example).
_FIELDS = {"channel_names": ("error", '{"0": "LGE"}'), "labels": ("error", '{"background": 0, ...}'),
           "file_ending": ("error", '".nii.gz"'), "numTraining": ("warning", "100 (nnU-Net v2 requires it)")}


def _check_dataset_json(path: Path) -> tuple[list[Problem], _Spec]:
    if not path.is_file():
        text = "dataset.json not found; it must declare channel_names, labels, numTraining and file_ending"
        return [_error(path, text)], _Spec()
    try:
        raw = load_json(path)
    except ValueError as err:
        return [_error(path, _strip_path(err, path))], _Spec()
    if not isinstance(raw, dict):
        return [_error(path, f"expected a JSON object, found {type(raw).__name__}")], _Spec()
    problems: list[Problem] = []

    def report(text: str, severity: str = "error") -> None:
        problems.append(Problem(severity, str(path), text))

    for key, (severity, example) in _FIELDS.items():
        if key not in raw:
            report(f"missing field '{key}' (e.g. {example})", severity)
    channels = _check_channels(raw.get("channel_names"), report) if "channel_names" in raw else None
    labels = _check_labels(raw.get("labels"), report) if "labels" in raw else None
    ending = raw.get("file_ending")
    if "file_ending" in raw and (not isinstance(ending, str) or ending.lower() not in io.SUPPORTED_ENDINGS):
        report(f"field 'file_ending' must be one of {', '.join(io.SUPPORTED_ENDINGS)}, found {ending!r}")
        ending = None
    num_training = raw.get("numTraining")
    if "numTraining" in raw and (not isinstance(num_training, int) or isinstance(num_training, bool)
                                 or num_training < 0):
        report(f"field 'numTraining' must be a non-negative integer, found {num_training!r}")
        num_training = None
    for key in ("center", "vendor"):
        if raw.get(key) is not None and not isinstance(raw[key], str):
            report(f"field '{key}' should be a string, found {raw[key]!r}", "warning")
    spec = _Spec(num_channels=None if channels is None else len(channels), channel_names=channels,
                 label_values=labels, file_ending=None if ending is None else ending.lower(),
                 num_training=num_training)
    return problems, spec


def _check_channels(channels: Any, report: Callable[[str], None]) -> dict[str, str] | None:
    if not isinstance(channels, dict) or not channels:
        report(f"field 'channel_names' must be a non-empty object like {{\"0\": \"LGE\"}}, found {channels!r}")
        return None
    expected = [str(i) for i in range(len(channels))]
    if sorted(channels, key=str) != sorted(expected):
        report(f"field 'channel_names' keys must be {expected}, found {sorted(channels)}")
        return None
    return {str(k): str(v) for k, v in channels.items()}


def _check_labels(labels: Any, report: Callable[..., None]) -> dict[str, int] | None:
    if not isinstance(labels, dict) or not labels or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in labels.values()
    ):
        report(f"field 'labels' must map names to integer values, found {labels!r}")
        return None
    values = sorted(labels.values())
    if 0 not in values:
        report(f"field 'labels' must declare background as 0, found {labels}")
    if len(set(values)) != len(values):
        report(f"field 'labels' gives one value to several names: {labels}")
    elif values != list(range(len(values))):
        report(f"label values are not consecutive from 0: {values}", "warning")
    return {str(k): int(v) for k, v in labels.items()}


def _check_num_training(path: Path, spec: _Spec, found: int) -> list[Problem]:
    if spec.num_training is None or spec.num_training == found:
        return []
    text = f"numTraining is {spec.num_training} but imagesTr holds {found} case(s)"
    return [_warning(path, text)]


# --- file listing -------------------------------------------------------------------------------


def _list_files(folder: Path, spec: _Spec, problems: list[Problem]) -> list[Path]:
    """Files of ``folder`` with a supported ending; reports folders and wrong endings."""
    kept: list[Path] = []
    for path in sorted(folder.iterdir()):
        if path.name.startswith("."):
            continue
        if path.is_dir():
            problems.append(_warning(path, "unexpected folder (ignored)"))
            continue
        ending = io.file_ending(path)
        if not ending:
            expected = spec.file_ending or ", ".join(io.SUPPORTED_ENDINGS)
            problems.append(_error(path, f"unsupported file ending; expected {expected}"))
            continue
        if spec.file_ending is not None and ending != spec.file_ending:
            text = f"file ending '{ending}' differs from dataset.json file_ending '{spec.file_ending}'"
            problems.append(_error(path, text))
        kept.append(path)
    return kept


def _collect_subset(dataset_dir: Path, subset: str, spec: _Spec) -> tuple[list[_CaseFiles], list[Problem]]:
    """Group ``images<subset>``/``labels<subset>`` into cases; report naming and pairing problems."""
    from lgeseg.dataset import split_channel_suffix  # deferred: lgeseg.dataset re-exports this module

    problems: list[Problem] = []
    images_dir, labels_dir = dataset_dir / f"images{subset}", dataset_dir / f"labels{subset}"
    if not images_dir.is_dir():
        if subset == "Tr":
            problems.append(_error(images_dir, "folder not found (expected nnU-Net v2 layout)"))
        labels = _collect_labels(labels_dir, subset, spec, problems)
        problems += [_error(path, f"label without image: images{subset} is missing") for path in labels.values()]
        return [], problems
    images: dict[str, dict[int, Path]] = {}
    for path in _list_files(images_dir, spec, problems):
        case_id, channel = split_channel_suffix(path)
        if channel is None:
            problems.append(_error(path, f"name lacks the channel suffix: <case>_0000{spec.file_ending or ''}"))
        elif channel in images.setdefault(case_id, {}):
            problems.append(_error(path, f"second file for channel {channel} (also {images[case_id][channel].name})"))
        else:
            images[case_id][channel] = path
    images = {case: chans for case, chans in images.items() if chans}
    labels = _collect_labels(labels_dir, subset, spec, problems)
    for case_id, path in sorted(labels.items()):
        if case_id not in images:
            ending = spec.file_ending or io.file_ending(path)
            problems.append(_error(path, f"label without image: expected {images_dir.name}/{case_id}_0000{ending}"))
    cases = []
    for case_id, channels in sorted(images.items()):
        problems += _check_channel_set(case_id, channels, spec)
        label = labels.get(case_id)
        if label is None and subset == "Tr":
            first = channels[min(channels)]
            ending = spec.file_ending or io.file_ending(first)
            problems.append(_error(first, f"image without label: expected {labels_dir.name}/{case_id}{ending}"))
        cases.append(_CaseFiles(case_id, channels, label))
    return cases, problems


def _collect_labels(labels_dir: Path, subset: str, spec: _Spec, problems: list[Problem]) -> dict[str, Path]:
    if not labels_dir.is_dir():
        if subset == "Tr":
            problems.append(_error(labels_dir, "folder not found (expected nnU-Net v2 layout)"))
        return {}
    labels: dict[str, Path] = {}
    for path in _list_files(labels_dir, spec, problems):
        case_id = io.strip_ending(path)
        if case_id in labels:
            problems.append(_error(path, f"second label file for case '{case_id}' (also {labels[case_id].name})"))
        else:
            labels[case_id] = path
    return labels


def _check_channel_set(case_id: str, channels: dict[int, Path], spec: _Spec) -> list[Problem]:
    """Channels missing or undeclared for one case (declared: dataset.json channel_names)."""
    first = channels[min(channels)]
    ending = io.file_ending(first)
    expected = range(spec.num_channels) if spec.num_channels is not None else range(max(channels) + 1)
    problems = []
    for channel in expected:
        if channel not in channels:
            name = (spec.channel_names or {}).get(str(channel), "?")
            declared = f"dataset.json channel_names declares {spec.num_channels}" if spec.num_channels else "gap"
            found = ", ".join(f"_{c:04d}" for c in sorted(channels))
            problems.append(_error(first.parent / f"{case_id}_{channel:04d}{ending}",
                                   f"channel {channel} ({name}) missing ({declared}; found {found})"))
    for channel in sorted(set(channels) - set(expected)):
        problems.append(_error(channels[channel], f"channel {channel} is not declared in dataset.json channel_names"))
    return problems


# --- file contents ------------------------------------------------------------------------------


def _check_all_cases(cases: list[_CaseFiles], spec: _Spec, check_images: bool, num_workers: int) -> list[Problem]:
    def check(case: _CaseFiles) -> list[Problem]:
        return _check_case(case, spec, check_images)

    with ThreadPoolExecutor(max_workers=max(1, num_workers)) as pool:
        results = tqdm(pool.map(check, cases), total=len(cases), desc="validating", unit="case",
                       disable=len(cases) < _PROGRESS_MIN_CASES)
        return [problem for result in results for problem in result]


def _check_case(case: _CaseFiles, spec: _Spec, check_images: bool) -> list[Problem]:
    """Header, geometry and (optionally) voxel checks for one case's images and label."""
    problems: list[Problem] = []
    reference: tuple[Path, CaseGeometry] | None = None
    for channel in sorted(case.images):
        path = case.images[channel]
        geometry = _read_header(path, problems)
        if geometry is None:
            continue
        if reference is None:
            reference = (path, geometry)
        else:
            _compare_geometry(path, geometry, reference, "image", problems)
        if check_images:
            _check_image_values(path, problems)
    if case.label is not None:
        geometry = _read_header(case.label, problems)
        if geometry is not None:
            if reference is not None:
                _compare_geometry(case.label, geometry, reference, "label", problems)
            if check_images:
                _check_label_values(case.label, spec, problems)
    return problems


def _read_header(path: Path, problems: list[Problem]) -> CaseGeometry | None:
    try:
        geometry, components = io.read_geometry(path)
    except (ValueError, FileNotFoundError) as err:
        problems.append(_error(path, _strip_path(err, path)))
        return None
    if components != 1:
        problems.append(_error(path, f"{components} values per voxel; expected 1 (a scalar image)"))
        return None
    return geometry


def _compare_geometry(path: Path, geometry: CaseGeometry, reference: tuple[Path, CaseGeometry], kind: str,
                      problems: list[Problem]) -> None:
    differences = io.geometry_mismatch(reference[1], geometry)
    if differences:
        text = f"{kind} geometry differs from image {reference[0].name} (image vs {kind}): " + "; ".join(differences)
        problems.append(_error(path, text))


def _check_image_values(path: Path, problems: list[Problem]) -> None:
    try:
        array, _ = io.read_image(path)
    except (ValueError, FileNotFoundError) as err:
        problems.append(_error(path, _strip_path(err, path)))
        return
    counts = _nifti_nonfinite(path) if io.file_ending(path) in (".nii", ".nii.gz") else None
    n_nan, n_inf = counts if counts is not None else (int(np.isnan(array).sum()), int(np.isinf(array).sum()))
    if n_nan or n_inf:
        problems.append(_error(path, f"image holds {n_nan} NaN and {n_inf} Inf voxel(s) of {array.size}"))
    elif array.size and float(array.min()) == float(array.max()):
        problems.append(_warning(path, f"image is constant (every voxel is {float(array.min())})"))


def _check_label_values(path: Path, spec: _Spec, problems: list[Problem]) -> None:
    try:
        array, _ = io.read_label(path)
    except (ValueError, FileNotFoundError) as err:
        problems.append(_error(path, _strip_path(err, path)))
        return
    values = [int(v) for v in np.unique(array)]
    if spec.label_values is not None:
        undeclared = sorted(set(values) - set(spec.label_values.values()))
        if undeclared:
            text = f"label value(s) {undeclared} not declared in dataset.json labels {spec.label_values}"
            problems.append(_error(path, text))
    if values == [0]:
        problems.append(_warning(path, "label is empty (all background)"))


#: NIfTI-1 datatype code -> NumPy float type (integer types cannot hold NaN/Inf).
_NIFTI_FLOAT_TYPES = {16: "f4", 64: "f8"}


def _nifti_nonfinite(path: Path) -> tuple[int, int] | None:
    """Count (NaN, Inf) voxels of a float NIfTI-1 file from its raw bytes.

    ITK's NIfTI reader silently turns NaN and Inf into 0, so ``io.read_image`` cannot see them;
    other tools (and the person who made the file) do. Returns None for non-float or non-NIfTI-1
    files and for files this cannot parse (those are reported by the regular read).
    """
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as handle:
            data = handle.read()
        order = next((o for o in "<>" if len(data) >= 348 and struct.unpack(f"{o}i", data[:4])[0] == 348), None)
        if order is None:
            return None
        dims = struct.unpack(f"{order}8h", data[40:56])
        dtype = _NIFTI_FLOAT_TYPES.get(struct.unpack(f"{order}h", data[70:72])[0])
        offset = int(struct.unpack(f"{order}f", data[108:112])[0])
        if dtype is None or not 1 <= dims[0] <= 7:
            return None
        values = np.frombuffer(data, dtype=f"{order}{dtype}", count=int(np.prod(dims[1:1 + dims[0]])), offset=offset)
    except (OSError, EOFError, ValueError, struct.error):
        return None
    return int(np.isnan(values).sum()), int(np.isinf(values).sum())


def _error(path: Path | str, message: str) -> Problem:
    return Problem("error", str(path), message)


def _warning(path: Path | str, message: str) -> Problem:
    return Problem("warning", str(path), message)


def _strip_path(err: BaseException, path: Path) -> str:
    """The message of ``err`` without a leading ``"<path>: "`` (the Problem names the path)."""
    text = str(err)
    prefix = f"{path}: "
    return text[len(prefix):] if text.startswith(prefix) else text

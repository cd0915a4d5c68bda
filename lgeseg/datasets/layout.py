"""Raw datasets in nnU-Net v2's layout: the one parser of ``dataset.json`` and of the case folders.

A raw dataset folder holds ``imagesTr/<case>_0000.<ending>``, ``labelsTr/<case>.<ending>``,
optionally ``imagesTs/`` (and ``labelsTs/``), and ``dataset.json`` with ``channel_names``,
``labels``, ``numTraining``, ``file_ending`` and lgeseg's optional ``center``, ``vendor`` and
``field_strength``.

``labels`` may name one extra value ``"ignore"`` (nnU-Net's ignore label): it must be the highest
value, above every class. Its voxels are unknown, not a class: the parsed ``labels`` leave it out (the
classes, which the network predicts) and ``ignore_label`` holds it, so a plan, a fingerprint and a model
never count it; preprocessing keeps it in the label maps and training skips it in the loss.

``parse_dataset`` reads names only (never voxels) and returns the dataset with every problem it
found; ``load_dataset_info`` and ``list_cases`` are its strict and lenient faces, and
``lgeseg.datasets.validate`` adds the checks that read the files.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lgeseg.core.records import load_json
from lgeseg.datasets.ids import DATASET_ID, dataset_id_folders, describe_matches
from lgeseg.files.io import SUPPORTED_ENDINGS, file_ending, strip_ending

#: ``<case>_<4-digit channel>``: the name of one image channel without its file ending.
CHANNEL_SUFFIX = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})$")
SUBSETS: tuple[str, ...] = ("Tr", "Ts")
#: The ``labels`` name of nnU-Net's ignore label: voxels whose class is unknown (not a class).
IGNORE_LABEL = "ignore"


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

    @classmethod
    def error(cls, path: Path | str, message: str) -> Problem:
        """An ``"error"`` about ``path``."""
        return cls("error", str(path), message)

    @classmethod
    def warning(cls, path: Path | str, message: str) -> Problem:
        """A ``"warning"`` about ``path``."""
        return cls("warning", str(path), message)


@dataclasses.dataclass(frozen=True)
class DatasetJson:
    """What ``dataset.json`` declares; a field it lacks or declares unusably is None.

    Attributes:
        channel_names: channel index (as string) -> name, e.g. {"0": "LGE"}.
        labels: label name -> value of the classes, e.g. {"background": 0, "blood_pool": 1, "myocardium": 2}
            (without ``"ignore"``).
        file_ending: lower-case, one of ``io.SUPPORTED_ENDINGS``.
        num_training: ``numTraining``.
        center, vendor, field_strength: optional acquisition metadata.
        raw: the whole parsed JSON ({} when unreadable).
        ignore_label: the value of ``labels["ignore"]`` (voxels counted in no class), or None.
    """

    channel_names: dict[str, str] | None = None
    labels: dict[str, int] | None = None
    file_ending: str | None = None
    num_training: int | None = None
    center: str | None = None
    vendor: str | None = None
    field_strength: str | None = None
    raw: dict[str, Any] = dataclasses.field(default_factory=dict)
    ignore_label: int | None = None

    @property
    def label_values(self) -> set[int]:
        """Every value a label map may hold: the classes' and the ignore label's (empty when undeclared)."""
        values = set((self.labels or {}).values())
        return values if self.ignore_label is None else values | {self.ignore_label}

    @property
    def num_channels(self) -> int | None:
        """Number of declared image channels, or None."""
        return None if self.channel_names is None else len(self.channel_names)


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """The fields of a valid ``dataset.json`` that lgeseg uses.

    Attributes:
        name: the dataset folder's name.
        channel_names: channel index (as string) -> name, e.g. {"0": "LGE"}.
        labels: label name -> value of the classes, e.g. {"background": 0, "blood_pool": 1, "myocardium": 2}
            (without ``"ignore"``).
        num_training: ``numTraining`` as declared (0 when absent).
        file_ending: e.g. ".nii.gz".
        center, vendor, field_strength: optional acquisition metadata.
        raw: the whole parsed JSON.
        ignore_label: the value of ``labels["ignore"]`` (voxels counted in no class), or None.
    """

    name: str
    channel_names: dict[str, str]
    labels: dict[str, int]
    num_training: int
    file_ending: str
    center: str | None = None
    vendor: str | None = None
    field_strength: str | None = None
    raw: dict[str, Any] = dataclasses.field(default_factory=dict)
    ignore_label: int | None = None

    @property
    def num_channels(self) -> int:
        """Number of image channels."""
        return len(self.channel_names)


@dataclasses.dataclass(frozen=True)
class RawCase:
    """One case of a raw dataset.

    Attributes:
        case_id: identifier shared by the image channels and the label file.
        image_paths: one path per channel, in channel order.
        label_path: the label map, or None (unlabelled or test case).
        dataset: the dataset folder's name.
        center: acquisition center from dataset.json, or None.
    """

    case_id: str
    image_paths: tuple[Path, ...]
    label_path: Path | None
    dataset: str
    center: str | None = None


@dataclasses.dataclass(frozen=True)
class ParsedDataset:
    """A raw dataset as its names describe it, and what is wrong with them.

    Attributes:
        declared: what ``dataset.json`` declares.
        cases: subset (``"Tr"``, ``"Ts"``) -> its cases, sorted by id (a subset without images is empty).
        problems: dataset.json problems first, then the listing of imagesTr/labelsTr, then imagesTs/labelsTs.
    """

    declared: DatasetJson
    cases: dict[str, list[RawCase]]
    problems: list[Problem]


def region_labels_problem(labels: Any) -> str:
    """Explain why nnU-Net region labels (a list of values per name) cannot be trained; ``""`` if there are none.

    Example:
        >>> region_labels_problem({"background": 0, "blood_pool": 1, "myocardium": 2})
        ''
        >>> region_labels_problem({"background": 0, "lv": [1, 2]})[:64]
        "field 'labels' declares nnU-Net region-based labels (lv: [1, 2])"
    """
    if not isinstance(labels, dict):
        return ""
    regions = {str(k): v for k, v in labels.items() if isinstance(v, (list, tuple))}
    if not regions:
        return ""
    return (f"field 'labels' declares nnU-Net region-based labels ({', '.join(f'{k}: {v}' for k, v in regions.items())}"
            "): lgeseg trains one class per label value (softmax, not overlapping regions) and does not support "
            "region-based training; declare each label once as an integer, e.g. "
            '{"background": 0, "blood_pool": 1, "myocardium": 2} (lgeseg_evaluate does score regions)')


def read_evaluation_labels(path: str | Path) -> dict[str, int | list[int]]:
    """The ``labels`` field of a dataset.json for scoring: name -> value, or -> list of values (a region).

    An ``"ignore"`` entry (nnU-Net's ignore label) is no structure and is left out. Raises ``ValueError``
    naming the file when the field is missing or holds anything else.

    Example:
        >>> import json, tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> path = Path(tmp.name) / "dataset.json"
        >>> _ = path.write_text(json.dumps({"labels": {"background": 0, "scar": 1, "lv": [1, 2]}}))
        >>> read_evaluation_labels(path)
        {'background': 0, 'scar': 1, 'lv': [1, 2]}
        >>> tmp.cleanup()
    """
    path = Path(path)
    raw = load_json(path)
    labels = raw.get("labels") if isinstance(raw, dict) else None

    def valid(value: Any) -> bool:
        values = value if isinstance(value, (list, tuple)) else [value]
        return bool(values) and all(isinstance(v, int) and not isinstance(v, bool) for v in values)

    if not isinstance(labels, dict) or not labels or not all(valid(v) for v in labels.values()):
        raise ValueError(f"{path}: field 'labels' must map names to an integer or a list of integers, found {labels!r}")
    return {str(k): (list(v) if isinstance(v, (list, tuple)) else int(v)) for k, v in labels.items()
            if k != IGNORE_LABEL}


def resolve_dataset(spec: str | Path, raw_root: str | Path | None) -> Path:
    """A raw dataset folder from a path or an nnU-Net v2 dataset id.

    Args:
        spec: an existing folder, or a dataset id as nnU-Net accepts it (``4``, ``004``,
            ``Dataset004``, ``Dataset004_LGE``).
        raw_root: the folder holding ``DatasetNNN_Name`` folders (nnU-Net's ``$nnUNet_raw``), or None.

    Returns:
        The folder (``spec`` itself when it exists or does not look like an id). Raises
        ``FileNotFoundError`` naming what was looked for when ``spec`` is an id without exactly one
        ``DatasetNNN_*`` folder under ``raw_root``.

    Example:
        >>> import tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> (Path(tmp.name) / "Dataset004_LGE").mkdir()
        >>> resolve_dataset("4", tmp.name).name, resolve_dataset("Dataset004", tmp.name).name
        ('Dataset004_LGE', 'Dataset004_LGE')
        >>> resolve_dataset(Path(tmp.name) / "Dataset004_LGE", raw_root=None).name  # a folder is taken as it is
        'Dataset004_LGE'
        >>> tmp.cleanup()
    """
    path = Path(spec)
    if path.is_dir():
        return path
    match = DATASET_ID.fullmatch(str(spec))
    if match is None:
        return path  # a path: whoever reads it reports a missing folder in its own way
    if raw_root is None:
        raise FileNotFoundError(f"{spec}: not a folder; to use it as a dataset id set nnUNet_raw to the folder that "
                                "holds DatasetNNN_Name folders")
    pattern, found = dataset_id_folders(raw_root, int(match.group("id")))
    if len(found) != 1:
        raise FileNotFoundError(f"{spec}: dataset id {int(match.group('id'))} matches {describe_matches(found)} "
                                f"{pattern} in {raw_root}")
    return found[0]


def split_channel_suffix(path: str | Path) -> tuple[str, int | None]:
    """Split ``case_0000.nii.gz`` into (``"case"``, 0); a name without suffix gives (name, None).

    Example:
        >>> split_channel_suffix("imagesTr/c1_000_0001.nii.gz")
        ('c1_000', 1)
        >>> split_channel_suffix("c1_000.nii.gz")
        ('c1_000', None)
    """
    stem = strip_ending(path)
    match = CHANNEL_SUFFIX.match(stem)
    if match:
        return match.group("case"), int(match.group("channel"))
    return stem, None


def strip_path(err: BaseException, path: Path) -> str:
    """The message of ``err`` without a leading ``"<path>: "`` (a Problem names the path itself).

    Example:
        >>> strip_path(ValueError("/data/raw/dataset.json: not JSON"), Path("/data/raw/dataset.json"))
        'not JSON'
    """
    text = str(err)
    prefix = f"{path}: "
    return text[len(prefix):] if text.startswith(prefix) else text


def parse_dataset(dataset_dir: str | Path) -> ParsedDataset:
    """Read ``dataset.json`` and group ``images<subset>``/``labels<subset>`` into cases, reporting every problem.

    Reads file names only: the voxel and header checks are ``lgeseg.datasets.validate.validate_dataset``'s.

    Args:
        dataset_dir: raw dataset folder (nnU-Net v2 layout).

    Returns:
        ``ParsedDataset``; a missing folder gives one error and no cases.

    Example:
        >>> import tempfile
        >>> from lgeseg.synth import tiny_dataset
        >>> tmp = tempfile.TemporaryDirectory()
        >>> raw = tiny_dataset(tmp.name, cases=2)
        >>> _ = (raw / "imagesTr" / "c1_001_0000.nii.gz").rename(raw / "imagesTr" / "c1_001.nii.gz")
        >>> parsed = parse_dataset(raw)
        >>> [case.case_id for case in parsed.cases["Tr"]], parsed.declared.num_channels
        (['c1_000'], 1)
        >>> for problem in parsed.problems:
        ...     print(problem.severity, problem.message)
        error name lacks the channel suffix: <case>_0000.nii.gz
        error label without image: expected imagesTr/c1_001_0000.nii.gz
        warning numTraining is 2 but imagesTr holds 1 case(s)
        >>> tmp.cleanup()
    """
    dataset_dir = Path(dataset_dir)
    if not dataset_dir.is_dir():
        missing = Problem.error(dataset_dir, "dataset folder not found")
        return ParsedDataset(DatasetJson(), {subset: [] for subset in SUBSETS}, [missing])
    declared, problems = read_dataset_json(dataset_dir / "dataset.json")
    cases: dict[str, list[RawCase]] = {}
    for subset in SUBSETS:
        cases[subset], listing_problems = scan_subset(dataset_dir, subset, declared)
        problems += listing_problems
        if subset == "Tr":
            problems += _check_num_training(dataset_dir / "dataset.json", declared, len(cases[subset]))
    return ParsedDataset(declared, cases, problems)


def load_dataset_info(dataset_dir: str | Path) -> DatasetInfo:
    """Read ``dataset_dir/dataset.json`` and refuse it if ``parse_dataset`` would report an error in it.

    Raises ``FileNotFoundError`` if it is missing and ``ValueError`` naming the file and every
    malformed or missing field.

    Example:
        >>> import tempfile
        >>> from lgeseg.synth import tiny_dataset
        >>> tmp = tempfile.TemporaryDirectory()
        >>> raw = tiny_dataset(tmp.name, cases=2)
        >>> info = load_dataset_info(raw)
        >>> info.name, info.labels, info.file_ending, info.num_training
        ('center1', {'background': 0, 'blood_pool': 1, 'myocardium': 2}, '.nii.gz', 2)
        >>> tmp.cleanup()
    """
    dataset_dir = Path(dataset_dir)
    path = dataset_dir / "dataset.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    declared = _read_strict(path)
    assert declared.channel_names is not None and declared.labels is not None and declared.file_ending is not None
    return DatasetInfo(
        name=dataset_dir.resolve().name,
        channel_names=declared.channel_names,
        labels=declared.labels,
        num_training=declared.num_training or 0,
        file_ending=declared.file_ending,
        center=declared.center,
        vendor=declared.vendor,
        field_strength=declared.field_strength,
        raw=declared.raw,
        ignore_label=declared.ignore_label,
    )


def list_cases(dataset_dir: str | Path, subset: str = "Tr") -> list[RawCase]:
    """List the cases of ``dataset_dir/images<subset>`` with their labels.

    Args:
        dataset_dir: raw dataset folder.
        subset: ``"Tr"`` (imagesTr/labelsTr) or ``"Ts"`` (imagesTs/labelsTs).

    Returns:
        Cases sorted by id; ``label_path`` is None where ``labels<subset>`` has no file for the
        case. Files ``parse_dataset`` reports as unusable (wrong ending, no channel suffix, a
        second file for a channel) are left out here. Raises ``FileNotFoundError`` if the images
        folder is missing and ``ValueError`` for a malformed ``dataset.json``.

    Example:
        >>> import tempfile
        >>> from lgeseg.synth import tiny_dataset
        >>> tmp = tempfile.TemporaryDirectory()
        >>> raw = tiny_dataset(tmp.name, cases=2)
        >>> [(case.case_id, case.image_paths[0].name, case.label_path.name) for case in list_cases(raw)]
        [('c1_000', 'c1_000_0000.nii.gz', 'c1_000.nii.gz'), ('c1_001', 'c1_001_0000.nii.gz', 'c1_001.nii.gz')]
        >>> tmp.cleanup()
    """
    dataset_dir = Path(dataset_dir)
    images_dir = dataset_dir / f"images{subset}"
    if not images_dir.is_dir():
        raise FileNotFoundError(f"{images_dir}: folder not found (expected nnU-Net v2 layout)")
    json_path = dataset_dir / "dataset.json"
    declared = _read_strict(json_path) if json_path.is_file() else DatasetJson()
    return scan_subset(dataset_dir, subset, declared)[0]


# --- dataset.json -------------------------------------------------------------------------------


#: dataset.json fields: name -> (severity when missing, example).
_FIELDS = {"channel_names": ("error", '{"0": "LGE"}'), "labels": ("error", '{"background": 0, ...}'),
           "file_ending": ("error", '".nii.gz"'), "numTraining": ("warning", "100 (nnU-Net v2 requires it)")}


def read_dataset_json(path: Path) -> tuple[DatasetJson, list[Problem]]:
    """Parse one ``dataset.json``: what it declares (None per unusable field) and its problems.

    Example:
        >>> import json, tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> path = Path(tmp.name) / "dataset.json"
        >>> _ = path.write_text(json.dumps({"channel_names": {"0": "LGE"}, "numTraining": 2,
        ...                                 "labels": {"background": 0, "blood_pool": 1, "myocardium": 2}}))
        >>> declared, problems = read_dataset_json(path)
        >>> declared.channel_names, declared.num_training, declared.file_ending
        ({'0': 'LGE'}, 2, None)
        >>> for problem in problems:
        ...     print(problem.severity, problem.message)
        error missing field 'file_ending' (e.g. ".nii.gz")
        >>> tmp.cleanup()
    """
    if not path.is_file():
        text = "dataset.json not found; it must declare channel_names, labels, numTraining and file_ending"
        return DatasetJson(), [Problem.error(path, text)]
    try:
        raw = load_json(path)
    except ValueError as err:
        return DatasetJson(), [Problem.error(path, strip_path(err, path))]
    if not isinstance(raw, dict):
        return DatasetJson(), [Problem.error(path, f"expected a JSON object, found {type(raw).__name__}")]
    problems: list[Problem] = []

    def report(text: str, severity: str = "error") -> None:
        problems.append(Problem(severity, str(path), text))

    for key, (severity, example) in _FIELDS.items():
        if key not in raw:
            report(f"missing field '{key}' (e.g. {example})", severity)
    channels = _check_channels(raw.get("channel_names"), report) if "channel_names" in raw else None
    labels, ignore = _check_labels(raw.get("labels"), report) if "labels" in raw else (None, None)
    ending = raw.get("file_ending")
    if "file_ending" in raw and (not isinstance(ending, str) or ending.lower() not in SUPPORTED_ENDINGS):
        report(f"field 'file_ending' must be one of {', '.join(SUPPORTED_ENDINGS)}, found {ending!r}")
        ending = None
    num_training = raw.get("numTraining")
    if "numTraining" in raw and (not isinstance(num_training, int) or isinstance(num_training, bool)
                                 or num_training < 0):
        report(f"field 'numTraining' must be a non-negative integer, found {num_training!r}")
        num_training = None
    for key in ("center", "vendor"):
        if raw.get(key) is not None and not isinstance(raw[key], str):
            report(f"field '{key}' should be a string, found {raw[key]!r}", "warning")
    field_strength = raw.get("field_strength")
    declared = DatasetJson(
        channel_names=channels, labels=labels, file_ending=None if ending is None else ending.lower(),
        num_training=num_training, center=raw.get("center"), vendor=raw.get("vendor"),
        field_strength=None if field_strength is None else str(field_strength), raw=raw, ignore_label=ignore,
    )
    return declared, problems


def _read_strict(path: Path) -> DatasetJson:
    """``read_dataset_json`` that raises ``ValueError`` naming the file and every error instead of reporting."""
    declared, problems = read_dataset_json(path)
    errors = [p.message for p in problems if p.severity == "error"]
    if errors:
        raise ValueError(f"{path}: " + "; ".join(errors))
    return declared


def _check_channels(channels: Any, report: Callable[[str], None]) -> dict[str, str] | None:
    if not isinstance(channels, dict) or not channels:
        report(f"field 'channel_names' must be a non-empty object like {{\"0\": \"LGE\"}}, found {channels!r}")
        return None
    expected = [str(i) for i in range(len(channels))]
    if sorted(channels, key=str) != sorted(expected):
        report(f"field 'channel_names' keys must be {expected}, found {sorted(channels)}")
        return None
    return {str(k): str(v) for k, v in channels.items()}


def _check_labels(labels: Any, report: Callable[..., None]) -> tuple[dict[str, int] | None, int | None]:
    """(classes name -> value without ``"ignore"``, the ignore value or None); None for unusable fields."""
    regions = region_labels_problem(labels)
    if regions:
        report(regions)
        return None, None
    if not isinstance(labels, dict) or not labels or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in labels.values()
    ):
        report(f"field 'labels' must map names to integer values, found {labels!r}")
        return None, None
    classes = {str(k): int(v) for k, v in labels.items() if k != IGNORE_LABEL}
    ignore = labels.get(IGNORE_LABEL)
    values = sorted(classes.values())
    if 0 not in values:
        report(f"field 'labels' must declare background as 0, found {labels}")
    if len(set(values)) != len(values):
        report(f"field 'labels' gives one value to several names: {labels}")
    elif values != list(range(len(values))):
        report(f"label values are not consecutive from 0: {values}", "warning")
    if ignore is not None and values and not (values[-1] < ignore <= 255):
        report(f"field 'labels': \"{IGNORE_LABEL}\" must be the highest value (above every class, at most 255; "
               f"nnU-Net's ignore label), found {ignore} with classes {classes}")
        ignore = None
    return classes, ignore


def _check_num_training(path: Path, declared: DatasetJson, found: int) -> list[Problem]:
    if declared.num_training is None or declared.num_training == found:
        return []
    return [Problem.warning(path, f"numTraining is {declared.num_training} but imagesTr holds {found} case(s)")]


# --- case folders -------------------------------------------------------------------------------


def scan_subset(dataset_dir: Path, subset: str, declared: DatasetJson) -> tuple[list[RawCase], list[Problem]]:
    """Group ``images<subset>``/``labels<subset>`` into cases; report naming, channel and pairing problems.

    Args:
        dataset_dir: raw dataset folder.
        subset: ``"Tr"`` or ``"Ts"`` (missing folders are errors for ``"Tr"`` only).
        declared: what dataset.json declares (file ending, channels) to check the names against.

    Returns:
        (cases sorted by id, problems). A file with an unsupported ending, without channel suffix or
        holding a second copy of a channel is reported and left out.

    Example:
        >>> import tempfile
        >>> from lgeseg.synth import tiny_dataset
        >>> tmp = tempfile.TemporaryDirectory()
        >>> raw = tiny_dataset(tmp.name, cases=2)
        >>> (raw / "imagesTr" / "c1_001_0000.nii.gz").unlink()
        >>> cases, problems = scan_subset(raw, "Tr", read_dataset_json(raw / "dataset.json")[0])
        >>> [case.case_id for case in cases], [problem.message for problem in problems]
        (['c1_000'], ['label without image: expected imagesTr/c1_001_0000.nii.gz'])
        >>> tmp.cleanup()
    """
    problems: list[Problem] = []
    images_dir, labels_dir = dataset_dir / f"images{subset}", dataset_dir / f"labels{subset}"
    if not images_dir.is_dir():
        if subset == "Tr":
            problems.append(Problem.error(images_dir, "folder not found (expected nnU-Net v2 layout)"))
        labels = _collect_labels(labels_dir, subset, declared, problems)
        problems += [Problem.error(p, f"label without image: images{subset} is missing") for p in labels.values()]
        return [], problems
    images = _collect_images(images_dir, declared, problems)
    labels = _collect_labels(labels_dir, subset, declared, problems)
    for case_id, path in sorted(labels.items()):
        if case_id not in images:
            ending = declared.file_ending or file_ending(path)
            expected = f"{images_dir.name}/{case_id}_0000{ending}"
            problems.append(Problem.error(path, f"label without image: expected {expected}"))
    name = dataset_dir.resolve().name
    cases = []
    for case_id, channels in sorted(images.items()):
        problems += _check_channel_set(case_id, channels, declared)
        label = labels.get(case_id)
        if label is None and subset == "Tr":
            first = channels[min(channels)]
            ending = declared.file_ending or file_ending(first)
            problems.append(Problem.error(first, f"image without label: expected {labels_dir.name}/{case_id}{ending}"))
        paths = tuple(channels[c] for c in sorted(channels))
        cases.append(RawCase(case_id, paths, label, name, declared.center))
    return cases, problems


def _list_files(folder: Path, declared: DatasetJson, problems: list[Problem]) -> list[Path]:
    """Files of ``folder`` with a supported ending; reports folders and wrong endings."""
    kept: list[Path] = []
    for path in sorted(folder.iterdir()):
        if path.name.startswith("."):
            continue
        if path.is_dir():
            problems.append(Problem.warning(path, "unexpected folder (ignored)"))
            continue
        ending = file_ending(path)
        if not ending:
            expected = declared.file_ending or ", ".join(SUPPORTED_ENDINGS)
            problems.append(Problem.error(path, f"unsupported file ending; expected {expected}"))
            continue
        if declared.file_ending is not None and ending != declared.file_ending:
            text = f"file ending '{ending}' differs from dataset.json file_ending '{declared.file_ending}'"
            problems.append(Problem.error(path, text))
        kept.append(path)
    return kept


def _collect_images(images_dir: Path, declared: DatasetJson, problems: list[Problem]) -> dict[str, dict[int, Path]]:
    """case id -> channel -> image path; names without channel suffix and second copies are reported."""
    images: dict[str, dict[int, Path]] = {}
    for path in _list_files(images_dir, declared, problems):
        case_id, channel = split_channel_suffix(path)
        if channel is None:
            text = f"name lacks the channel suffix: <case>_0000{declared.file_ending or ''}"
            problems.append(Problem.error(path, text))
        elif channel in images.setdefault(case_id, {}):
            text = f"second file for channel {channel} (also {images[case_id][channel].name})"
            problems.append(Problem.error(path, text))
        else:
            images[case_id][channel] = path
    return {case: channels for case, channels in images.items() if channels}


def _collect_labels(labels_dir: Path, subset: str, declared: DatasetJson,
                    problems: list[Problem]) -> dict[str, Path]:
    if not labels_dir.is_dir():
        if subset == "Tr":
            problems.append(Problem.error(labels_dir, "folder not found (expected nnU-Net v2 layout)"))
        return {}
    labels: dict[str, Path] = {}
    for path in _list_files(labels_dir, declared, problems):
        case_id = strip_ending(path)
        if case_id in labels:
            text = f"second label file for case '{case_id}' (also {labels[case_id].name})"
            problems.append(Problem.error(path, text))
        else:
            labels[case_id] = path
    return labels


def _check_channel_set(case_id: str, channels: dict[int, Path], declared: DatasetJson) -> list[Problem]:
    """Channels missing or undeclared for one case (declared: dataset.json channel_names)."""
    first = channels[min(channels)]
    ending = file_ending(first)
    count = declared.num_channels
    expected = range(count) if count is not None else range(max(channels) + 1)
    problems = []
    for channel in expected:
        if channel not in channels:
            name = (declared.channel_names or {}).get(str(channel), "?")
            reason = f"dataset.json channel_names declares {count}" if count else "gap"
            found = ", ".join(f"_{c:04d}" for c in sorted(channels))
            problems.append(Problem.error(first.parent / f"{case_id}_{channel:04d}{ending}",
                                          f"channel {channel} ({name}) missing ({reason}; found {found})"))
    for channel in sorted(set(channels) - set(expected)):
        text = f"channel {channel} is not declared in dataset.json channel_names"
        problems.append(Problem.error(channels[channel], text))
    return problems

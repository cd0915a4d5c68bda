"""Frozen dataclasses that travel between pipeline stages as JSON.

Every record here round-trips through ``to_dict``/``from_dict`` and ``save_json``/``load_json``
so the files on disk (``plans.json``, ``<case>.json``, ``model.json``) are the contract between
stages and stay readable by a person.

Axis conventions (used everywhere in lgeseg):

* Arrays are NumPy arrays in **(z, y, x)** order, as ``SimpleITK.GetArrayFromImage`` returns them;
  z is the slice (through-plane) axis of a short-axis stack.
* ``spacing`` and ``shape`` fields are in the same (z, y, x) order, spacing in millimetres.
* ``origin`` (mm) and ``direction`` (row-major 3x3 cosines) are in ITK's physical (x, y, z)
  order, exactly as SimpleITK reports them, so they can be written back unchanged.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, TypeVar

from lgeseg.core.atomic import atomic_output
from lgeseg.core.checks import plan_problems, raise_problems
from lgeseg.core.errors import InvalidInputError

T = TypeVar("T")

#: Label values used by every lgeseg dataset.
LABELS: dict[str, int] = {"background": 0, "blood_pool": 1, "myocardium": 2}

#: File names of the records a preprocessed folder and a model folder share (the model folder's
#: other names are in ``lgeseg.model.folder``, which re-exports these two).
PLANS_FILE = "plans.json"
FINGERPRINT_FILE = "fingerprint.json"


def _to_jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (tuple, list)):
        return [_to_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _to_jsonable(v) for k, v in value.items()}
    if hasattr(value, "item") and callable(value.item):  # numpy scalar
        return value.item()
    return value


def _tuplify(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_tuplify(v) for v in value)
    return value


class JsonRecord:
    """Mixin: ``to_dict``/``from_dict`` for frozen dataclasses with nested records.

    Lists in JSON become tuples; fields annotated with another ``JsonRecord`` subclass are
    rebuilt recursively (see ``_nested``). Unknown keys are an error that names the key.
    """

    #: field name -> record class for nested records (set by subclasses).
    _nested: dict[str, type] = {}

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable dict of this record."""
        return _to_jsonable(self)

    @classmethod
    def from_dict(cls: type[T], data: dict[str, Any]) -> T:
        """Build the record from a dict as written by ``to_dict``.

        Raises ``ValueError`` naming unknown or missing fields.
        """
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"{cls.__name__}: unknown field(s) {sorted(unknown)}; expected {sorted(names)}")
        kwargs: dict[str, Any] = {}
        nested = getattr(cls, "_nested", {})
        for key, value in data.items():
            if key in nested and value is not None:
                sub = nested[key]
                if isinstance(value, list):
                    kwargs[key] = tuple(sub.from_dict(v) for v in value)
                elif isinstance(value, dict) and hasattr(sub, "from_dict"):
                    kwargs[key] = sub.from_dict(value)
                else:
                    kwargs[key] = value
            elif isinstance(value, dict):
                kwargs[key] = {k: _tuplify(v) for k, v in value.items()}
            else:
                kwargs[key] = _tuplify(value)
        try:
            return cls(**kwargs)
        except TypeError as err:
            raise ValueError(f"{cls.__name__}: {err}") from err


def save_json(data: Any, path: str | Path) -> None:
    """Write ``data`` (a dict, list or ``JsonRecord``) to ``path`` atomically, indented.

    The file is written to a temporary name in the same folder and renamed, so a reader never
    sees half a file.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     save_json(NormalizationConfig("zscore"), Path(folder) / "normalization.json")
        ...     print((Path(folder) / "normalization.json").read_text().split())
        ['{', '"scheme":', '"zscore",', '"clip_percentiles":', '[', '0.5,', '99.5', ']', '}']
    """
    payload = data.to_dict() if isinstance(data, JsonRecord) else _to_jsonable(data)
    with atomic_output(path) as tmp, open(tmp, "w") as handle:
        json.dump(payload, handle, indent=2, sort_keys=False)
        handle.write("\n")


def load_json(path: str | Path) -> Any:
    """Read a JSON file; raises ``FileNotFoundError``/``ValueError`` naming the file.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     save_json({"epochs": 3}, Path(folder) / "x.json")
        ...     load_json(Path(folder) / "x.json")
        {'epochs': 3}
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from err


@dataclasses.dataclass(frozen=True)
class CaseGeometry(JsonRecord):
    """Where an image lies in physical space.

    Attributes:
        shape: voxels, (z, y, x).
        spacing: mm, (z, y, x).
        origin: mm, ITK physical (x, y, z) of the first voxel's centre.
        direction: 9 floats, ITK row-major direction cosines.
    """

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: tuple[float, ...]


@dataclasses.dataclass(frozen=True)
class NormalizationConfig(JsonRecord):
    """Per-image intensity normalization.

    Attributes:
        scheme: ``"minmax"`` (the paper: clip to percentiles, then scale to [0, 1]) or
            ``"zscore"`` (nnU-Net's MRI scheme: subtract mean, divide by std of the image).
        clip_percentiles: (low, high) percentiles used for clipping before ``minmax``.
    """

    scheme: str = "minmax"
    clip_percentiles: tuple[float, float] = (0.5, 99.5)


@dataclasses.dataclass(frozen=True)
class NetworkTopology(JsonRecord):
    """Shape of the 2D U-Net.

    Attributes:
        in_channels: image channels.
        num_classes: output classes including background.
        features_per_stage: encoder stage widths, e.g. (32, 64, 128, 256, 512, 512).
        kernel_sizes: one (ky, kx) per stage.
        strides: one (sy, sx) per stage; the first is (1, 1), later ones downsample.
        conv_per_stage: convolutions per encoder/decoder block (2 in the paper).
    """

    in_channels: int
    num_classes: int
    features_per_stage: tuple[int, ...]
    kernel_sizes: tuple[tuple[int, int], ...]
    strides: tuple[tuple[int, int], ...]
    conv_per_stage: int = 2

    @property
    def num_stages(self) -> int:
        """Number of encoder stages (resolution levels)."""
        return len(self.features_per_stage)


@dataclasses.dataclass(frozen=True)
class MemoryEstimate(JsonRecord):
    """The planner's explicit memory estimate for one training step, in bytes."""

    activations: int
    weights: int
    gradients: int
    optimizer_state: int
    workspace: int
    total: int
    budget: int
    mixed_precision: bool


@dataclasses.dataclass(frozen=True)
class Plan(JsonRecord):
    """How a dataset is preprocessed and which network trains on it (``plans.json``).

    Attributes:
        name: plan name (``"2d"``).
        preset: planner preset that produced it (``"default"`` or ``"paper"``).
        target_spacing: mm, (z, y, x); z is informational (2D: slices are not resampled).
        patch_size: voxels, (y, x).
        batch_size: slices per training batch.
        normalization: intensity normalization.
        topology: network shape.
        labels: label name -> value.
        image_interpolation_order: spline order for image resampling (1 linear, 3 cubic).
        label_interpolation: ``"nearest"`` or ``"linear_onehot"``.
        memory: the memory estimate behind batch and patch (None for hand-written plans).
        device_memory_gb: the budget the plan was made for, GB (None: CPU preset).
        extras: free-form notes (e.g. measured peak memory).
    """

    name: str
    preset: str
    target_spacing: tuple[float, float, float]
    patch_size: tuple[int, int]
    batch_size: int
    normalization: NormalizationConfig
    topology: NetworkTopology
    labels: dict[str, int]
    image_interpolation_order: int = 3
    label_interpolation: str = "linear_onehot"
    memory: MemoryEstimate | None = None
    device_memory_gb: float | None = None
    extras: dict[str, Any] = dataclasses.field(default_factory=dict)

    _nested = {
        "normalization": NormalizationConfig,
        "topology": NetworkTopology,
        "memory": MemoryEstimate,
    }


@dataclasses.dataclass(frozen=True)
class PreprocessedCase(JsonRecord):
    """Properties of one preprocessed case (``<case>.json`` beside ``<case>.npz``).

    The ``.npz`` holds ``image`` float32 (channels, z, y, x) and, for labelled cases,
    ``label`` uint8 (z, y, x), both at ``shape_after_resampling``.

    Attributes:
        case_id: case identifier (file name without channel suffix and ending).
        dataset: name of the raw dataset folder the case came from.
        center: acquisition center (from dataset.json), or None.
        original: geometry of the raw image.
        crop_box: voxels of the raw image kept, ((z0, z1), (y0, y1), (x0, x1)), ends exclusive.
        shape_after_crop: voxels, (z, y, x).
        spacing_after_resampling: mm, (z, y, x).
        shape_after_resampling: voxels, (z, y, x).
        source_files: raw image (and label) paths, for provenance and up-to-date checks.
        plan_fingerprint: hash of the plan fields that affect preprocessing.
    """

    case_id: str
    dataset: str
    center: str | None
    original: CaseGeometry
    crop_box: tuple[tuple[int, int], ...]
    shape_after_crop: tuple[int, int, int]
    spacing_after_resampling: tuple[float, float, float]
    shape_after_resampling: tuple[int, int, int]
    source_files: tuple[str, ...] = ()
    plan_fingerprint: str = ""

    _nested = {"original": CaseGeometry}


@dataclasses.dataclass(frozen=True)
class CaseFingerprint(JsonRecord):
    """One labelled training case in ``fingerprint.json``.

    Attributes:
        case_id, dataset: the case and its raw dataset folder's name.
        spacing: mm, (z, y, x).
        shape: voxels, (z, y, x).
        shape_after_crop: voxels, (z, y, x), after cropping to the body (and the label).
        crop_box: ((z0, z1), (y0, y1), (x0, x1)), voxels, end exclusive.
        center: ``center`` of dataset.json, or None.
        label_voxels: label value (as string) -> voxel count; None without a label.
        foreground: per channel, statistics of the voxels with label > 0 (mean, std, min, max,
            p00_5, p99_5, num_voxels, histogram_counts, normalized_quantiles); None without foreground.
    """

    case_id: str
    dataset: str
    spacing: tuple[float, float, float]
    shape: tuple[int, int, int]
    shape_after_crop: tuple[int, int, int]
    crop_box: tuple[tuple[int, int], ...] = ()
    center: str | None = None
    label_voxels: dict[str, int] | None = None
    foreground: tuple[dict[str, Any], ...] | None = None


@dataclasses.dataclass(frozen=True)
class Fingerprint(JsonRecord):
    """What the planner knows about the training data (``fingerprint.json``; docs/planning.md).

    Attributes:
        cases: one ``CaseFingerprint`` per labelled training case.
        num_channels: image channels of every dataset.
        labels: label name -> value (the same in every dataset).
        datasets: per raw dataset: name, path, center, vendor, field_strength, num_cases,
            channel_names, labels.
        summary: median/min/max spacing and shapes, median foreground statistics and the
            per-channel foreground ``histogram`` over all cases.
        centers: the same summary per acquisition center.
        fingerprint_version: format version (1).

    Example:
        >>> case = CaseFingerprint("c1_000", "center1", (8.0, 1.4, 1.4), (10, 200, 180), (10, 120, 110))
        >>> fingerprint = Fingerprint(cases=(case,))
        >>> Fingerprint.from_dict(fingerprint.to_dict()) == fingerprint
        True
    """

    cases: tuple[CaseFingerprint, ...]
    num_channels: int = 1
    labels: dict[str, int] = dataclasses.field(default_factory=lambda: dict(LABELS))
    datasets: tuple[dict[str, Any], ...] = ()
    summary: dict[str, Any] = dataclasses.field(default_factory=dict)
    centers: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    fingerprint_version: int = 1

    _nested = {"cases": CaseFingerprint}


def load_fingerprint(path: str | Path) -> Fingerprint:
    """Read ``fingerprint.json`` (also those written before it was a record); ``ValueError`` names the file.

    Example:
        >>> import tempfile
        >>> case = CaseFingerprint("c1_000", "center1", (8.0, 1.4, 1.4), (10, 200, 180), (10, 120, 110))
        >>> fingerprint = Fingerprint(cases=(case,))
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     save_json(fingerprint, Path(folder) / "fingerprint.json")
        ...     load_fingerprint(Path(folder) / "fingerprint.json") == fingerprint
        True
    """
    try:
        return Fingerprint.from_dict(load_json(path))
    except (ValueError, TypeError, AttributeError) as err:
        raise ValueError(f"{path}: not a valid lgeseg fingerprint ({err})") from err


def load_plan(source: Path) -> Plan:
    """Read a plan from a ``plans.json`` file or a folder holding one (a model or PRE folder).

    Raises ``FileNotFoundError`` when there is none and ``ValueError`` naming the file when it is not a plan.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     load_plan(folder)
        Traceback (most recent call last):
        ...
        FileNotFoundError: .../plans.json: no plans.json found (give a model folder or a plans.json file)
    """
    source = Path(source)
    path = source / PLANS_FILE if source.is_dir() else source
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no {PLANS_FILE} found (give a model folder or a {PLANS_FILE} file)")
    return read_plan(path)


def read_plan(path: str | Path) -> Plan:
    """Read and check a ``plans.json`` file; returns the ``Plan``.

    Raises ``FileNotFoundError`` when missing and ``InvalidInputError`` (a ``ValueError``) naming
    the file and every bad field (``target_spacing``, ``topology.num_classes``, ...; see
    ``checks.plan_problems``) otherwise.

    Example:
        >>> import json, tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     _ = (Path(folder) / "plans.json").write_text(json.dumps({"target_spacing": [8.0, 1.25]}))
        ...     read_plan(Path(folder) / "plans.json")
        Traceback (most recent call last):
        ...
        lgeseg.core.errors.InvalidInputError: .../plans.json: invalid plan: ...
    """
    data = load_json(path)
    if not isinstance(data, dict):
        raise InvalidInputError(f"{path}: invalid plan: expected a JSON object, found {type(data).__name__}")
    try:
        plan = Plan.from_dict(data)
    except (ValueError, TypeError, AttributeError) as err:
        raise InvalidInputError(f"{path}: invalid plan: {err}") from err
    raise_problems(path, "plan", plan_problems(plan))
    return plan

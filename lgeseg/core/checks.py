"""Range and type checks of the JSON records lgeseg reads back (``plans.json``, ``model.json``).

A hand-edited or damaged file must fail when it is read, with the file and the field named, not
later as a ``ZeroDivisionError`` in resampling or a ``RuntimeError`` inside torch. Each
``*_problems`` function returns one ``"field: expected ..., found ..."`` string per problem (empty
when the record is usable); ``raise_problems`` raises them as one ``InvalidInputError`` naming the
file. The readers (``records.read_plan``, ``model.folder.read_model_info``) call them.

Usage (``plan`` a ``records.Plan`` whose spacing holds a 0)::

    plan_problems(plan)
    # ['target_spacing: expected 3 numbers in (0, 1000) mm (z, y, x), found (8.0, 0.0, 1.5)']
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lgeseg.core.errors import InvalidInputError

#: Label interpolation schemes of the preprocessing (``preprocessing.arrays``).
LABEL_INTERPOLATIONS: tuple[str, ...] = ("nearest", "linear_onehot")
#: Intensity normalization schemes (``preprocessing.normalize``).
NORMALIZATION_SCHEMES: tuple[str, ...] = ("minmax", "zscore")
#: Postprocessing variants a model may choose (``postprocessing.apply_postprocessing``).
POSTPROCESSING_VARIANTS: tuple[str, ...] = ("none", "lcc", "lcc_per_label")


def is_int(value: Any, low: int | None = None, high: int | None = None) -> bool:
    """True when ``value`` is an integer (not a bool) within ``[low, high]`` (bounds optional).

    Example:
        >>> is_int(3, 1), is_int(True), is_int(2.0), is_int(0, low=1)
        (True, False, False, False)
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        return False
    return (low is None or value >= low) and (high is None or value <= high)


def is_number(value: Any, low: float | None = None, high: float | None = None, positive: bool = False) -> bool:
    """True when ``value`` is a finite real (not a bool) within ``[low, high]``, and ``> 0`` if ``positive``.

    Example:
        >>> is_number(0.5, 0, 1), is_number(float("nan")), is_number(0, positive=True)
        (True, False, False)
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        return False
    return (low is None or value >= low) and (high is None or value <= high) and (not positive or value > 0)


def _sequence(value: Any, length: int | None, item_ok: Callable[[Any], bool]) -> bool:
    if not isinstance(value, (tuple, list)) or (length is not None and len(value) != length) or not value:
        return False
    return all(item_ok(v) for v in value)


def _check(problems: list[str], ok: bool, field: str, expected: str, found: Any) -> None:
    if not ok:
        problems.append(f"{field}: expected {expected}, found {found!r}")


def topology_problems(topology: Any, prefix: str = "topology.") -> list[str]:
    """Problems of a ``NetworkTopology`` (types, positive sizes, one kernel and stride per stage).

    Example:
        >>> from lgeseg.core.records import NetworkTopology
        >>> topology_problems(NetworkTopology(1, 1, (8, 16), ((3, 3), (3, 3)), ((1, 1), (2, 2)), 2))
        ['topology.num_classes: expected an integer >= 2 (with background), found 1']
    """
    problems: list[str] = []
    _check(problems, is_int(topology.in_channels, 1), f"{prefix}in_channels", "an integer >= 1",
           topology.in_channels)
    _check(problems, is_int(topology.num_classes, 2), f"{prefix}num_classes", "an integer >= 2 (with background)",
           topology.num_classes)
    features = topology.features_per_stage
    _check(problems, _sequence(features, None, lambda v: is_int(v, 1)), f"{prefix}features_per_stage",
           "a non-empty list of integers >= 1", features)
    stages = len(features) if isinstance(features, (tuple, list)) else None
    pair = lambda v: _sequence(v, 2, lambda k: is_int(k, 1))  # noqa: E731 - a one-line predicate
    for name in ("kernel_sizes", "strides"):
        value = getattr(topology, name)
        _check(problems, _sequence(value, stages, pair), f"{prefix}{name}",
               f"{stages} pairs of integers >= 1 (one per stage)", value)
    _check(problems, is_int(topology.conv_per_stage, 1), f"{prefix}conv_per_stage", "an integer >= 1",
           topology.conv_per_stage)
    return problems


def labels_problems(labels: Any, field: str = "labels") -> list[str]:
    """Problems of a label name -> value map: distinct integers 0..255, background 0 present.

    Example:
        >>> labels_problems({"background": 0, "blood_pool": 1})
        []
        >>> labels_problems({"blood_pool": 1, "myocardium": 1})
        ["labels: expected distinct values including 0 (background), found {'blood_pool': 1, 'myocardium': 1}"]
    """
    if not isinstance(labels, dict) or not labels:
        return [f"{field}: expected a non-empty object of label name -> value, found {labels!r}"]
    values = list(labels.values())
    problems: list[str] = []
    _check(problems, all(is_int(v, 0, 255) for v in values), field, "integer values 0..255", labels)
    _check(problems, len(set(map(str, values))) == len(values) and 0 in values, field,
           "distinct values including 0 (background)", labels)
    return problems


def plan_problems(plan: Any) -> list[str]:
    """Problems of a ``Plan`` read from a file (empty list: usable).

    Checks types and ranges: target spacing > 0 mm, patch and batch sizes >= 1, a known
    normalization with percentiles in 0..100, the topology, labels matching ``num_classes``,
    spline order 0..5 and a known label interpolation.

    Example:
        >>> import dataclasses
        >>> from lgeseg.planning.planner import plan_experiment
        >>> from lgeseg.core.records import CaseFingerprint, Fingerprint
        >>> case = CaseFingerprint("a", "d", (8.0, 1.25, 1.25), (9, 64, 64), (9, 40, 40))
        >>> plan = plan_experiment(Fingerprint(cases=(case,)), None, "cpu")
        >>> plan_problems(plan), plan_problems(dataclasses.replace(plan, batch_size=0))
        ([], ['batch_size: expected an integer >= 1, found 0'])
    """
    problems: list[str] = []
    _check(problems, _sequence(plan.target_spacing, 3, lambda v: is_number(v, positive=True) and v < 1000),
           "target_spacing", "3 numbers in (0, 1000) mm (z, y, x)", plan.target_spacing)
    _check(problems, _sequence(plan.patch_size, 2, lambda v: is_int(v, 1, 8192)), "patch_size",
           "2 integers 1..8192 (y, x)", plan.patch_size)
    _check(problems, is_int(plan.batch_size, 1), "batch_size", "an integer >= 1", plan.batch_size)
    norm = plan.normalization
    if not hasattr(norm, "scheme"):
        problems.append(f"normalization: expected an object with 'scheme', found {norm!r}")
    else:
        _check(problems, norm.scheme in NORMALIZATION_SCHEMES, "normalization.scheme",
               " or ".join(NORMALIZATION_SCHEMES), norm.scheme)
        low_high = norm.clip_percentiles
        _check(problems, _sequence(low_high, 2, lambda v: is_number(v, 0, 100)) and low_high[0] < low_high[1],
               "normalization.clip_percentiles", "[low, high] with 0 <= low < high <= 100", low_high)
    if not hasattr(plan.topology, "num_classes"):
        problems.append(f"topology: expected a network topology object, found {plan.topology!r}")
    else:
        problems += topology_problems(plan.topology)
        label_problems = labels_problems(plan.labels)
        problems += label_problems
        if not label_problems and is_int(plan.topology.num_classes) and len(plan.labels) != plan.topology.num_classes:
            problems.append(f"labels: expected {plan.topology.num_classes} labels (topology.num_classes), "
                            f"found {len(plan.labels)}")
    _check(problems, is_int(plan.image_interpolation_order, 0, 5), "image_interpolation_order",
           "a spline order 0..5", plan.image_interpolation_order)
    _check(problems, plan.label_interpolation in LABEL_INTERPOLATIONS, "label_interpolation",
           " or ".join(LABEL_INTERPOLATIONS), plan.label_interpolation)
    return problems


def model_info_problems(info: Any) -> list[str]:
    """Problems of a ``ModelInfo`` (``model.json``) read from a file (empty list: usable).

    Example:
        >>> import dataclasses
        >>> from lgeseg.model.folder import ModelInfo
        >>> labels = {"background": 0, "blood_pool": 1, "myocardium": 2}
        >>> info = ModelInfo("0.1.0", labels, {"0": "LGE"}, recipe=None, datasets=("d",))
        >>> model_info_problems(info), len(model_info_problems(dataclasses.replace(info, channel_names={"1": "LGE"})))
        ([], 1)
    """
    problems = labels_problems(info.labels)
    channels = info.channel_names
    _check(problems, isinstance(channels, dict) and bool(channels)
           and sorted(channels, key=str) == [str(i) for i in range(len(channels))], "channel_names",
           'an object {"0": name, "1": name, ...}', channels)
    _check(problems, info.postprocessing in POSTPROCESSING_VARIANTS, "postprocessing",
           " or ".join(POSTPROCESSING_VARIANTS), info.postprocessing)
    _check(problems, is_int(info.epochs_trained, 0), "epochs_trained", "an integer >= 0", info.epochs_trained)
    _check(problems, is_int(info.fold, 0), "fold", "an integer >= 0", info.fold)
    return problems


def model_plan_problems(info: Any, plan: Any) -> list[str]:
    """Disagreements between ``model.json`` (``info``) and the ``plans.json`` its network was built from.

    The network has ``topology.num_classes`` outputs, one per label of the plan, and ``in_channels``
    inputs: a ``model.json`` naming other labels or another number of channels would label the
    network's outputs wrongly (or index past them), so it is refused when the model folder is read.

    Example:
        >>> from lgeseg.model.folder import ModelInfo
        >>> from lgeseg.planning import small_plan
        >>> plan = small_plan((8.0, 1.5, 1.5))  # background, blood_pool, myocardium: a 3-class network
        >>> four = {"background": 0, "blood_pool": 1, "myocardium": 2, "scar": 3}
        >>> info = ModelInfo("0.1.0", four, {"0": "LGE"}, recipe=None, datasets=())
        >>> model_plan_problems(info, plan)  # doctest: +NORMALIZE_WHITESPACE
        ["labels: expected the 3 labels of plans.json (topology.num_classes 3: {'background': 0, 'blood_pool': 1,
         'myocardium': 2}), found 4 ({'background': 0, 'blood_pool': 1, 'myocardium': 2, 'scar': 3})"]
    """
    problems: list[str] = []
    num_classes, in_channels = plan.topology.num_classes, plan.topology.in_channels
    if info.labels != plan.labels:
        found = f"{len(info.labels)} ({info.labels})" if isinstance(info.labels, dict) else repr(info.labels)
        problems.append(f"labels: expected the {len(plan.labels)} labels of plans.json (topology.num_classes "
                        f"{num_classes}: {plan.labels}), found {found}")
    _check(problems, isinstance(info.channel_names, dict) and len(info.channel_names) == in_channels,
           "channel_names", f"{in_channels} channel(s), as plans.json's topology.in_channels", info.channel_names)
    return problems


def raise_problems(path: str | Path, what: str, problems: list[str]) -> None:
    """Raise ``InvalidInputError`` ``"<path>: invalid <what>: <problems>"`` when ``problems`` is not empty.

    Example:
        >>> raise_problems("model/plans.json", "plan", [])  # nothing to report
        >>> raise_problems("model/plans.json", "plan", ["batch_size: expected an integer >= 1, found 0"])
        Traceback (most recent call last):
        ...
        lgeseg.core.errors.InvalidInputError: model/plans.json: invalid plan: batch_size: expected an integer >= 1,
        found 0
    """
    if problems:
        raise InvalidInputError(f"{path}: invalid {what}: " + "; ".join(problems))

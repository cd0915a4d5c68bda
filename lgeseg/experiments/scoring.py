"""Predict a folder of test images with a model and score the predictions: the step the demo, the
paper's experiments and the benchmarks share (``predict_folder`` -> ``evaluate_folders`` -> mean Dice).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lgeseg.evaluation.metrics import evaluate_folders
from lgeseg.inference import predict_folder

#: The two structures the paper averages (its Table 5 cells): blood pool and myocardium.
BP_MYO: tuple[str, str] = ("blood_pool", "myocardium")


@dataclasses.dataclass(frozen=True)
class FolderScore:
    """How a model did on one folder of test cases.

    Attributes:
        dice: structure name (``blood_pool``, ``myocardium``, ``lv``) -> mean 3D Dice over the test
            cases (None when no case has the structure in its prediction or reference).
        summary: ``evaluation.evaluate_folders``' summary (``n_cases``, per-structure statistics, ...).
        predict_seconds: wall-clock seconds of the prediction (evaluation not included).
    """

    dice: dict[str, float | None]
    summary: dict[str, Any]
    predict_seconds: float

    def mean_dice(self, structures: Sequence[str] = BP_MYO) -> float | None:
        """Mean of ``structures``' Dice (default: blood pool and myocardium); None when one is None."""
        return mean_dice(self.dice, structures)


def mean_dice(dice: Mapping[str, float | None], structures: Sequence[str] = BP_MYO) -> float | None:
    """Mean of the named structures' Dice; None when one of them is missing or None.

    Example:
        >>> mean_dice({"blood_pool": 0.5, "myocardium": 0.75, "lv": 0.9})
        0.625
        >>> mean_dice({"blood_pool": 0.9, "myocardium": None}) is None
        True
    """
    values = [dice.get(name) for name in structures]
    if any(v is None for v in values):
        return None
    return sum(values) / len(values)  # type: ignore[arg-type]


def dice_means(summary: Mapping[str, Any]) -> dict[str, float | None]:
    """Structure -> mean Dice from an ``evaluate_folders`` summary (a ``summary.json``).

    Example:
        >>> summary = {"n_cases": 2, "structures": {"blood_pool": {"dice": {"mean": 0.91, "sd": 0.02}},
        ...                                         "myocardium": {"dice": {"mean": None, "sd": None}}}}
        >>> dice_means(summary)
        {'blood_pool': 0.91, 'myocardium': None}
    """
    return {name: stats["dice"]["mean"] for name, stats in summary["structures"].items()}


def predict_and_score(images_dir: str | Path, references: str | Path, model_dirs: Sequence[str | Path],
                      predictions_dir: str | Path, metrics_dir: str | Path, **predict_options: Any) -> FolderScore:
    """Predict every image of ``images_dir`` with ``model_dirs`` and evaluate against ``references``.

    Args:
        images_dir: test images (``<case>_0000.nii.gz``, ...).
        references: a folder of ``<case>.nii.gz`` label maps, or a raw dataset holding ``labelsTr``.
        model_dirs: model folders (several: an ensemble).
        predictions_dir: receives the predicted label maps (overwritten).
        metrics_dir: receives ``metrics.csv`` and ``summary.json``.
        predict_options: further ``inference.predict_folder`` arguments (``device``, ``mirroring``,
            ``harmonize``, ``window``, ``overlays``, ...).

    Returns:
        ``FolderScore`` (mean Dice per structure, the evaluation summary, prediction seconds).

    Usage (a trained model and a test dataset; the demo and ``lgeseg_experiments`` run it so)::

        score = predict_and_score("raw/center2/imagesTr", "raw/center2", ["models/center1"], "out/pred", "out/metrics",
                                  device="cpu", mirroring=False)
        score.dice["myocardium"], score.mean_dice(), score.predict_seconds
    """
    predict_options.setdefault("overwrite", True)
    start = time.perf_counter()
    predict_folder(images_dir, predictions_dir, [Path(m) for m in model_dirs], **predict_options)
    seconds = time.perf_counter() - start
    summary = evaluate_folders(predictions_dir, references, metrics_dir)
    return FolderScore(dice=dice_means(summary), summary=summary, predict_seconds=seconds)

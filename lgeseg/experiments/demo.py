"""The main job on the embedded synthetic data, end to end, in a few CPU minutes.

Steps (each is the same function the matching CLI calls):

1. ``synth.generate_multicenter``: four synthetic LGE centers (Table 1 of the paper).
2. ``plan_and_preprocess`` for the training center (center1, the EMIDEC analogue).
3. ``train`` a small 2D U-Net on it for a time budget.
4. ``experiments.scoring.predict_and_score`` on every center (center1: its held-out validation
   cases; centers 2-4: never seen in training): ``predict_folder`` with the model's postprocessing
   and overlay PNGs, then ``evaluate_folders`` against the references; print the Dice table.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import time
from pathlib import Path

from lgeseg.core.records import load_json
from lgeseg.datasets.layout import list_cases
from lgeseg.experiments.scoring import predict_and_score
from lgeseg.model.folder import SPLITS_FILE
from lgeseg.synth import generate_multicenter
from lgeseg.training.trainer import train
from lgeseg.workflows.plan_and_preprocess import plan_and_preprocess

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class DemoConfig:
    """Settings of the demo job.

    Attributes:
        out_dir: work folder (raw data, preprocessed data, model, predictions, metrics).
        cases_per_center: synthetic subjects per center.
        train_center: the single center trained on (1..4).
        train_minutes: wall-clock training budget in minutes (training stops after the epoch that
            crosses it; ``epochs`` is the upper bound).
        epochs: upper bound on training epochs.
        iterations_per_epoch: optimizer steps per epoch.
        test_cases_per_center: cases predicted per unseen center (all of the held-out ones for the
            training center).
        seed: seed for data, split and training.
        in_plane_size: square in-plane matrix of the synthetic cases (None: each center's own);
            small values make tiny data for tests.
        device: torch device, or None for the best available.
        shipped_model: also score this shipped or installed model (``"lge-lv"``) on the same test
            cases, with no training (``score_shipped_model``); None: only the demo's own model.
    """

    out_dir: Path
    cases_per_center: int = 12
    train_center: int = 1
    train_minutes: float = 3.0
    epochs: int = 1000
    iterations_per_epoch: int = 25
    test_cases_per_center: int = 4
    seed: int = 0
    device: str | None = None
    in_plane_size: int | None = None
    shipped_model: str | None = None


def _copy_cases(case_ids: list[str], dataset_dir: Path, out_dir: Path) -> tuple[Path, Path]:
    """Copy the images and labels of ``case_ids`` into ``out_dir/images`` and ``out_dir/labels``."""
    images, labels = out_dir / "images", out_dir / "labels"
    images.mkdir(parents=True, exist_ok=True)
    labels.mkdir(parents=True, exist_ok=True)
    wanted = set(case_ids)
    for case in list_cases(dataset_dir):
        if case.case_id in wanted and case.label_path is not None:
            for path in case.image_paths:
                shutil.copy2(path, images / path.name)
            shutil.copy2(case.label_path, labels / case.label_path.name)
    return images, labels


def run_demo(config: DemoConfig) -> dict[str, dict[str, float]]:
    """Run the whole demo and return ``{center: {label: mean Dice}}``.

    Writes everything under ``config.out_dir``; prints progress through logging.

    Usage (synthetic data, training and prediction: minutes; ``lgeseg_demo`` runs it so)::

        results = run_demo(DemoConfig(out_dir=Path("demo")))
        print(format_results(results, "center1"))
    """
    out = Path(config.out_dir)
    start = time.perf_counter()
    raw_dirs = generate_multicenter(out / "raw", cases_per_center=config.cases_per_center, seed=config.seed,
                                   in_plane_size=config.in_plane_size)
    train_raw = raw_dirs[config.train_center - 1]
    logger.info("synthetic data ready in %.0f s", time.perf_counter() - start)

    pre = out / "preprocessed"
    plan_and_preprocess([train_raw], pre)
    model_dir = out / "model"
    train(pre, model_dir, epochs=config.epochs, iterations_per_epoch=config.iterations_per_epoch,
          max_minutes=config.train_minutes, seed=config.seed, device=config.device)
    logger.info("trained in %.1f min", (time.perf_counter() - start) / 60)

    folds = load_json(model_dir / SPLITS_FILE)
    results: dict[str, dict[str, float]] = {}
    for raw_dir in raw_dirs:
        name = raw_dir.name
        if raw_dir == train_raw:
            case_ids = [key.split("/", 1)[1] for key in folds[0]["val"]]
        else:
            labels = sorted((raw_dir / "labelsTr").glob("*.nii.gz"))[: config.test_cases_per_center]
            case_ids = [p.name.split(".")[0] for p in labels]
        images, labels = _copy_cases(case_ids, raw_dir, out / "test" / name)
        score = predict_and_score(images, labels, [model_dir], out / "predictions" / name, out / "metrics" / name,
                                  device=config.device, overlays=True)
        results[name] = score.dice
    logger.info("demo finished in %.1f min", (time.perf_counter() - start) / 60)
    return results


def score_shipped_model(config: DemoConfig) -> dict[str, dict[str, float]]:
    """Score ``config.shipped_model`` on the test cases ``run_demo`` copied to ``out_dir/test/<center>``.

    Returns ``{center: {label: mean Dice}}`` like ``run_demo``; predictions and metrics go to
    ``out_dir/predictions_<model>/<center>`` and ``out_dir/metrics_<model>/<center>``. Nothing is trained.

    Usage (after ``run_demo``; ``lgeseg_demo`` does it with ``--shipped-model lge-lv``)::

        results = score_shipped_model(DemoConfig(out_dir=Path("demo"), shipped_model="lge-lv"))
    """
    if config.shipped_model is None:
        raise ValueError("score_shipped_model: DemoConfig.shipped_model is None (name a model, e.g. 'lge-lv')")
    out, name = Path(config.out_dir), config.shipped_model
    results: dict[str, dict[str, float]] = {}
    for test_dir in sorted(p for p in (out / "test").iterdir() if (p / "images").is_dir()):
        score = predict_and_score(test_dir / "images", test_dir / "labels", [name], out / f"predictions_{name}" /
                                  test_dir.name, out / f"metrics_{name}" / test_dir.name, device=config.device)
        results[test_dir.name] = score.dice
    return results


def format_results(results: dict[str, dict[str, float]], train_center: str) -> str:
    """A plain-text Dice table: one row per center, one column per structure.

    Example:
        >>> print(format_results({"center1": {"blood_pool": 0.91, "myocardium": 0.78},
        ...                       "center2": {"blood_pool": 0.85, "myocardium": None}}, "center1"))
        test center               blood_pool    myocardium
        --------------------------------------------------
        center1 (held-out)             0.910         0.780
        center2 (unseen)               0.850           n/a
    """
    structures = list(next(iter(results.values())))
    header = f"{'test center':<22}" + "".join(f"{s:>14}" for s in structures)
    lines = [header, "-" * len(header)]
    for center, row in results.items():
        label = f"{center} ({'held-out' if center == train_center else 'unseen'})"
        lines.append(f"{label:<22}" + "".join("n/a".rjust(14) if row[s] is None else f"{row[s]:>14.3f}"
                                              for s in structures))
    return "\n".join(lines)

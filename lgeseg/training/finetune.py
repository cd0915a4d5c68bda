"""Fine-tuning a trained model on a new center (the paper's transfer learning, section 2.4).

The new center must be preprocessed with the pretrained model's plans
(``lgeseg_plan_and_preprocess -d NEW -o OUT --plans-from MODEL``). A reproducible choice of the
new center's cases (``cases`` or ``fraction``, by subject, for a seed) trains the blocks named by
``trainable``; every other parameter is frozen and left out of the optimizer. The result is a
normal model folder that records its parent, the trained blocks, the target cases and the epochs.

Usage (a trained model and a preprocessed folder of the new center)::

    finetune("models/center1", "pre_center2", "models/center1_to_2", trainable="decoder:2", cases=3)
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lgeseg.core.records import PLANS_FILE, Plan, read_plan
from lgeseg.model.folder import find_checkpoint, read_model_metadata
from lgeseg.model.registry import resolve_model
from lgeseg.training.recipes import TrainConfig
from lgeseg.training.splits import subject_of
from lgeseg.training.trainer import FinetuneSpec, check_model_folder, run_training
from lgeseg.training.training_data import open_training_data

log = logging.getLogger(__name__)

#: Epochs of a fine-tuning run when none are given (a fifth of the paper's 250).
DEFAULT_FINETUNE_EPOCHS = 50

#: Encoder blocks fine-tuned by default: the paper's recommendation (section 3.3 and the discussion:
#: "fine-tuning the first 5 blocks of the encoder").
PAPER_ENCODER_BLOCKS = 5


def default_trainable(num_encoder_blocks: int) -> str:
    """The default fine-tuning selection: ``encoder:5`` when the network has >= 5 encoder blocks, else ``all``.

    Example:
        >>> default_trainable(7), default_trainable(4)  # the paper's encoder:5, or all blocks of a smaller network
        ('encoder:5', 'all')
    """
    return f"encoder:{PAPER_ENCODER_BLOCKS}" if num_encoder_blocks >= PAPER_ENCODER_BLOCKS else "all"


def finetune_learning_rate(parent_lr: float, lr: float | None = None) -> float:
    """The learning rate of a fine-tuning run: ``lr`` when given, else the parent recipe's ``parent_lr``.

    Example:
        >>> finetune_learning_rate(1e-3), finetune_learning_rate(1e-3, lr=1e-4)
        (0.001, 0.0001)
    """
    return parent_lr if lr is None else lr


def pick_target_cases(keys: Sequence[str], cases: int | None = None, fraction: float | None = None,
                      seed: int = 0) -> tuple[list[str], list[str]]:
    """Choose the new center's training cases reproducibly, by subject.

    Args:
        keys: ``"<dataset>/<case>"`` of every available case.
        cases: number of subjects to train on, or
        fraction: share of subjects (at least one); neither: all subjects.
        seed: the same seed picks the same cases.

    Returns:
        (training keys, validation keys). Validation takes the next subjects in the seeded order
        (about 20% of them, at least one); when no subject is left, it reuses the training cases.

    Example:
        >>> keys = [f"center2/c2_{i:03d}" for i in range(6)]
        >>> train, validation = pick_target_cases(keys, cases=2, seed=0)
        >>> train, validation  # validation: the next ~20% of the seeded order
        (['center2/c2_002', 'center2/c2_003'], ['center2/c2_004', 'center2/c2_005'])
        >>> pick_target_cases(keys, cases=2, seed=0) == (train, validation)  # the same seed, the same cases
        True
    """
    if cases is not None and fraction is not None:
        raise ValueError("give either --cases or --fraction, not both")
    subjects = sorted({subject_of(k) for k in keys})
    order = [subjects[i] for i in np.random.default_rng(seed).permutation(len(subjects))]
    if cases is not None:
        if not 1 <= cases <= len(order):
            raise ValueError(f"--cases must be between 1 and {len(order)} (subjects available), found {cases}")
        count = cases
    elif fraction is not None:
        if not 0 < fraction <= 1:
            raise ValueError(f"--fraction must be in (0, 1], found {fraction}")
        count = max(1, round(fraction * len(order)))
    else:
        count = len(order)
    chosen = set(order[:count])
    remaining = order[count:]
    validation = set(remaining[: max(1, math.ceil(0.2 * len(order)))]) if remaining else chosen
    train = [k for k in sorted(keys) if subject_of(k) in chosen]
    val = [k for k in sorted(keys) if subject_of(k) in validation]
    return train, val


def check_same_plans(model_dir: Path, preprocessed: Sequence[Path]) -> Plan:
    """Return the model's plan; ``ValueError`` when a preprocessed folder used another one.

    Example:
        >>> import dataclasses, tempfile
        >>> from lgeseg.model.folder import write_untrained_model
        >>> from lgeseg.planning import small_plan
        >>> from lgeseg.core.records import save_json
        >>> tmp = Path(tempfile.mkdtemp())
        >>> plan = small_plan()  # the plan write_untrained_model writes
        >>> _ = write_untrained_model(tmp / "model")
        >>> save_json(plan, tmp / "pre_same" / "plans.json")
        >>> save_json(dataclasses.replace(plan, target_spacing=(8.0, 1.0, 1.0)), tmp / "pre_other" / "plans.json")
        >>> check_same_plans(tmp / "model", [tmp / "pre_same"]) == plan
        True
        >>> check_same_plans(tmp / "model", [tmp / "pre_other"])
        Traceback (most recent call last):
        ...
        ValueError: .../pre_other/plans.json differs from .../model/plans.json: the new center must be preprocessed ...
        >>> import shutil; shutil.rmtree(tmp)
    """
    plan, _ = read_model_metadata(model_dir)
    for folder in preprocessed:
        path = folder / PLANS_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{folder}: not a preprocessed folder (plans.json missing)")
        if read_plan(path) != plan:
            raise ValueError(
                f"{path} differs from {model_dir / PLANS_FILE}: the new center must be preprocessed with the "
                "pretrained model's plans. Run: lgeseg_plan_and_preprocess -d NEW_CENTER -o OUT "
                f"--plans-from {model_dir}"
            )
    return plan


def check_not_parent(pretrained: Path, model_dir: Path) -> None:
    """Refuse an output folder that is the pretrained model folder, inside it, or holds it (``ValueError``).

    Example:
        >>> check_not_parent(Path("models/center1"), Path("models/center1_ft"))  # passes: returns None
        >>> check_not_parent(Path("models/center1"), Path("models/center1"))
        Traceback (most recent call last):
        ValueError: models/center1: the output folder must not be the pretrained model folder (models/center1), ...
    """
    parent, out = pretrained.resolve(), model_dir.resolve()
    if out == parent or parent in out.parents or out in parent.parents:
        where = "" if out == parent else (" (inside it)" if parent in out.parents else " (it holds it)")
        raise ValueError(f"{model_dir}: the output folder must not be the pretrained model folder ({pretrained}), "
                         f"inside it or hold it{where}: fine-tuning never replaces its parent; choose a new "
                         "output folder")


def single_model_folder(spec: str | Path) -> Path:
    """The one model folder that ``spec`` (a folder or a shipped/installed name) names; fine-tuning starts from one.

    Raises ``ValueError`` for an ensemble of several members, naming them and what to do instead, and
    ``FileNotFoundError`` for an unknown name or folder.

    Example:
        >>> import tempfile
        >>> from lgeseg.model.folder import write_untrained_model
        >>> tmp = Path(tempfile.mkdtemp())
        >>> single_model_folder(write_untrained_model(tmp / "model")).name
        'model'
        >>> single_model_folder("lge-lv")
        Traceback (most recent call last):
        ValueError: lge-lv is an ensemble of 3 models (fold_0, fold_1, fold_2): fine-tune one of them ...
        >>> import shutil; shutil.rmtree(tmp)
    """
    entry = resolve_model(spec)
    if len(entry.members) > 1:
        names = ", ".join(m.name for m in entry.members)
        raise ValueError(f"{spec} is an ensemble of {len(entry.members)} models ({names}): fine-tune one of them "
                         f"(-m {entry.path / entry.members[0].name}), or adapt every member to the new center with "
                         "lgeseg_adapt (docs/adaptation.md)")
    return entry.members[0]


def finetune(pretrained: str | Path, preprocessed: str | Path | Sequence[str | Path], model_dir: str | Path,
             trainable: str | None = None, cases: int | None = None, fraction: float | None = None,
             epochs: int | None = None, lr: float | None = None, seed: int = 0,
             datasets: Sequence[str] | None = None, resume: bool = False, overwrite: bool = False,
             **overrides: Any) -> Path:
    """Fine-tune ``pretrained`` on the new center's preprocessed data; returns the new model folder.

    Args:
        pretrained: model folder to start from (its final checkpoint, else best/latest).
        preprocessed: the new center's preprocessed folder(s), made with the pretrained model's plans.
        model_dir: output model folder.
        trainable: ``"all"``, ``"encoder:K"`` (first K encoder blocks) or ``"decoder:K"`` (last K decoder
            blocks with their heads); None: ``default_trainable`` (``encoder:5``, the paper's choice,
            when the network has five or more encoder blocks, else ``all``).
        cases / fraction: how many of the new center's subjects to train on (default: all).
        epochs: default ``DEFAULT_FINETUNE_EPOCHS``; lr: default the pretrained recipe's.
        seed: picks the cases and seeds sampling and augmentation.
        datasets: dataset names within ``preprocessed`` (default: all).
        resume: continue an interrupted fine-tuning run in ``model_dir``.
        overwrite: replace a model already in ``model_dir`` (otherwise refused before any work); never the
            pretrained model (``model_dir`` must not be ``pretrained``, inside it or hold it).
        **overrides: other ``TrainConfig`` fields (``iterations_per_epoch``, ``device``, ...).

    Usage (needs a trained model; ``lgeseg_finetune`` is the same call)::

        from lgeseg.workflows.plan_and_preprocess import plan_and_preprocess
        from lgeseg.training import finetune

        plan_and_preprocess([Path("raw/new_center")], Path("pre_new"), plans_from=Path("models/center1"))
        finetune("models/center1", "pre_new", "models/center1_ft3", cases=3, trainable="encoder:5")
    """
    pretrained, model_dir = single_model_folder(pretrained), Path(model_dir)
    check_not_parent(pretrained, model_dir)
    check_model_folder(model_dir, resume, overwrite)
    folders = [Path(preprocessed)] if isinstance(preprocessed, (str, Path)) else [Path(p) for p in preprocessed]
    plan = check_same_plans(pretrained, folders)
    trainable = trainable or default_trainable(plan.topology.num_stages)
    _, parent_info = read_model_metadata(pretrained)
    data = open_training_data(folders, datasets)
    train_keys, val_keys = pick_target_cases(data.case_keys, cases, fraction, seed)
    log.info("fine-tuning %s (%s trainable) on %d case(s): %s", pretrained, trainable, len(train_keys),
             ", ".join(train_keys))
    parent_config = parent_info.recipe or TrainConfig()  # an untrained parent has no recipe: the record's defaults
    config = parent_config.replace(
        epochs=epochs or DEFAULT_FINETUNE_EPOCHS, learning_rate=finetune_learning_rate(parent_config.learning_rate, lr),
        seed=seed, fold=0, **overrides)
    config = dataclasses.replace(config, subjects_per_center=None)  # the target cases are chosen above
    spec = FinetuneSpec(parent=str(pretrained.resolve()), init_checkpoint=str(find_checkpoint(pretrained)),
                        trainable=trainable, target_cases=tuple(train_keys), val_cases=tuple(val_keys))
    return run_training(config, folders, model_dir, datasets, resume, finetune=spec, overwrite=overwrite)

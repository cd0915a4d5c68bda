"""validate -> fingerprint -> plan -> preprocess: what ``lgeseg_plan_and_preprocess`` runs.

The orchestration sits above the stages it calls (validation, fingerprint, planning,
preprocessing) so that none of them imports another one upward.
"""

from __future__ import annotations

import logging
from pathlib import Path

from lgeseg.core.records import FINGERPRINT_FILE, PLANS_FILE, Fingerprint, Plan, save_json
from lgeseg.datasets.validate import validate_dataset
from lgeseg.model.registry import resolve_model
from lgeseg.planning.nnunet import load_any_plan
from lgeseg.planning.planner import plan_experiment
from lgeseg.planning.verify import verify_memory as verify
from lgeseg.preprocessing.fingerprint import extract_fingerprint
from lgeseg.preprocessing.run import check_preprocessed_folder, run_preprocessing

logger = logging.getLogger(__name__)


def validate_datasets(dataset_dirs: list[Path], allow_unusual_spacing: bool = False) -> None:
    """Raise ``ValueError`` listing every error ``lgeseg.datasets.validate.validate_dataset`` finds; log warnings.

    Example:
        >>> import tempfile
        >>> from lgeseg.synth import tiny_dataset
        >>> tmp = tempfile.TemporaryDirectory()
        >>> raw = tiny_dataset(tmp.name)
        >>> validate_datasets([raw])  # a valid dataset: nothing happens
        >>> (raw / "labelsTr" / "c1_000.nii.gz").unlink()
        >>> validate_datasets([raw])
        Traceback (most recent call last):
        ...
        ValueError: invalid dataset(s):
          .../c1_000_0000.nii.gz: image without label: expected labelsTr/c1_000.nii.gz
        >>> tmp.cleanup()
    """
    errors: list[str] = []
    for directory in dataset_dirs:
        for problem in validate_dataset(directory, allow_unusual_spacing=allow_unusual_spacing):
            text = f"{problem.path}: {problem.message}"
            if problem.severity == "error":
                errors.append(text)
            else:
                logger.warning(text)
    if errors:
        raise ValueError("invalid dataset(s):\n  " + "\n  ".join(errors))


def _check_plan_fits(plan: Plan, fingerprint: Fingerprint, source: Path | None) -> None:
    """Refuse a reused plan (from ``source``) whose label values or channel count differ from the datasets'.

    Label *names* may differ (a cine model's ``LV_bloodpool`` is an LGE dataset's ``blood_pool``):
    the classes are the values, so only a warning says which names are kept (the plan's).
    """
    labels = dict(fingerprint.labels)
    if labels and sorted(labels.values()) != sorted(plan.labels.values()):
        raise ValueError(f"{source}: the plan's labels {plan.labels} differ from the dataset's labels {labels}: "
                         "the label values (classes) must be the same; reuse the plan of a model with these labels")
    if labels and labels != dict(plan.labels):
        logger.warning("label names differ but their values match: the plan's %s are kept for the dataset's %s",
                       plan.labels, labels)
    channels = fingerprint.num_channels
    if channels != plan.topology.in_channels:
        raise ValueError(f"{source}: the plan expects {plan.topology.in_channels} channel(s); the datasets have "
                         f"{channels}: reuse the plan of a model with {channels} channel(s)")


def plans_source(plans_from: str | Path) -> Path:
    """Where ``--plans-from`` reads its plan: itself, or for a model name or ensemble folder its first member.

    Every member of an ensemble shares one plan (``inference.load_models`` checks it), so ``lge-lv`` (a
    shipped model) or an ``lgeseg_adapt`` output stands for ``<its folder>/fold_0``. Anything that is not
    a model name is returned as it is (the plan reader then names what it expected).

    Example:
        >>> plans_source("pre/center1/plans.json").as_posix()  # not a model: unchanged
        'pre/center1/plans.json'
        >>> plans_source("lge-lv").name  # a shipped model: its first member's folder
        'fold_0'
    """
    source = Path(plans_from)
    if source.is_file() or any((source / name).is_file() for name in (PLANS_FILE, "nnUNetPlans.json")):
        return source
    try:
        return resolve_model(source).members[0]
    except (FileNotFoundError, NotADirectoryError):
        return source


def plan_and_preprocess(
    dataset_dirs: list[Path],
    out_dir: Path,
    gpu_memory_gb: float | None = None,
    preset: str = "default",
    verify_memory: bool = False,
    num_workers: int = 1,
    plans_from: Path | None = None,
    normalization: str | None = None,
    allow_unusual_spacing: bool = False,
    overwrite: bool = False,
) -> tuple[Plan, list[Path]]:
    """Validate the datasets, fingerprint them, plan (or reuse ``plans_from``), preprocess.

    Args:
        dataset_dirs: raw dataset folders.
        out_dir: the preprocessed folder (``PRE``); receives fingerprint.json, plans.json and
            one subfolder per dataset.
        gpu_memory_gb: memory budget, GB; None: the present GPU's free memory or the CPU preset.
        preset: planner preset (``default``, ``paper``, ``cpu``).
        verify_memory: measure one training step on the GPU and shrink the batch until it fits.
        num_workers: processes for fingerprinting and preprocessing.
        plans_from: a ``plans.json`` or a folder holding one, or nnU-Net v2's ``nnUNetPlans.json`` (its 2d
            configuration, ``planning.nnunet``); when given, no planning is done.
        normalization: override the preset's normalization scheme.
        allow_unusual_spacing: accept spacing outside the plausible cardiac MR range (``io.spacing_problem``).
        overwrite: replace a preprocessed ``out_dir`` made with another plan (its cases of that plan are
            removed; other files stay). Without it such a folder is refused, and so is, always, a non-empty
            folder that is not a preprocessed one or a raw input (``preprocessing.run.check_preprocessed_folder``).

    Nothing is written before the plan is made: a failed plan (bad ``plans_from``, memory budget) leaves the
    folder as it was, ``fingerprint.json`` included.

    Returns:
        (the plan used, the ``.npz`` paths of all preprocessed cases).

    Example:
        >>> import tempfile
        >>> from lgeseg.synth import generate_multicenter
        >>> tmp = Path(tempfile.mkdtemp())
        >>> raws = generate_multicenter(tmp / "raw", cases_per_center=1, centers=(1, 2), in_plane_size=32)
        >>> plan, paths = plan_and_preprocess(raws, tmp / "pre", preset="cpu")
        >>> plan.preset, [p.relative_to(tmp / "pre").as_posix() for p in paths]
        ('cpu', ['center1/c1_000.npz', 'center2/c2_000.npz'])
        >>> sorted(p.name for p in (tmp / "pre").iterdir())
        ['center1', 'center2', 'fingerprint.json', 'plans.json']
        >>> import shutil; shutil.rmtree(tmp)
    """
    dataset_dirs = [Path(d) for d in dataset_dirs]
    out_dir = Path(out_dir)
    # before any work: the folder, and a reused plan (read and compared with the folder's before fingerprinting)
    reused = load_any_plan(plans_source(plans_from)) if plans_from is not None else None
    check_preprocessed_folder(out_dir, reused, dataset_dirs, overwrite)
    validate_datasets(dataset_dirs, allow_unusual_spacing)
    fingerprint = extract_fingerprint(dataset_dirs, num_workers)
    if reused is not None:
        _check_plan_fits(reused, fingerprint, plans_from)
        plan = reused
    else:
        plan = plan_experiment(fingerprint, gpu_memory_gb, preset, fingerprint.num_channels,
                               fingerprint.labels, normalization)
    if verify_memory:
        plan = verify(plan)
    check_preprocessed_folder(out_dir, plan, dataset_dirs, overwrite)  # before fingerprint.json is replaced
    save_json(fingerprint, out_dir / FINGERPRINT_FILE)
    paths = run_preprocessing(dataset_dirs, out_dir, plan, num_workers, out_dir / FINGERPRINT_FILE, overwrite)
    return plan, paths


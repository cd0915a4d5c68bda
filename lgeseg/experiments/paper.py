"""The paper's four domain-generalization experiments (its Table 5) as one resumable run.

All models are trained on one center (the EMIDEC analogue) unless the experiment says otherwise, and
every model is scored on held-out test cases of each center it is meant for:

1. **Augmentation**: three single-center models, with no augmentation, spatial, and spatial plus
   intensity augmentation; tested on every center.
2. **Harmonization**: the spatial-and-intensity model of experiment 1, with every unseen center's
   images histogram-matched to the training center, or translated by a CycleGAN trained between the
   training center and that center.
3. **Transfer learning**: that model fine-tuned per unseen center (all encoder blocks by default, the
   paper's best choice) on a few of its cases; tested on that center.
4. **Multi-center training**: a model trained on the training center plus the unseen center's
   training cases (balanced sampling); tested on that center.

Data: the embedded synthetic centers (``synth.generate_multicenter``; training and test cases from
different seeds), or real raw datasets, one folder per center, given as ``raw_dir`` and ``test_dir``
with the same center names. Each step is the same library function its CLI runs; finished models
and GANs are reused when the run is repeated (delete a folder to redo it), predictions are redone. Writes
``OUT/results.json`` and ``OUT/table.md``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

#: Column name -> table header ("experiment: setting"), in table order.
COLUMNS: dict[str, str] = {
    "no_augmentation": "1: no augmentation",
    "spatial": "1: spatial",
    "spatial_intensity": "1: spatial + intensity",
    "histogram": "2: histogram matching",
    "cyclegan": "2: CycleGAN",
    "transfer": "3: transfer learning",
    "multi_center": "4: multi-center",
}
AUGMENTATION_OF = {"no_augmentation": "none", "spatial": "spatial", "spatial_intensity": "spatial_intensity"}


@dataclasses.dataclass(frozen=True)
class PaperExperimentsConfig:
    """Settings of ``run_paper_experiments``.

    Attributes:
        out_dir: work folder (data, preprocessed data, models, GANs, predictions, metrics, results).
        experiments: which of 1-4 to run (experiments 2-4 build on the spatial-and-intensity model).
        train_center: name of the training center's dataset folder (``center1`` for the synthetic data).
        raw_dir / test_dir: folders with one raw dataset per center (training / test cases); None for
            both: synthetic centers are generated.
        synthetic_centers: which synthetic centers (1-4) to generate.
        cases_per_center / test_cases_per_center: synthetic cases per center (training / test).
        in_plane_size: square in-plane matrix of the synthetic cases (None: each center's own; small
            values make tiny data for tests).
        preset: planner preset (None: ``cpu`` on the CPU, else ``default``).
        epochs / iterations_per_epoch / train_minutes: length of each segmentation training (the
            time budget, minutes, ends it early when set).
        finetune_blocks: ``encoder:K`` / ``decoder:K`` / ``all``; ``encoder:all`` means every encoder block.
        finetune_cases / finetune_epochs: target cases and epochs of experiment 3.
        harmonization: methods of experiment 2 (``histogram``, ``cyclegan``).
        gan_epochs / gan_iterations / gan_patch: CycleGAN training length and patch (voxels).
        mirroring: flip test-time augmentation when predicting (4 passes, mostly around the ventricle).
        seed: data, splits, weights and augmentation.
        device: torch device, None for the best available.
    """

    out_dir: Path
    experiments: tuple[int, ...] = (1, 2, 3, 4)
    train_center: str = "center1"
    raw_dir: Path | None = None
    test_dir: Path | None = None
    synthetic_centers: tuple[int, ...] = (1, 2, 3, 4)
    cases_per_center: int = 12
    test_cases_per_center: int = 5
    in_plane_size: int | None = None
    preset: str | None = None
    epochs: int = 20
    iterations_per_epoch: int = 25
    train_minutes: float | None = None
    finetune_blocks: str = "encoder:all"
    finetune_cases: int = 3
    finetune_epochs: int = 3
    harmonization: tuple[str, ...] = ("histogram", "cyclegan")
    gan_epochs: int = 5
    gan_iterations: int = 50
    gan_patch: int = 128
    mirroring: bool = False
    seed: int = 0
    device: str | None = None


def _done(folder: Path) -> bool:
    return (folder / "checkpoint_final.pt").is_file()


def _resumable(folder: Path) -> bool:
    """True when ``folder`` (a model or GAN folder this runner owns) holds an interrupted run to continue;
    a run that stopped before its first checkpoint is removed so it can start afresh."""
    if (folder / "checkpoint_latest.pt").is_file():
        return True
    if folder.exists():
        shutil.rmtree(folder)
    return False


class _Run:
    """State shared by the experiment steps: data folders, device and the results table."""

    def __init__(self, config: PaperExperimentsConfig):
        import torch

        self.config = config
        self.out = Path(config.out_dir)
        self.device = config.device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.results: dict[str, dict[str, dict[str, float]]] = {}
        self.seconds: dict[str, float] = {}
        self.train_raw, self.test_raw = self._data()
        if config.train_center not in self.train_raw:
            raise ValueError(f"train_center {config.train_center!r}: no such center in "
                             f"{self.out / 'raw' if config.raw_dir is None else config.raw_dir} "
                             f"(found {', '.join(sorted(self.train_raw))})")
        self.unseen = [c for c in self.train_raw if c != config.train_center]
        self.pre: dict[str, Path] = {}

    def _data(self) -> tuple[dict[str, Path], dict[str, Path]]:
        config = self.config
        if (config.raw_dir is None) != (config.test_dir is None):
            raise ValueError("raw_dir and test_dir: give both (real data) or neither (synthetic data)")
        if config.raw_dir is None:
            from lgeseg.synth import generate_multicenter

            centers = config.synthetic_centers
            train = generate_multicenter(self.out / "raw", config.cases_per_center, config.seed, centers,
                                         in_plane_size=config.in_plane_size)
            test = generate_multicenter(self.out / "test", config.test_cases_per_center, config.seed + 1, centers,
                                        in_plane_size=config.in_plane_size)
        else:
            train = sorted(p for p in Path(config.raw_dir).iterdir() if (p / "dataset.json").is_file())
            test = [Path(config.test_dir) / p.name for p in train]
            missing = [str(p) for p in test if not (p / "dataset.json").is_file()]
            if missing:
                raise FileNotFoundError(f"test_dir: no test dataset for center(s) {', '.join(missing)}")
        return {p.name: p for p in train}, {p.name: p for p in test}

    def timed(self, name: str, step: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run ``step(*args, **kwargs)``, log and record its wall-clock seconds under ``name``."""
        start = time.perf_counter()
        logger.info("== %s", name)
        value = step(*args, **kwargs)
        self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start
        return value

    def preprocessed(self, center: str) -> Path:
        """The center's preprocessed folder; the training center is planned, the others use its plans."""
        from lgeseg.plan_and_preprocess import plan_and_preprocess

        if center not in self.pre:
            folder = self.out / "preprocessed" / center
            if not (folder / "plans.json").is_file():
                if center == self.config.train_center:
                    preset = self.config.preset or ("cpu" if self.device == "cpu" else "default")
                    plan_and_preprocess([self.train_raw[center]], folder, preset=preset)
                else:
                    base = self.preprocessed(self.config.train_center)
                    plan_and_preprocess([self.train_raw[center]], folder, plans_from=base / "plans.json")
            self.pre[center] = folder
        return self.pre[center]

    def train_model(self, name: str, centers: list[str], augmentation: str) -> Path:
        """Train (or reuse) ``models/<name>`` on the centers' preprocessed data with ``augmentation``."""
        from lgeseg.training.trainer import train

        model = self.out / "models" / name
        if not _done(model):
            config = self.config
            folders = [self.preprocessed(c) for c in centers]
            self.timed(f"train {name}", train, folders, model, recipe="default", epochs=config.epochs,
                       iterations_per_epoch=config.iterations_per_epoch, max_minutes=config.train_minutes,
                       augmentation=augmentation, seed=config.seed, device=self.device, resume=_resumable(model))
        return model

    def score(self, column: str, center: str, model: Path, harmonize: str | None = None) -> None:
        """Predict the center's test cases with ``model`` and record the mean Dice per structure."""
        from lgeseg.evaluation import evaluate_folders
        from lgeseg.inference import predict_folder

        predictions = self.out / "predictions" / column / center
        test = self.test_raw[center]
        self.timed(f"predict {column} {center}", predict_folder, test / "imagesTr", predictions, [model],
                   device=self.device, mirroring=self.config.mirroring, harmonize=harmonize, overwrite=True)
        summary = evaluate_folders(predictions, test, self.out / "metrics" / column / center)
        dice = {name: stats["dice"]["mean"] for name, stats in summary["structures"].items()}
        self.results.setdefault(column, {})[center] = dice
        logger.info("%s on %s: %s", column, center, {k: None if v is None else round(v, 3) for k, v in dice.items()})


def _finetune_spec(blocks: str, model: Path) -> str:
    """``encoder:all`` -> ``encoder:K`` with K the model's number of encoder blocks."""
    from lgeseg.model_folder import read_model_metadata

    part, _, count = blocks.partition(":")
    if count == "all":
        plan, _ = read_model_metadata(model)
        stages = plan.topology.num_stages
        return f"{part}:{stages if part == 'encoder' else stages - 1}"
    return blocks


def _experiment_1(run: _Run) -> None:
    for column, augmentation in AUGMENTATION_OF.items():
        model = run.train_model(f"single_center_{augmentation}", [run.config.train_center], augmentation)
        for center in run.test_raw:
            run.score(column, center, model)


def _experiment_2(run: _Run, base: Path) -> None:
    from lgeseg.harmonization.cyclegan import CycleGANConfig
    from lgeseg.harmonization.cyclegan_train import train_cyclegan

    config = run.config
    unknown = set(config.harmonization) - {"histogram", "cyclegan"}
    if unknown:
        raise ValueError(f"harmonization: expected 'histogram' and/or 'cyclegan', found {sorted(unknown)}")
    gan_config = CycleGANConfig(epochs=config.gan_epochs, iterations_per_epoch=config.gan_iterations,
                                patch_size=(config.gan_patch, config.gan_patch), seed=config.seed)
    for center in run.unseen:
        if "histogram" in config.harmonization:
            run.score("histogram", center, base, harmonize="histogram")
        if "cyclegan" in config.harmonization:
            gan = run.out / "gans" / f"{config.train_center}_{center}"
            if not _done(gan):
                run.timed(f"CycleGAN {config.train_center}<->{center}", train_cyclegan,
                          run.preprocessed(config.train_center), run.preprocessed(center), gan, gan_config,
                          device=run.device, resume=_resumable(gan))
            run.score("cyclegan", center, base, harmonize=f"cyclegan:{gan}")


def _experiment_3(run: _Run, base: Path) -> None:
    from lgeseg.training.finetune import finetune

    config = run.config
    spec = _finetune_spec(config.finetune_blocks, base)
    for center in run.unseen:
        model = run.out / "models" / f"transfer_{center}"
        if not _done(model):
            run.timed(f"fine-tune {spec} on {center}", finetune, base, run.preprocessed(center), model,
                      trainable=spec, cases=config.finetune_cases, epochs=config.finetune_epochs,
                      iterations_per_epoch=config.iterations_per_epoch, seed=config.seed, device=run.device,
                      resume=_resumable(model))
        run.score("transfer", center, model)


def _experiment_4(run: _Run) -> None:
    for center in run.unseen:
        model = run.train_model(f"multi_center_{run.config.train_center}_{center}",
                                [run.config.train_center, center], "spatial_intensity")
        run.score("multi_center", center, model)


def run_paper_experiments(config: PaperExperimentsConfig) -> dict[str, Any]:
    """Run the selected experiments; returns (and writes to ``OUT/results.json``) the results.

    Returns:
        ``{"dice": {column: {center: {structure: mean Dice}}}, "seconds": {step: s}, "config": {...}}``;
        columns are the keys of ``COLUMNS`` that were run, structures ``blood_pool``, ``myocardium``, ``lv``.
        Raises ``ValueError`` for an unknown experiment or harmonization method or a missing center.
    """
    unknown = set(config.experiments) - {1, 2, 3, 4}
    if unknown or not config.experiments:
        raise ValueError(f"experiments: expected a selection of 1, 2, 3, 4, found {sorted(config.experiments)}")
    run = _Run(config)
    if 1 in config.experiments:
        _experiment_1(run)
    if set(config.experiments) & {2, 3}:
        base = run.train_model("single_center_spatial_intensity", [config.train_center], "spatial_intensity")
        if 2 in config.experiments:
            _experiment_2(run, base)
        if 3 in config.experiments:
            _experiment_3(run, base)
    if 4 in config.experiments:
        _experiment_4(run)
    results = {"dice": run.results, "seconds": run.seconds, "device": run.device,
               "config": {k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(config).items()}}
    (run.out / "results.json").write_text(json.dumps(results, indent=2))
    (run.out / "table.md").write_text(format_table(results, config.train_center) + "\n")
    return results


def _mean_dice(row: dict[str, float | None]) -> float | None:
    values = [row.get("blood_pool"), row.get("myocardium")]
    return None if any(v is None for v in values) else sum(values) / 2  # type: ignore[operator, misc]


def format_table(results: dict[str, Any], train_center: str) -> str:
    """Markdown table in the layout of the paper's Table 5: test centers x experiment columns.

    Cells hold the mean 3D Dice of blood pool and myocardium over the center's test cases; ``-``
    where the column does not apply (experiments 2-4 on the training center) or was not run.
    """
    dice = results["dice"]
    columns = [c for c in COLUMNS if c in dice]
    centers = sorted({center for column in dice.values() for center in column},
                     key=lambda c: (c != train_center, c))
    lines = ["| test center | " + " | ".join(COLUMNS[c] for c in columns) + " |",
             "| --- |" + " --- |" * len(columns)]
    for center in centers:
        cells = []
        for column in columns:
            value = _mean_dice(dice[column][center]) if center in dice[column] else None
            cells.append("-" if value is None else f"{value:.3f}")
        label = f"{center} (training)" if center == train_center else center
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)

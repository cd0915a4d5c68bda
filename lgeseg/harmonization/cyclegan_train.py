"""CycleGAN training run: data, epochs with a progress bar, checkpoints, resume, curves and example pictures."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from lgeseg.core.device import resolve_device
from lgeseg.harmonization.cyclegan import (
    INFO_FILE,
    CycleGANConfig,
    CycleGANInfo,
    CycleGANState,
    learning_rate_at,
    make_state,
    read_info,
    train_step,
    validation_cycle_loss,
    write_info,
)
from lgeseg.harmonization.gan_data import Domain, load_domain, random_patches, split_cases
from lgeseg.harmonization.gan_plots import plot_examples, plot_progress
from lgeseg.model.folder import (  # the GAN folder names its checkpoints, log and plot as a model folder does
    CHECKPOINT_FINAL_FILE,
    CHECKPOINT_LATEST_FILE,
    PROGRESS_PLOT_FILE,
    TRAINING_LOG_FILE,
    load_checkpoint,
    save_checkpoint,
)

logger = logging.getLogger(__name__)


def _new_info(source: Path, target: Path, config: CycleGANConfig, source_datasets: Sequence[str] | None,
              target_datasets: Sequence[str] | None, domains: dict[str, Domain]) -> CycleGANInfo:
    rng = np.random.default_rng(config.seed + 1)
    validation = {name: tuple(split_cases(domains[name], config.validation_fraction, rng)[1])
                  for name in ("source", "target")}
    return CycleGANInfo(config=config, source=str(source), target=str(target),
                        source_datasets=tuple(source_datasets or ()), target_datasets=tuple(target_datasets or ()),
                        source_spacing_yx=domains["source"].spacing_yx, target_spacing_yx=domains["target"].spacing_yx,
                        validation_cases=validation)


def _split(domains: dict[str, Domain], info: CycleGANInfo) -> tuple[dict[str, Domain], dict[str, Domain]]:
    train, val = {}, {}
    for name, domain in domains.items():
        held_out = set(info.validation_cases.get(name, ()))
        train[name] = domain.subset(set(domain.case_ids) - held_out)
        val[name] = domain.subset(held_out) if held_out else train[name]
    return train, val


def _run_epoch(state: CycleGANState, config: CycleGANConfig, train: dict[str, Domain],
               device: torch.device) -> dict[str, float]:
    lr = learning_rate_at(config, state.epoch)
    for optimizer in (state.optimizer_g, state.optimizer_d):
        for group in optimizer.param_groups:
            group["lr"] = lr
    for module in (state.generators, state.discriminators):
        module.train()
    sums: dict[str, float] = {}
    bar = tqdm(range(config.iterations_per_epoch), desc=f"CycleGAN epoch {state.epoch + 1}/{config.epochs}",
               leave=False, disable=None)
    for _ in bar:
        real_a = random_patches(train["source"], config.batch_size, config.patch_size, state.rng).to(device)
        real_b = random_patches(train["target"], config.batch_size, config.patch_size, state.rng).to(device)
        losses = train_step(state, config, real_a, real_b)
        for key, value in losses.items():
            sums[key] = sums.get(key, 0.0) + value
        bar.set_postfix(cycle=f"{losses['cycle']:.3f}", d=f"{losses['discriminator']:.3f}")
    return {key: value / config.iterations_per_epoch for key, value in sums.items()}


def _finish_epoch(state: CycleGANState, info: CycleGANInfo, output_dir: Path, means: dict[str, float],
                  val: dict[str, Domain], seconds: float) -> CycleGANInfo:
    for module in (state.generators, state.discriminators):
        module.eval()
    means["validation_cycle"] = validation_cycle_loss(state, info.config, val)
    means["seconds"] = seconds
    for key, value in means.items():
        state.history.setdefault(key, []).append(value)
    state.epoch += 1
    save_checkpoint(output_dir / CHECKPOINT_LATEST_FILE, state.to_payload())
    info = dataclasses.replace(info, epochs_trained=state.epoch)
    write_info(output_dir, info)
    plot_progress(state.history, output_dir / PROGRESS_PLOT_FILE)
    plot_examples(state, val, output_dir / "examples" / f"epoch_{state.epoch:03d}.png")
    line = f"epoch {state.epoch}: " + ", ".join(f"{k} {v:.4f}" for k, v in means.items())
    with open(output_dir / TRAINING_LOG_FILE, "a") as handle:
        handle.write(line + "\n")
    logger.info(line)
    return info


def train_cyclegan(source: str | Path, target: str | Path, output_dir: str | Path,
                   config: CycleGANConfig | None = None, source_datasets: Sequence[str] | None = None,
                   target_datasets: Sequence[str] | None = None, device: str = "auto", resume: bool = False,
                   epochs: int | None = None) -> CycleGANInfo:
    """Train (or, with ``resume``, continue) a CycleGAN between two centers' preprocessed slices.

    Args:
        source: preprocessed folder of the source center A (the segmentation model's training center).
        target: preprocessed folder of the target center B (the unseen center).
        output_dir: ``GAN_DIR``; must not hold a CycleGAN yet unless ``resume``.
        config: training configuration (default ``CycleGANConfig()``); ignored on resume (the stored one is used).
        source_datasets, target_datasets: dataset subfolders to use (None: all).
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...
        resume: continue from ``checkpoint_latest.pt`` with the stored configuration and data.
        epochs: total epochs to reach (overrides ``config.epochs``; lets a resumed run go longer).

    Returns:
        the final ``CycleGANInfo`` (also in ``GAN_DIR/cyclegan.json``).

    Usage (preprocessed folders of two centers; ``lgeseg_harmonize cyclegan-train`` runs it)::

        config = CycleGANConfig(patch_size=(128, 128), epochs=20)
        info = train_cyclegan("pre_center1", "pre_center3", "gan_1_to_3", config=config, device="auto")
        info.epochs_trained  # 20; the generators are in gan_1_to_3/checkpoint_final.pt
    """
    output_dir = Path(output_dir)
    if resume:
        info = read_info(output_dir)
        source, target = Path(info.source), Path(info.target)
        source_datasets, target_datasets = info.source_datasets or None, info.target_datasets or None
    elif (output_dir / INFO_FILE).exists():
        raise ValueError(f"{output_dir}: already holds a CycleGAN; pass --continue to resume it or choose a new folder")
    config = info.config if resume else (config or CycleGANConfig())
    if epochs is not None:
        config = dataclasses.replace(config, epochs=epochs)
    domains = {name: load_domain(name, path, ds, config.intensity_percentiles)
               for name, path, ds in (("source", source, source_datasets), ("target", target, target_datasets))}
    for name, domain in domains.items():
        if domain.slices[0].shape[0] != config.in_channels:
            raise ValueError(f"{name} images have {domain.slices[0].shape[0]} channel(s), "
                             f"the CycleGAN is configured for {config.in_channels}")
    info = dataclasses.replace(info, config=config) if resume else _new_info(
        Path(source), Path(target), config, source_datasets, target_datasets, domains)
    train, val = _split(domains, info)
    torch_device = resolve_device(device)
    state = make_state(config, torch_device)
    if resume:
        state.load_payload(load_checkpoint(output_dir / CHECKPOINT_LATEST_FILE, map_location=torch_device))
    output_dir.mkdir(parents=True, exist_ok=True)
    write_info(output_dir, info)
    while state.epoch < config.epochs:
        started = time.perf_counter()
        means = _run_epoch(state, config, train, torch_device)
        info = _finish_epoch(state, info, output_dir, means, val, time.perf_counter() - started)
    save_checkpoint(output_dir / CHECKPOINT_FINAL_FILE,
                    {"network": {k: m.state_dict() for k, m in state.generators.items()}, "epoch": state.epoch})
    return info

"""CycleGAN pictures: loss curves (``progress.png``) and example translations per epoch."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from lgeseg.harmonization.cyclegan import CycleGANState, translate_slices  # noqa: E402
from lgeseg.harmonization.gan_data import Domain  # noqa: E402


def _save(figure: plt.Figure, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    figure.savefig(tmp, dpi=80)
    plt.close(figure)
    tmp.replace(path)


def plot_progress(history: dict[str, list[float]], path: Path) -> None:
    """Write the per-epoch loss curves (generator losses, discriminator, validation cycle) to ``path`` (PNG)."""
    figure, axis = plt.subplots(figsize=(8, 4.5))
    for key, values in history.items():
        if key != "seconds":
            axis.plot(range(1, len(values) + 1), values, marker="o" if len(values) < 20 else None, label=key)
    axis.set_xlabel("epoch")
    axis.set_ylabel("loss")
    axis.set_title("CycleGAN training")
    axis.legend()
    axis.grid(alpha=0.3)
    figure.tight_layout()
    _save(figure, path)


@torch.no_grad()
def plot_examples(state: CycleGANState, domains: dict[str, Domain], path: Path) -> None:
    """Write a picture of one slice per domain: real, translated, translated back (first channel)."""
    rows = (("source", "source_to_target", "target_to_source"), ("target", "target_to_source", "source_to_target"))
    figure, axes = plt.subplots(2, 3, figsize=(9, 6))
    for row, (name, forward, backward) in enumerate(rows):
        domain = domains[name]
        real = torch.from_numpy(domain.slices[len(domain.slices) // 2])[None]
        fake = translate_slices(state.generators[forward], real)
        back = translate_slices(state.generators[backward], fake)
        other = "target" if name == "source" else "source"
        titles = (f"{name} (real)", f"-> {other}", f"-> back to {name}")
        for column, (image, title) in enumerate(zip((real, fake, back), titles, strict=True)):
            axes[row, column].imshow(image[0, 0].cpu().numpy(), cmap="gray", vmin=-1, vmax=1)
            axes[row, column].set_title(title)
            axes[row, column].axis("off")
    figure.suptitle(f"epoch {state.epoch}")
    figure.tight_layout()
    _save(figure, path)

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
    """Write the per-epoch loss curves (generator losses, discriminator, validation cycle) to ``path`` (PNG).

    Example:
        >>> import tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> history = {"adversarial": [1.0, 0.8], "cycle": [3.0, 2.0], "seconds": [9.0, 8.5]}  # seconds: not drawn
        >>> plot_progress(history, Path(tmp.name) / "progress.png")
        >>> (Path(tmp.name) / "progress.png").read_bytes()[1:4]  # a PNG file
        b'PNG'
        >>> tmp.cleanup()
    """
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
    """Write a picture of one slice per domain: real, translated, translated back (first channel).

    Example:
        >>> import tempfile
        >>> import numpy as np
        >>> from lgeseg.harmonization.cyclegan import CycleGANConfig, make_state
        >>> config = CycleGANConfig(generator_features=4, generator_blocks=1, discriminator_features=4,
        ...                         discriminator_layers=2, patch_size=(32, 32))
        >>> slices = [np.zeros((1, 32, 32), np.float32)]
        >>> domains = {name: Domain(name, slices, ["c/p1"], None) for name in ("source", "target")}
        >>> tmp = tempfile.TemporaryDirectory()
        >>> state = make_state(config, torch.device("cpu"))
        >>> plot_examples(state, domains, Path(tmp.name) / "examples" / "epoch_001.png")
        >>> [p.name for p in (Path(tmp.name) / "examples").iterdir()]
        ['epoch_001.png']
        >>> tmp.cleanup()
    """
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

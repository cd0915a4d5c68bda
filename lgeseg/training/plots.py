"""``progress.png``: training and validation loss and validation Dice per epoch."""

from __future__ import annotations

from pathlib import Path

from lgeseg.core.atomic import atomic_output


def plot_progress(history: dict[str, list[float]], path: str | Path) -> None:
    """Write the training curve to ``path`` (PNG), atomically.

    Args:
        history: ``train_loss``, ``val_loss``, ``val_mean_dice`` and optional ``val_dice_<label>``
            lists, one value per epoch (epoch 1 first).
        path: output PNG.

    Example:
        >>> import tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> history = {"train_loss": [1.2, 0.9], "val_loss": [1.1, 1.0], "val_mean_dice": [0.3, 0.5],
        ...            "val_dice_myocardium": [0.2, 0.4]}
        >>> plot_progress(history, Path(tmp.name) / "progress.png")
        >>> (Path(tmp.name) / "progress.png").read_bytes()[1:4]  # a PNG file
        b'PNG'
        >>> tmp.cleanup()
    """
    # Imported here, and without pyplot: loading a model for inference should not pay for matplotlib,
    # and a notebook's backend must not change.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    epochs = list(range(1, len(history.get("train_loss", [])) + 1))
    fig = Figure(figsize=(11, 4))
    FigureCanvasAgg(fig)
    ax_loss, ax_dice = fig.subplots(1, 2)
    ax_loss.plot(epochs, history.get("train_loss", []), label="train loss")
    ax_loss.plot(epochs, history.get("val_loss", []), label="validation loss")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("Dice + CE loss")
    ax_loss.legend()
    ax_dice.plot(epochs, history.get("val_mean_dice", []), label="mean", linewidth=2)
    for key, values in history.items():
        if key.startswith("val_dice_"):
            ax_dice.plot(epochs, values, label=key[len("val_dice_"):], linestyle="--")
    ax_dice.set_xlabel("epoch")
    ax_dice.set_ylabel("validation Dice (3D, per case)")
    ax_dice.set_ylim(0, 1)
    ax_dice.legend()
    fig.tight_layout()
    with atomic_output(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=80)

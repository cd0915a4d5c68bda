"""The one rule for choosing a torch device (training, inference, CycleGAN, experiments)."""

from __future__ import annotations

import torch


def resolve_device(requested: str | torch.device | None = None) -> torch.device:
    """The torch device to run on.

    Args:
        requested: ``None`` or ``"auto"``: CUDA when available, else Apple MPS, else CPU; anything
            else (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``, a ``torch.device``) is used as given.

    Returns:
        The device. Raises ``ValueError`` naming the device when CUDA or MPS is requested but not
        available on this machine.

    Example:
        >>> resolve_device("cpu")
        device(type='cpu')
        >>> resolve_device(None).type in ("cuda", "mps", "cpu")
        True
    """
    if requested is None or requested == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(requested)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(requested)!r} requested but CUDA is not available here; use --device cpu")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {str(requested)!r} requested but MPS is not available here; use --device cpu")
    return device

"""Slice-by-slice sliding-window prediction with a 2D network.

Every slice of a (C, z, y, x) volume is covered by the same grid of (py, px) tiles that overlap by
``1 - step`` of the patch. The tiles of *all* slices are batched together through the network; each
tile's logits are weighted by a Gaussian that favours the tile centre (where the network sees the
most context) and the weighted sum is divided by the summed weights. Mirroring test-time
augmentation averages the logits of the identity, y-flip, x-flip and yx-flip passes. With
``roi_patch`` a first whole-slice pass over every other slice localizes the ventricle and the box around
it is refined on every slice. Slices smaller than the patch are zero-padded (centred) and cropped back afterwards.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch import nn

from lgeseg.evaluation.postprocessing import component_sizes
from lgeseg.inference.quality import MirrorAgreement

#: Flips (tensor dims of a (B, C, y, x) batch) used by mirroring TTA: identity, y, x, y and x.
MIRROR_AXES: tuple[tuple[int, ...], ...] = ((), (2,), (3,), (2, 3))


def gaussian_importance(patch_size: Sequence[int], sigma_scale: float = 0.125) -> torch.Tensor:
    """Gaussian weight map of shape ``patch_size`` (py, px), peak 1 at the centre, sigma = patch * sigma_scale.

    The minimum is clamped to 1e-3 of the peak so tile borders still count where only they cover a voxel.

    Example:
        >>> weights = gaussian_importance((32, 32))
        >>> tuple(weights.shape), float(weights.max()), round(float(weights.min()), 4)  # corners clamped to 1e-3
        ((32, 32), 1.0, 0.001)
    """
    axes = []
    for size in patch_size:
        coords = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
        axes.append(torch.exp(-0.5 * (coords / (size * sigma_scale)) ** 2))
    weights = axes[0][:, None] * axes[1][None, :]
    weights /= weights.max()
    return weights.clamp_(min=1e-3)


def check_step(step: float) -> float:
    """Return ``step`` if it is a tile stride fraction in (0, 1]; else raise ``ValueError`` saying so.

    Example:
        >>> check_step(0.5)
        0.5
        >>> check_step(0)
        Traceback (most recent call last):
        ValueError: step (--step): the sliding-window stride is a fraction of the patch in (0, 1] (...), found 0
    """
    if isinstance(step, bool) or not isinstance(step, numbers.Real) or not math.isfinite(step) or not 0 < step <= 1:
        raise ValueError(f"step (--step): the sliding-window stride is a fraction of the patch in (0, 1] (0.5: tiles "
                         f"overlap by half), found {step!r}")
    return float(step)


def tile_starts(size: int, patch: int, step: float) -> list[int]:
    """Start positions (voxels) of tiles of length ``patch`` covering ``size`` (>= patch) with stride <= patch*step.

    Example:
        >>> tile_starts(100, 32, 0.5), tile_starts(20, 32, 0.5)  # strides of at most 16 voxels; one tile when it fits
        ([0, 14, 27, 41, 54, 68], [0])
    """
    if size <= patch:
        return [0]
    count = math.ceil((size - patch) / (patch * step)) + 1
    return sorted({int(round(v)) for v in np.linspace(0, size - patch, count)})


def _pad_amounts(size: int, patch: int) -> tuple[int, int]:
    missing = max(patch - size, 0)
    return missing // 2, missing - missing // 2


def _forward(network: nn.Module, batch: torch.Tensor, axes: Sequence[tuple[int, ...]],
             agreement: MirrorAgreement | None = None) -> torch.Tensor:
    """Logits (B, K, py, px) in float32, averaged over the passes flipped along each entry of ``axes``.

    With ``agreement`` (and more than one pass) each pass's argmax is compared with the average's and
    the counts are added to it (``quality.MirrorAgreement``).
    """
    total: torch.Tensor | None = None
    passes: list[torch.Tensor] = []
    for dims in axes:
        x = torch.flip(batch, dims) if dims else batch
        out = network(x)
        out = out[0] if isinstance(out, (list, tuple)) else out
        out = (torch.flip(out, dims) if dims else out).float()
        if agreement is not None and len(axes) > 1:
            passes.append(out.argmax(dim=1))
        total = out if total is None else total + out
    assert total is not None  # MIRROR_AXES is never empty
    if passes and agreement is not None:
        _add_agreement(agreement, passes, total.argmax(dim=1), total.shape[1])
    return total / len(axes) if len(axes) > 1 else total


def _add_agreement(agreement: MirrorAgreement, passes: Sequence[torch.Tensor], average: torch.Tensor,
                   num_classes: int) -> None:
    """Add each pass's per-foreground-class overlap with ``average`` (class maps (B, py, px)) to ``agreement``."""
    classes = torch.arange(1, num_classes, device=average.device).view(-1, 1, 1, 1)
    average_masks = average.unsqueeze(0) == classes  # (K-1, B, py, px)
    average_size = average_masks.flatten(1).sum(dim=1)
    intersection, pass_size = [], []
    for labels in passes:
        masks = labels.unsqueeze(0) == classes
        intersection.append((masks & average_masks).flatten(1).sum(dim=1))
        pass_size.append(masks.flatten(1).sum(dim=1))
    agreement.add(torch.stack(intersection).cpu().numpy(), torch.stack(pass_size).cpu().numpy(),
                  average_size.expand(len(passes), -1).cpu().numpy())


def _batches(tiles: list[tuple[int, int, int]], batch_size: int) -> Iterator[list[tuple[int, int, int]]]:
    for start in range(0, len(tiles), batch_size):
        yield tiles[start:start + batch_size]


def default_batch_size(device: torch.device) -> int:
    """Tiles per forward pass: 4 on the CPU (more gains nothing there), 32 on a GPU.

    Example:
        >>> default_batch_size(torch.device("cpu")), default_batch_size(torch.device("cuda"))
        (4, 32)
    """
    return 32 if device.type == "cuda" else 4


class InstanceNormAsGroupNorm(nn.Module):
    """Instance normalization computed by ``group_norm`` with one group per channel (identical result).

    PyTorch's CPU ``instance_norm`` runs through ``batch_norm`` on a reshaped tensor and is several
    times slower than ``group_norm`` (and very slow on small maps when threads contend).
    """

    def __init__(self, norm: nn.InstanceNorm2d):
        super().__init__()
        self.num_channels, self.eps = norm.num_features, norm.eps
        self.weight, self.bias = norm.weight, norm.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.group_norm(x, self.num_channels, self.weight, self.bias, self.eps)


def prepare_for_inference(network: nn.Module, device: torch.device) -> nn.Module:
    """Make a network fast for inference, in place; returns it (eval mode, on ``device``, channels-last).

    Replaces ``InstanceNorm2d`` without running statistics by the identical group-norm form and uses
    the channels-last memory layout (oneDNN's fastest convolutions on the CPU, tensor cores on CUDA;
    ~15% faster than the default layout on 2 CPU cores once instance norm runs as group norm).

    Example:
        >>> from lgeseg.network import build_unet
        >>> from lgeseg.planning.topology import plan_topology
        >>> network = build_unet(plan_topology((32, 32), in_channels=1, num_classes=3, base_features=4, max_features=8))
        >>> network = prepare_for_inference(network, torch.device("cpu"))
        >>> network.training, sum(isinstance(m, InstanceNormAsGroupNorm) for m in network.modules())
        (False, 10)
    """
    for module in list(network.modules()):
        for name, child in module.named_children():
            if isinstance(child, nn.InstanceNorm2d) and not child.track_running_stats:
                if child.affine:
                    setattr(module, name, InstanceNormAsGroupNorm(child))
    network.eval().to(device)
    return network.to(memory_format=torch.channels_last)


def _slice_logits(network: nn.Module, slices: torch.Tensor, window: Sequence[int], step: float,
                  flips: Sequence[tuple[int, ...]], batch_size: int,
                  agreement: MirrorAgreement | None = None) -> torch.Tensor:
    """Gaussian-weighted tile logits (z, K, y, x) of ``slices`` (z, C, y, x), averaged over ``flips``.

    ``slices`` must be at least ``window`` (py, px) in y and x; a window equal to the slice size is
    one pass per slice with no weighting.
    """
    py, px = (int(v) for v in window)
    nz = slices.shape[0]
    ys, xs = tile_starts(slices.shape[2], py, step), tile_starts(slices.shape[3], px, step)
    single_tile = len(ys) == 1 and len(xs) == 1
    weight_tile = gaussian_importance((py, px)).to(slices.device)
    weights = torch.zeros(slices.shape[2:], device=slices.device)
    for y in ys:
        for x in xs:
            weights[y:y + py, x:x + px] += weight_tile
    logits: torch.Tensor | None = None
    tiles = [(z, y, x) for z in range(nz) for y in ys for x in xs]
    for group in _batches(tiles, batch_size):
        if single_tile:
            batch = slices[group[0][0]:group[-1][0] + 1]
        else:
            batch = torch.stack([slices[z, :, y:y + py, x:x + px] for z, y, x in group])
        out = _forward(network, batch, flips, agreement)
        if logits is None:
            logits = torch.zeros((nz, out.shape[1], *slices.shape[2:]), device=slices.device)
        if single_tile:
            logits[group[0][0]:group[-1][0] + 1] = out
            continue
        out *= weight_tile
        for (z, y, x), tile in zip(group, out, strict=True):
            logits[z, :, y:y + py, x:x + px] += tile
    assert logits is not None  # nz >= 1 tiles always exist
    return logits if single_tile else logits / weights


#: The localizing pass of the ``roi`` window predicts every ``LOCALIZE_STRIDE``-th slice (first and last included).
LOCALIZE_STRIDE = 2
#: Foreground components of the localizing pass smaller than this fraction of the largest are left out of the box.
MIN_COMPONENT_FRACTION = 0.1
#: The refining pass covers the box with one window while each side is at most this many training patches long;
#: larger boxes are covered by Gaussian-weighted training-patch tiles.
SINGLE_WINDOW_LIMIT = 1.5
#: Background logit (others 0) where the ``roi`` window predicts nothing: probability of background ~1 - 1e-13.
_BACKGROUND_LOGIT = 30.0


def localization_slices(num_slices: int, stride: int = LOCALIZE_STRIDE) -> list[int]:
    """Indices of the slices the localizing pass predicts: evenly spread, gaps at most ``stride``, ends included.

    Example:
        >>> localization_slices(9), localization_slices(2)
        ([0, 2, 4, 6, 8], [0, 1])
    """
    if num_slices <= 2:
        return list(range(num_slices))
    count = math.ceil((num_slices - 1) / stride) + 1
    return sorted({int(round(v)) for v in np.linspace(0, num_slices - 1, count)})


def ventricle_foreground(labels: np.ndarray, min_fraction: float = MIN_COMPONENT_FRACTION) -> np.ndarray:
    """Foreground of a (z, y, x) class-index map, without the small components that whole-slice passes produce in air.

    Keeps every 3D connected component (26-connectivity) of ``labels != 0`` with at least ``min_fraction``
    of the largest one's voxels. Returns a bool array of the same shape (all False without foreground).

    Example:
        >>> labels = np.zeros((2, 32, 32), int)
        >>> labels[:, 10:20, 10:20] = 1  # the ventricle: 200 voxels
        >>> labels[0, 0, 30] = 2  # one stray voxel in the air
        >>> int(ventricle_foreground(labels).sum())
        200
    """
    components, sizes = component_sizes(labels != 0)
    if len(sizes) == 1:
        return np.zeros(labels.shape, bool)
    keep = sizes >= min_fraction * sizes.max()
    keep[0] = False
    return keep[components]


def _span(low: int, high: int, size: int, minimum: int, margin: int, divisor: int) -> tuple[int, int]:
    """[start, stop) along one axis of length ``size``: ``[low, high)`` widened by ``margin`` on each side,
    to at least ``minimum``, rounded up to a multiple of ``divisor`` and shifted to lie inside the axis."""
    length = max(high - low + 2 * margin, minimum)
    length = min(-(-length // divisor) * divisor, size)
    start = min(max((low + high - length) // 2, 0), size - length)
    return start, start + length


def foreground_box(foreground: np.ndarray, minimum: Sequence[int], divisor: Sequence[int],
                   margin_fraction: float = 0.125) -> tuple[slice, slice] | None:
    """The in-plane region to refine: where any slice has foreground, plus a margin.

    Args:
        foreground: (z, y, x) bool, e.g. ``ventricle_foreground`` of the localizing pass.
        minimum: (my, mx) smallest region, voxels (the training patch, so the network sees as much context
            as in training).
        divisor: (dy, dx); the region's size is a multiple of these (a valid network input).
        margin_fraction: margin on each side, as a fraction of ``minimum``.

    Returns:
        (y slice, x slice) into the last two axes, or None when nothing is foreground.

    Example:
        >>> foreground = np.zeros((2, 64, 64), bool)
        >>> foreground[:, 20:30, 24:40] = True
        >>> foreground_box(foreground, minimum=(32, 32), divisor=(8, 8))  # widened to the 32 x 32 training patch
        (slice(9, 41, None), slice(16, 48, None))
    """
    plane = np.asarray(foreground, bool).any(axis=0)  # (y, x)
    if not plane.any():
        return None
    box = []
    for axis, (lowest, dim) in enumerate(zip(minimum, divisor, strict=True)):
        hits = np.flatnonzero(plane.any(axis=1 - axis))
        size = plane.shape[axis]
        start, stop = _span(int(hits[0]), int(hits[-1]) + 1, size, min(int(lowest), size),
                            int(round(lowest * margin_fraction)), int(dim))
        box.append(slice(start, stop))
    return box[0], box[1]


def refine_window(region: Sequence[int], patch: Sequence[int], limit: float = SINGLE_WINDOW_LIMIT) -> tuple[int, int]:
    """(wy, wx) window of the refining pass over a ``region`` (y, x) box, voxels.

    The whole region in one window while each side is at most ``limit`` training patches (a box around the
    ventricle looks like a training patch to the network, and one window costs far less than overlapping
    tiles); otherwise training-patch tiles (or the region's side where it is smaller).

    Example:
        >>> refine_window((40, 40), (32, 32)), refine_window((80, 40), (32, 32))  # one window; tiles when too long
        ((40, 40), (32, 32))
    """
    if all(n <= limit * p for n, p in zip(region, patch, strict=True)):
        return int(region[0]), int(region[1])
    return min(int(patch[0]), int(region[0])), min(int(patch[1]), int(region[1]))


def _localize_and_refine(network: nn.Module, slices: torch.Tensor, coarse_window: Sequence[int], step: float,
                         flips: Sequence[tuple[int, ...]], batch_size: int, roi_patch: Sequence[int],
                         agreement: MirrorAgreement | None = None) -> torch.Tensor:
    """Logits (z, K, y, x) of the ``roi`` window (see ``predict_slices``); background-certain outside the box.

    ``coarse_window`` is the localizing pass's window; the refining pass picks its own (``refine_window``).
    """
    chosen = localization_slices(slices.shape[0])
    coarse = _slice_logits(network, slices[chosen], coarse_window, step, ((),), batch_size)
    foreground = ventricle_foreground(coarse.argmax(dim=1).cpu().numpy())
    box = foreground_box(foreground, roi_patch, getattr(network, "divisor", (1, 1)))
    if box is None:  # nothing found: nnU-Net's sliding window of training-patch tiles over the whole slices
        box = (slice(0, slices.shape[2]), slice(0, slices.shape[3]))
        window = tuple(min(int(r), n) for r, n in zip(roi_patch, slices.shape[2:], strict=True))
    else:
        window = refine_window((box[0].stop - box[0].start, box[1].stop - box[1].start), roi_patch)
    refined = _slice_logits(network, slices[:, :, box[0], box[1]], window, step, flips, batch_size, agreement)
    logits = torch.zeros((slices.shape[0], refined.shape[1], *slices.shape[2:]), device=slices.device)
    logits[:, 0] = _BACKGROUND_LOGIT
    logits[:, :, box[0], box[1]] = refined
    return logits


@torch.inference_mode()
def predict_slices(network: nn.Module, image: torch.Tensor, patch_size: Sequence[int], step: float = 0.5,
                   mirroring: bool = True, batch_size: int | None = None,
                   device: str | torch.device | None = None, roi_patch: Sequence[int] | None = None,
                   agreement: MirrorAgreement | None = None) -> np.ndarray:
    """Class probabilities of every voxel of a volume, predicted slice by slice.

    Args:
        network: 2D network in eval mode mapping (B, C, py, px) to logits (B, K, py, px) (or a list
            whose first entry is those logits); already on ``device``.
        image: (C, z, y, x) float32 tensor, preprocessed (normalized, at the model's spacing).
        patch_size: (py, px) voxels, the network's input size: the whole padded slice, or the tile size.
        step: tile stride as a fraction of the tile (0.5: tiles overlap by half).
        mirroring: average over in-plane flips (4 forward passes per tile).
        batch_size: tiles per forward pass (None: ``default_batch_size``).
        device: where the network runs (None: the network's device).
        roi_patch: (ry, rx) voxels, the training patch; turns on *localize, then refine*: one unmirrored
            pass with ``patch_size`` windows over every other slice (``localization_slices``) finds the
            ventricle; the box around its big components (``ventricle_foreground``, ``foreground_box``:
            widened by 1/8 patch, at least the patch) is then predicted on every slice, with the flips when
            ``mirroring``, in one window while it is at most 1.5 patches a side (``refine_window``), else
            with Gaussian-weighted ``roi_patch`` tiles. Outside the box every voxel is background. When
            nothing is found, tiles cover the whole slices (nnU-Net's sliding window). None, or a
            ``roi_patch`` as large as the slices: plain passes with ``patch_size`` windows.
        agreement: with ``mirroring``, receives how each flipped pass's labels agree with the
            flip-averaged labels, tile by tile (``quality.MirrorAgreement``; the per-case mirror
            disagreement of the quality report); untouched without mirroring.

    Returns:
        float32 NumPy array (K, z, y, x): softmax of the (Gaussian-weighted, flip-averaged) logits.

    Runs in float32 on every device: on an H200 a 12 x 256 x 256 case takes ~20 ms in bf16, so
    reduced precision buys nothing noticeable next to start-up, and bf16 moved ~2% of the argmax
    labels of an (untrained) default network against float32.

    Example:
        >>> from lgeseg.network import build_unet
        >>> from lgeseg.planning.topology import plan_topology
        >>> network = build_unet(plan_topology((32, 32), in_channels=1, num_classes=3, base_features=4, max_features=8))
        >>> network = prepare_for_inference(network, torch.device("cpu"))
        >>> probabilities = predict_slices(network, torch.zeros(1, 3, 40, 50), (48, 56), mirroring=False)
        >>> probabilities.shape, bool(np.allclose(probabilities.sum(axis=0), 1.0, atol=1e-5))  # (K, z, y, x)
        ((3, 3, 40, 50), True)
    """
    if image.ndim != 4:
        raise ValueError(f"predict_slices: expected image (C, z, y, x), found shape {tuple(image.shape)}")
    check_step(step)
    device = torch.device(device) if device is not None else next(network.parameters()).device
    py, px = (int(v) for v in patch_size)
    _, nz, ny, nx = image.shape
    (y0, y1), (x0, x1) = _pad_amounts(ny, py), _pad_amounts(nx, px)
    slices = image.to(device=device, dtype=torch.float32).permute(1, 0, 2, 3)  # (z, C, y, x)
    if y0 or y1 or x0 or x1:
        slices = torch.nn.functional.pad(slices, (x0, x1, y0, y1))
    slices = slices.contiguous(memory_format=torch.channels_last)
    batch_size = batch_size or default_batch_size(device)
    flips = MIRROR_AXES if mirroring else ((),)
    if roi_patch is None or all(int(r) >= n for r, n in zip(roi_patch, slices.shape[2:], strict=True)):
        logits = _slice_logits(network, slices, (py, px), step, flips, batch_size, agreement)
    else:
        logits = _localize_and_refine(network, slices, (py, px), step, flips, batch_size, roi_patch, agreement)
    logits = logits[:, :, y0:y0 + ny, x0:x0 + nx]
    probabilities = torch.softmax(logits, dim=1).permute(1, 0, 2, 3)  # (K, z, y, x)
    return probabilities.contiguous().cpu().numpy()

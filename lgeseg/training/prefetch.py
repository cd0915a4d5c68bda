"""Host-to-device copies of training batches, one batch ahead on a side CUDA stream.

``BatchLoader`` hands over pinned CPU batches; ``to_device`` copies batch ``i + 1`` on its own
stream while the training step of batch ``i`` runs on the compute stream (double buffering), and
makes the compute stream wait for a copy only when it needs that batch. Nothing waits on the host.
On the CPU (or with ``overlap=False``) it is a plain ``.to(device)`` per batch.

Usage::

    for images, labels in to_device(BatchLoader(sampler, 100, (0, 0), pin_memory=True), device):
        ...  # images and labels are on the device
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import torch

Batch = tuple[torch.Tensor, ...]


def to_device(batches: Iterable[Batch], device: torch.device, overlap: bool = True) -> Iterator[Batch]:
    """Yield each batch (a tuple of CPU tensors) on ``device``, in order.

    Args:
        batches: tuples of CPU tensors; pinned ones copy asynchronously.
        device: target device.
        overlap: on CUDA, copy the next batch on a side stream while the current one is used
            (one extra batch held on the device); ignored elsewhere.

    Example:
        >>> batches = [(torch.zeros(2, 1, 4, 4), torch.ones(2, 4, 4)) for _ in range(3)]
        >>> [(images.device.type, tuple(labels.shape)) for images, labels in to_device(batches, torch.device("cpu"))]
        [('cpu', (2, 4, 4)), ('cpu', (2, 4, 4)), ('cpu', (2, 4, 4))]
    """
    if device.type != "cuda" or not overlap:
        for batch in batches:
            yield tuple(t.to(device, non_blocking=True) for t in batch)
        return
    copy_stream = torch.cuda.Stream(device)
    compute_stream = torch.cuda.current_stream(device)
    iterator = iter(batches)
    pending = _copy(next(iterator, None), device, copy_stream)
    while pending is not None:
        compute_stream.wait_stream(copy_stream)
        for tensor in pending:
            tensor.record_stream(compute_stream)  # its memory is not reused before the compute stream is done
        current, pending = pending, _copy(next(iterator, None), device, copy_stream)
        yield current


def _copy(batch: Batch | None, device: torch.device, stream: torch.cuda.Stream) -> Batch | None:
    if batch is None:
        return None
    with torch.cuda.stream(stream):
        return tuple(t.to(device, non_blocking=True) for t in batch)

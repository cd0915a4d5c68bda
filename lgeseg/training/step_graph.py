"""The whole training step as one CUDA graph: captured once, replayed every step.

A training step launches hundreds of small kernels (forward, Dice + CE of every deep-supervision
output, backward, gradient clipping, optimizer). ``torch.compile(mode="reduce-overhead")`` replays
the network's forward and backward as CUDA graphs; the recipe field ``cuda_graph`` captures the
whole step instead, loss, clipping and optimizer included, so one replay launches all of it.

How ``StepGraph.step`` goes: the first ``WARMUP_STEPS`` steps run eagerly on a side stream (lazy
initialisation: cuDNN and cuBLAS handles, the optimizer's state, ``torch.compile``'s compilation);
the next one copies its batch into static input buffers, captures forward, loss, backward,
clipping and optimizer step into a ``torch.cuda.CUDAGraph`` and replays it; every later step copies
its batch into the buffers and replays. These are all real training steps. A new batch shape or
learning rate (a constant inside the graph) starts this over.

Limits: CUDA only, one process (the data-parallel gradient all-reduce is not captured), an
optimizer that can be captured (``build_state`` makes Adam ``capturable``), and no
``torch.compile`` mode that makes CUDA graphs of its own. The augmentation runs before, outside
the graph (eagerly, without host synchronisation: ``augmentation.apply_intensity``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

#: Eager steps before a capture.
WARMUP_STEPS = 3

#: ``compute(images, labels) -> loss``: forward, loss, backward, clipping and optimizer step (no zero_grad).
StepCompute = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class StepGraph:
    """Captures and replays one training step; ``step`` is called instead of the eager step.

    Attributes:
        captures: how many times the step was captured (a new batch shape or learning rate captures again).
    """

    def __init__(self) -> None:
        self.captures = 0
        self._graph: torch.cuda.CUDAGraph | None = None
        self._key: tuple | None = None
        self._eager_steps = 0
        self._images: torch.Tensor | None = None
        self._labels: torch.Tensor | None = None
        self._loss: torch.Tensor | None = None

    def reset(self) -> None:
        """Drop the captured graph (e.g. after the optimizer's state was replaced); the next steps capture anew."""
        self._graph, self._key, self._eager_steps = None, None, 0
        self._images = self._labels = self._loss = None

    def step(self, optimizer: torch.optim.Optimizer, compute: StepCompute, images: torch.Tensor,
             labels: torch.Tensor) -> torch.Tensor:
        """One training step on ``images``/``labels`` (CUDA tensors of a fixed shape); the loss as a new tensor.

        ``compute`` must do the whole step after ``zero_grad`` and never synchronise with the host
        (a synchronisation during capture raises CUDA's "operation not permitted when stream is
        capturing"). ``optimizer`` is the one ``compute`` steps.
        """
        key = (tuple(images.shape), images.dtype, images.stride(), tuple(labels.shape), labels.dtype,
               tuple(group["lr"] for group in optimizer.param_groups))
        if key != self._key:
            self.reset()
            self._key = key
        if self._graph is None and self._eager_steps < WARMUP_STEPS:
            self._eager_steps += 1
            return _side_stream_step(optimizer, compute, images, labels)
        if self._graph is None:
            self._capture(optimizer, compute, images, labels)
        else:
            self._images.copy_(images)
            self._labels.copy_(labels)
        self._graph.replay()
        return self._loss.clone()

    def _capture(self, optimizer: torch.optim.Optimizer, compute: StepCompute, images: torch.Tensor,
                 labels: torch.Tensor) -> None:
        self._images, self._labels = images.clone(), labels.clone()  # clone keeps the memory format
        optimizer.zero_grad(set_to_none=True)  # the gradients are then allocated inside the graph's memory
        graph = torch.cuda.CUDAGraph()
        # thread_local: the loader threads may pin memory meanwhile (as torch.compile's CUDA graphs allow)
        with torch.cuda.graph(graph, capture_error_mode="thread_local"):
            self._loss = compute(self._images, self._labels)
        self._graph = graph
        self.captures += 1


def _side_stream_step(optimizer: torch.optim.Optimizer, compute: StepCompute, images: torch.Tensor,
                      labels: torch.Tensor) -> torch.Tensor:
    """An eager step on a side stream, as CUDA graph capture needs before it (PyTorch's CUDA graph notes)."""
    main, side = torch.cuda.current_stream(), torch.cuda.Stream()
    side.wait_stream(main)
    with torch.cuda.stream(side):
        optimizer.zero_grad(set_to_none=True)
        loss = compute(images, labels)
    main.wait_stream(side)
    return loss

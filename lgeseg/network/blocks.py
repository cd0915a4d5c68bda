"""Building blocks of the 2D U-Net: stacked conv–InstanceNorm–LeakyReLU and the decoder stage.

All tensors are ``(batch, channels, y, x)``. Blocks contain no Python loops over the batch and no
data-dependent control flow, so they work with ``torch.compile``, ``torch.autocast`` and the
``channels_last`` memory format.
"""

from __future__ import annotations

import torch
from torch import nn

#: Negative slope of every LeakyReLU (nnU-Net's and the paper's choice).
LEAKY_SLOPE: float = 1e-2


def _padding(kernel_size: tuple[int, int]) -> tuple[int, int]:
    """'Same' padding for odd kernels, in voxels (y, x)."""
    return (kernel_size[0] // 2, kernel_size[1] // 2)


class ConvNormAct(nn.Sequential):
    """One Conv2d -> InstanceNorm2d(affine, no running stats) -> LeakyReLU(0.01).

    Args:
        in_channels: input feature maps.
        out_channels: output feature maps.
        kernel_size: (ky, kx) voxels, odd.
        stride: (sy, sx); a stride > 1 downsamples.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: tuple[int, int], stride: tuple[int, int]):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=_padding(kernel_size)),
            nn.InstanceNorm2d(out_channels, affine=True, track_running_stats=False),
            nn.LeakyReLU(LEAKY_SLOPE, inplace=True),
        )


class StackedConvs(nn.Sequential):
    """``num_convs`` ConvNormAct layers; the first carries the stage's stride.

    Args:
        in_channels: input feature maps.
        out_channels: feature maps of every layer.
        kernel_size: (ky, kx) voxels.
        stride: (sy, sx) of the first convolution (later ones use 1).
        num_convs: number of layers (2 in the paper).

    Example:
        >>> block = StackedConvs(1, 32, (3, 3), (2, 2), 2)
        >>> block(torch.zeros(1, 1, 64, 64)).shape
        torch.Size([1, 32, 32, 32])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: tuple[int, int],
        stride: tuple[int, int],
        num_convs: int,
    ):
        layers = [ConvNormAct(in_channels, out_channels, kernel_size, stride)]
        layers += [ConvNormAct(out_channels, out_channels, kernel_size, (1, 1)) for _ in range(num_convs - 1)]
        super().__init__(*layers)


class DecoderBlock(nn.Module):
    """Transposed-conv upsampling, concatenation with the skip, then stacked convs.

    Args:
        in_channels: channels of the coarser decoder (or bottleneck) features.
        skip_channels: channels of the encoder skip at the target resolution; also the output width.
        kernel_size: (ky, kx) of the stacked convs.
        upsample_stride: (sy, sx); the transposed conv uses kernel = stride, so it exactly undoes
            the encoder stage's downsampling.
        num_convs: convolutions after the concatenation.
    """

    def __init__(
        self,
        in_channels: int,
        skip_channels: int,
        kernel_size: tuple[int, int],
        upsample_stride: tuple[int, int],
        num_convs: int,
    ):
        super().__init__()
        self.upsample = nn.ConvTranspose2d(
            in_channels, skip_channels, upsample_stride, stride=upsample_stride, bias=True
        )
        self.convs = StackedConvs(2 * skip_channels, skip_channels, kernel_size, (1, 1), num_convs)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        """Upsample ``x`` (B, in, y, x) to the skip's grid, concatenate, convolve -> (B, skip, Y, X)."""
        return self.convs(torch.cat((self.upsample(x), skip), dim=1))


def init_weights(module: nn.Module, generator: torch.Generator | None = None) -> None:
    """Kaiming-normal (a=1e-2) weights and zero bias for every (transposed) conv in ``module``.

    Args:
        module: the network; modified in place.
        generator: CPU generator for reproducible weights (None: torch's global generator).

    Example:
        >>> network = nn.Sequential(nn.Conv2d(1, 4, 3), nn.InstanceNorm2d(4, affine=True), nn.Conv2d(4, 4, 3))
        >>> init_weights(network, torch.Generator().manual_seed(0))
        >>> weights = network[0].weight.clone()
        >>> init_weights(network, torch.Generator().manual_seed(0))
        >>> torch.equal(weights, network[0].weight), int(network[0].bias.count_nonzero())  # reproducible; zero bias
        (True, 0)
    """
    for sub in module.modules():
        if isinstance(sub, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.kaiming_normal_(sub.weight, a=LEAKY_SLOPE, generator=generator)
            if sub.bias is not None:
                nn.init.zeros_(sub.bias)

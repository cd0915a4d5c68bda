"""CycleGAN networks: a ResNet-block generator and a PatchGAN discriminator (2D, InstanceNorm).

Both are fully convolutional, so a generator trained on patches translates whole slices of any
size (padded to a multiple of ``2 ** downsamplings``) without moving anything: output pixel (y, x)
is computed from the input around (y, x).
"""

from __future__ import annotations

import torch
from torch import nn


class ResidualBlock(nn.Module):
    """Two reflect-padded 3x3 convolutions with InstanceNorm and a skip connection; keeps (B, C, H, W)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), nn.InstanceNorm2d(channels), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), nn.InstanceNorm2d(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H, W)."""
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    """Image-to-image generator: 7x7 stem, strided downsampling, residual blocks, transposed-conv upsampling.

    Args:
        in_channels: image channels (input and output).
        features: channels after the stem; doubled at each downsampling.
        blocks: residual blocks at the bottleneck.
        downsamplings: stride-2 steps; H and W must be multiples of ``2 ** downsamplings``.

    Input and output are (B, C, H, W) with intensities in [-1, 1] (tanh output).
    """

    def __init__(self, in_channels: int = 1, features: int = 16, blocks: int = 4, downsamplings: int = 2) -> None:
        super().__init__()
        self.downsamplings = downsamplings
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(in_channels, features, 7),
                                   nn.InstanceNorm2d(features), nn.ReLU(True)]
        width = features
        for _ in range(downsamplings):
            layers += [nn.Conv2d(width, width * 2, 3, stride=2, padding=1), nn.InstanceNorm2d(width * 2), nn.ReLU(True)]
            width *= 2
        layers += [ResidualBlock(width) for _ in range(blocks)]
        for _ in range(downsamplings):
            layers += [nn.ConvTranspose2d(width, width // 2, 3, stride=2, padding=1, output_padding=1),
                       nn.InstanceNorm2d(width // 2), nn.ReLU(True)]
            width //= 2
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(width, in_channels, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    @property
    def size_multiple(self) -> int:
        """H and W of the input must be multiples of this (voxels)."""
        return 2 ** self.downsamplings

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) in [-1, 1] -> (B, C, H, W) in [-1, 1]."""
        return self.model(x)


class PatchDiscriminator(nn.Module):
    """PatchGAN discriminator: a map of real/fake scores, one per overlapping input patch.

    Args:
        in_channels: image channels.
        features: channels of the first layer; doubled per layer up to 8x.
        layers: stride-2 layers (3 gives 70x70 receptive fields).

    ``forward`` maps (B, C, H, W) to unbounded scores (B, 1, h, w) (least-squares GAN: no sigmoid).
    """

    def __init__(self, in_channels: int = 1, features: int = 16, layers: int = 3) -> None:
        super().__init__()
        modules: list[nn.Module] = [nn.Conv2d(in_channels, features, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        width = features
        for index in range(1, layers + 1):
            new_width = features * min(2 ** index, 8)
            stride = 2 if index < layers else 1
            modules += [nn.Conv2d(width, new_width, 4, stride=stride, padding=1), nn.InstanceNorm2d(new_width),
                        nn.LeakyReLU(0.2, True)]
            width = new_width
        modules.append(nn.Conv2d(width, 1, 4, stride=1, padding=1))
        self.model = nn.Sequential(*modules)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, 1, h, w) scores."""
        return self.model(x)


def init_weights(module: nn.Module, seed: int, std: float = 0.02) -> None:
    """Initialise conv weights from N(0, ``std``) (seeded by ``seed``) and biases to 0, in place.

    N(0, 0.02) is the CycleGAN paper's choice.

    Example:
        >>> network = nn.Sequential(nn.Conv2d(1, 64, 3), nn.ReLU(), nn.Conv2d(64, 64, 3))
        >>> init_weights(network, seed=0)
        >>> round(float(network[2].weight.detach().std()), 2), int(network[2].bias.count_nonzero())
        (0.02, 0)
    """
    generator = torch.Generator().manual_seed(seed)
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
            with torch.no_grad():
                layer.weight.copy_(torch.randn(layer.weight.shape, generator=generator) * std)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)

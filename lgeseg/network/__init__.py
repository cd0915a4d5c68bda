"""2D U-Net (``build_unet``) with numbered encoder/decoder blocks for block-wise fine-tuning."""

from lgeseg.network.unet import UNet2D, build_unet, count_parameters, select_trainable

__all__ = ["UNet2D", "build_unet", "count_parameters", "select_trainable"]

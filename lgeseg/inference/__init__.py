"""Inference: sliding-window prediction of folders of images with one or several trained models."""

from lgeseg.inference.predictor import load_models, predict_folder, predict_volume
from lgeseg.inference.sliding_window import predict_slices

__all__ = ["load_models", "predict_folder", "predict_slices", "predict_volume"]

"""Inference: segment images with one or several trained models (``Predictor``, ``PredictionSettings``)."""

from lgeseg.inference.ensemble import load_models, predict_volume
from lgeseg.inference.prediction_settings import PredictionSettings
from lgeseg.inference.predictor import CasePrediction, FolderPrediction, Predictor, predict_folder
from lgeseg.inference.sliding_window import predict_slices

__all__ = ["CasePrediction", "FolderPrediction", "PredictionSettings", "Predictor", "load_models", "predict_folder",
           "predict_slices", "predict_volume"]

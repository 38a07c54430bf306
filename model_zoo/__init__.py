"""Model zoo: architectures (torch), registry, training, ONNX export, model cards, runtime.

Only torch-free modules are imported here (registry, cards, runtime, failover): an
inference-only install needs onnxruntime + numpy. Training/export/architecture modules
import torch and are imported by their full names (``effnet_trading.model_zoo.train``).
"""

from effnet_trading.model_zoo.card import ModelCard, load_card
from effnet_trading.model_zoo.failover import FailoverPredictor, RuleBasedPredictor
from effnet_trading.model_zoo.registry import create_model, list_models, model_info, register_model
from effnet_trading.model_zoo.runtime import Predictor

__all__ = [
    "create_model",
    "list_models",
    "model_info",
    "register_model",
    "ModelCard",
    "load_card",
    "Predictor",
    "FailoverPredictor",
    "RuleBasedPredictor",
]

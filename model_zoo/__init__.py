"""Model zoo: architectures (torch), registry, training, ONNX export, model cards, runtime.

Only the runtime and card modules are imported here: they need onnxruntime + numpy, never torch.
"""
from effnet_trading.model_zoo.registry import create_model, list_models, model_info, register_model

__all__ = ["create_model", "list_models", "model_info", "register_model"]

"""Model loading: ``load_model(spec, weights, device) -> ModelBundle`` and layer discovery."""

from convscope.models.bundle import ModelBundle, Preprocessing
from convscope.models.layers import LayerInfo, discover_layers, resolve_layer
from convscope.models.loader import DEFAULT_MODEL, load_model
from convscope.models.zoo import list_models

__all__ = [
    "DEFAULT_MODEL",
    "LayerInfo",
    "ModelBundle",
    "Preprocessing",
    "discover_layers",
    "list_models",
    "load_model",
    "resolve_layer",
]

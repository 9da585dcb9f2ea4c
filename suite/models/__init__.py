"""Model builders, named tiny configs, parameter counting and safetensors io."""
from .build import build_model, is_tiny, model_shape
from .heads import HiddenStatesLM
from .io import save_pretrained
from .params import count_non_embedding, count_parameters, forward_flops_per_token
from .tiny import TINY, TinyConfig, tiny_config

__all__ = ["HiddenStatesLM", "build_model", "is_tiny", "model_shape", "save_pretrained", "count_non_embedding",
           "count_parameters", "forward_flops_per_token", "TINY", "TinyConfig", "tiny_config"]

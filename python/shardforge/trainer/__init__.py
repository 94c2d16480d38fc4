"""The trainer: a Llama-style model and its configuration (issue 6 builds the rest here).
Needs the `train` extra (torch, triton)."""

from shardforge.trainer.config import SIZES, ModelConfig, model_config
from shardforge.trainer.model import Transformer

__all__ = ["SIZES", "ModelConfig", "Transformer", "model_config"]

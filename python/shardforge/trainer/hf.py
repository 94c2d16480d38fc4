"""Export to the Hugging Face Llama format (`config.json` + `model.safetensors`) and import back.
The layouts agree as they are: both rotate the two halves of each head (HF's `rotate_half`), so no
weight is permuted."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from shardforge.trainer.config import ModelConfig
from shardforge.trainer.model import Transformer

# Our parameter names → HF Llama's, per layer and for the rest.
_LAYER = {
    "attn.q.weight": "self_attn.q_proj.weight",
    "attn.k.weight": "self_attn.k_proj.weight",
    "attn.v.weight": "self_attn.v_proj.weight",
    "attn.o.weight": "self_attn.o_proj.weight",
    "mlp.gate.weight": "mlp.gate_proj.weight",
    "mlp.up.weight": "mlp.up_proj.weight",
    "mlp.down.weight": "mlp.down_proj.weight",
    "attn_norm.weight": "input_layernorm.weight",
    "mlp_norm.weight": "post_attention_layernorm.weight",
}
_TOP = {
    "embed.weight": "model.embed_tokens.weight",
    "norm.weight": "model.norm.weight",
    "lm_head.weight": "lm_head.weight",
}


def _hf_name(name: str) -> str:
    if name in _TOP:
        return _TOP[name]
    _, i, rest = name.split(".", 2)
    return f"model.layers.{i}.{_LAYER[rest]}"


def hf_config(cfg: ModelConfig, dtype: torch.dtype = torch.float32) -> dict[str, Any]:
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.dim,
        "intermediate_size": cfg.hidden_dim,
        "num_hidden_layers": cfg.n_layers,
        "num_attention_heads": cfg.n_heads,
        "num_key_value_heads": cfg.n_kv_heads,
        "head_dim": cfg.head_dim,
        "hidden_act": "silu",
        "rms_norm_eps": cfg.norm_eps,
        "rope_theta": cfg.rope_base,
        "rope_parameters": {"rope_type": "default", "rope_theta": cfg.rope_base},
        "max_position_embeddings": cfg.max_seq_len,
        "tie_word_embeddings": cfg.tie_embeddings,
        "attention_bias": False,
        "mlp_bias": False,
        "torch_dtype": str(dtype).removeprefix("torch."),
    }


def export_hf(model: Transformer, out: str | os.PathLike[str], dtype: torch.dtype = torch.float32) -> Path:
    """Write `model` as a HF Llama checkpoint directory (atomically: a temporary directory renamed)."""
    from safetensors.torch import save_file

    cfg = model.cfg
    if cfg.qk_norm:
        raise ValueError("HF Llama has no QK-norm; a model with qk_norm cannot be exported as Llama")
    if cfg.mup:
        raise ValueError(
            "HF Llama has no muP output multiplier or 1/d attention scale; a model with mup cannot be "
            "exported as Llama"
        )
    out = Path(out)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    tensors = {
        _hf_name(n): p.detach().to("cpu", dtype).contiguous()
        for n, p in model.state_dict().items()
        if not (cfg.tie_embeddings and n == "lm_head.weight")
    }
    save_file(tensors, str(tmp / "model.safetensors"), metadata={"format": "pt"})
    (tmp / "config.json").write_text(json.dumps(hf_config(cfg, dtype), indent=2))
    if out.exists():
        import shutil

        shutil.rmtree(out)
    os.replace(tmp, out)
    return out


def import_hf(path: str | os.PathLike[str], **changes: Any) -> Transformer:
    """A `Transformer` from a HF Llama checkpoint directory (one `model.safetensors`)."""
    from safetensors.torch import load_file

    path = Path(path)
    c = json.loads((path / "config.json").read_text())
    if c.get("model_type") != "llama":
        raise ValueError(f"{path}/config.json: model_type {c.get('model_type')!r}, expected 'llama'")
    rope = c.get("rope_parameters") or {}
    cfg = ModelConfig(
        vocab_size=c["vocab_size"],
        dim=c["hidden_size"],
        n_layers=c["num_hidden_layers"],
        n_heads=c["num_attention_heads"],
        n_kv_heads=c.get("num_key_value_heads", c["num_attention_heads"]),
        ffn_dim=c["intermediate_size"],
        norm_eps=c["rms_norm_eps"],
        rope_base=rope.get("rope_theta", c.get("rope_theta", 10000.0)),
        max_seq_len=c.get("max_position_embeddings", 2048),
        tie_embeddings=c.get("tie_word_embeddings", False),
    ).with_(**changes)
    with torch.device("meta"):  # no memory or initialisation for weights about to be replaced
        model = Transformer(cfg)
    tensors = load_file(str(path / "model.safetensors"))
    state = {}
    for name in model.state_dict():
        hf = _hf_name(name)
        if cfg.tie_embeddings and name == "lm_head.weight":
            hf = _TOP["embed.weight"]
        if hf not in tensors:
            raise ValueError(f"{path}/model.safetensors: missing {hf}")
        state[name] = tensors[hf].float()
    model.load_state_dict(state, assign=True)
    if cfg.tie_embeddings:
        model.lm_head.weight = model.embed.weight  # `assign` gave each name its own parameter
    return model

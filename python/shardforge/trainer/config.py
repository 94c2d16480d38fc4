"""The model's configuration and its named sizes."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields, replace
from typing import Any


@dataclass(frozen=True)
class ModelConfig:
    """A Llama-style decoder. `ffn_dim` defaults to Llama's rule (8/3 of `dim`, rounded up to a
    multiple of 256)."""

    vocab_size: int = 32000
    dim: int = 256
    n_layers: int = 4
    n_heads: int = 4
    n_kv_heads: int = 2
    ffn_dim: int | None = None
    norm_eps: float = 1e-5
    rope_base: float = 10000.0
    max_seq_len: int = 2048
    tie_embeddings: bool = False
    qk_norm: bool = False
    z_loss: float = 0.0
    # Attention only within each document, from the loader's position ids.
    doc_masking: bool = True
    # Triton kernels (RMSNorm, SwiGLU, RoPE, fused LM head + loss) instead of plain PyTorch.
    kernels: bool = False
    init_std: float = 0.02
    # μP (Tensor Programs V): hyperparameters tuned at `mup_base_width` carry over to any `dim`.
    # The base model has the same heads (each head widens with `dim`) and the same `ffn_dim` if set.
    mup: bool = False
    mup_base_width: int = 256

    def __post_init__(self) -> None:
        if self.dim % self.n_heads:
            raise ValueError(f"dim {self.dim} is not a multiple of n_heads {self.n_heads}")
        if self.n_heads % self.n_kv_heads:
            raise ValueError(f"n_heads {self.n_heads} is not a multiple of n_kv_heads {self.n_kv_heads}")
        if (self.dim // self.n_heads) % 2:
            raise ValueError(f"head_dim {self.dim // self.n_heads} must be even for RoPE")
        if self.mup:
            try:
                _ = self.mup_base  # replace() validates the base model's sizes
            except ValueError as e:
                raise ValueError(f"mup_base_width {self.mup_base_width}: {e}") from None

    @property
    def mup_base(self) -> ModelConfig:
        """The base-width model whose hyperparameters μP transfers: this one at `mup_base_width`."""
        return replace(self, dim=self.mup_base_width, mup=False)

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads

    @property
    def hidden_dim(self) -> int:
        if self.ffn_dim is not None:
            return self.ffn_dim
        return -(-int(8 * self.dim / 3) // 256) * 256

    def with_(self, **changes: Any) -> ModelConfig:
        check_keys("model_overrides", changes, ModelConfig)
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def num_params(self, embeddings: bool = True) -> int:
        d, h, kv, hd = self.dim, self.n_heads, self.n_kv_heads, self.head_dim
        attn = d * h * hd + 2 * d * kv * hd + h * hd * d
        mlp = 3 * d * self.hidden_dim
        norms = 2 * d + (2 * hd if self.qk_norm else 0)
        body = self.n_layers * (attn + mlp + norms) + d
        emb = self.vocab_size * d * (1 if self.tie_embeddings else 2)
        return body + (emb if embeddings else 0)

    def flops_per_token(self, seq_len: int) -> int:
        """Training FLOPs per token: 6 × the non-embedding matmul parameters (plus the LM head)
        and the attention score terms (PaLM appendix B)."""
        matmul = self.num_params(embeddings=False) + self.vocab_size * self.dim
        return 6 * matmul + 12 * self.n_layers * self.dim * seq_len


SIZES: dict[str, ModelConfig] = {
    # Trains in seconds on a CPU.
    "debug": ModelConfig(dim=128, n_layers=4, n_heads=4, n_kv_heads=2, max_seq_len=512),
    "125m": ModelConfig(dim=768, n_layers=12, n_heads=12, n_kv_heads=4, tie_embeddings=True),
    "1b": ModelConfig(dim=2048, n_layers=16, n_heads=32, n_kv_heads=8, ffn_dim=8192, rope_base=500000.0),
    "8b": ModelConfig(
        vocab_size=128256,
        dim=4096,
        n_layers=32,
        n_heads=32,
        n_kv_heads=8,
        ffn_dim=14336,
        rope_base=500000.0,
        max_seq_len=8192,
    ),
}


def model_config(size: str, **changes: Any) -> ModelConfig:
    if size not in SIZES:
        raise ValueError(f"unknown model size {size!r}; known: {sorted(SIZES)}")
    return SIZES[size].with_(**changes)


def check_keys(section: str, keys: Iterable[str], cls: type) -> None:
    """A `ValueError` naming every key of `section` that the dataclass `cls` has no field for, each
    with the nearest field names: a typo would otherwise surface as a `TypeError` deep in a run."""
    known = [f.name for f in fields(cls)]
    wrong = [k for k in keys if k not in known]
    if not wrong:
        return
    hints = []
    for k in wrong:
        near = difflib.get_close_matches(k, known, n=2)
        hints.append(f"{k!r}" + (f" (did you mean {' or '.join(map(repr, near))}?)" if near else ""))
    raise ValueError(
        f"{section}: unknown key{'s' * (len(wrong) > 1)} {', '.join(hints)}; known: {', '.join(known)}"
    )

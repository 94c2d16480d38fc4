"""A Llama-style decoder: RMSNorm, RoPE, grouped-query attention through
`scaled_dot_product_attention` (within each document when the loader's position ids are given),
SwiGLU MLP, optional QK-norm and z-loss, tied or untied embeddings, optionally μP's init and
multipliers (`shardforge.trainer.mup`). `TransformerStage` is a run of its layers for pipeline
parallelism, under the whole model's parameter names.

`ModelConfig.kernels` switches RMSNorm, SwiGLU, RoPE and the LM head + loss between the Triton
kernels (`shardforge.kernels`) and plain PyTorch; the two compute the same function."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributed.tensor import DTensor, distribute_tensor

from shardforge import kernels
from shardforge.kernels import reference
from shardforge.trainer import mup
from shardforge.trainer.config import ModelConfig


class Norm(nn.Module):
    def __init__(self, dim: int, eps: float, use_kernel: bool) -> None:
        super().__init__()
        self.eps, self.use_kernel = eps, use_kernel
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (kernels.rms_norm if self.use_kernel else reference.rms_norm)(x, self.weight, self.eps)


def document_mask(position_ids: torch.Tensor) -> torch.Tensor:
    """(batch, 1, seq, seq) boolean mask: causal, and only within the document (a document starts
    where the position id is 0)."""
    doc = (position_ids == 0).cumsum(-1)
    same = doc[:, :, None] == doc[:, None, :]
    seq = position_ids.shape[-1]
    causal = torch.ones(seq, seq, dtype=torch.bool, device=position_ids.device).tril()
    return (same & causal)[:, None]


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.scale = mup.attention_scale(cfg)
        hd = cfg.head_dim
        self.q = nn.Linear(cfg.dim, cfg.n_heads * hd, bias=False)
        self.k = nn.Linear(cfg.dim, cfg.n_kv_heads * hd, bias=False)
        self.v = nn.Linear(cfg.dim, cfg.n_kv_heads * hd, bias=False)
        self.o = nn.Linear(cfg.n_heads * hd, cfg.dim, bias=False)
        self.q_norm = Norm(hd, cfg.norm_eps, cfg.kernels) if cfg.qk_norm else None
        self.k_norm = Norm(hd, cfg.norm_eps, cfg.kernels) if cfg.qk_norm else None

    def forward(
        self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, mask: torch.Tensor | None
    ) -> torch.Tensor:
        b, s, _ = x.shape
        hd = self.cfg.head_dim
        # -1 heads: under tensor parallelism each rank holds a slice of them.
        q = self.q(x).view(b, s, -1, hd)
        k = self.k(x).view(b, s, -1, hd)
        v = self.v(x).view(b, s, -1, hd)
        if self.q_norm is not None and self.k_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        q, k = (kernels.apply_rope if self.cfg.kernels else reference.rope)(q, k, cos, sin)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        out = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=mask,
            is_causal=mask is None,
            scale=self.scale,
            enable_gqa=self.cfg.n_kv_heads != self.cfg.n_heads,
        )
        y: torch.Tensor = self.o(out.transpose(1, 2).reshape(b, s, -1))
        return y


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.use_kernel = cfg.kernels
        self.gate = nn.Linear(cfg.dim, cfg.hidden_dim, bias=False)
        self.up = nn.Linear(cfg.dim, cfg.hidden_dim, bias=False)
        self.down = nn.Linear(cfg.hidden_dim, cfg.dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        act = (kernels.swiglu if self.use_kernel else reference.swiglu)(self.gate(x), self.up(x))
        y: torch.Tensor = self.down(act)
        return y


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.attn_norm = Norm(cfg.dim, cfg.norm_eps, cfg.kernels)
        self.attn = Attention(cfg)
        self.mlp_norm = Norm(cfg.dim, cfg.norm_eps, cfg.kernels)
        self.mlp = MLP(cfg)

    def forward(
        self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, mask: torch.Tensor | None
    ) -> torch.Tensor:
        x = x + self.attn(self.attn_norm(x), cos, sin, mask)
        y: torch.Tensor = x + self.mlp(self.mlp_norm(x))
        return y


def rope_and_mask(
    cfg: ModelConfig, x: torch.Tensor, position_ids: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """RoPE's cos and sin in `x`'s dtype, and the document mask (None: plain causal attention) for
    hidden states `x` (batch, seq, dim). Without position ids every row is one document."""
    b, s = x.shape[:2]
    mask = None
    if position_ids is None:
        position_ids = torch.arange(s, device=x.device).expand(b, s)
    elif cfg.doc_masking:
        mask = document_mask(position_ids)
    cos, sin = kernels.rope_cos_sin(position_ids, cfg.head_dim, cfg.rope_base)
    return cos.to(x.dtype), sin.to(x.dtype), mask


def head(cfg: ModelConfig, lm_head: nn.Linear, h: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
    """The LM head on the final (normed) hidden states `h`: logits, or with `labels` the loss (see
    `Transformer.forward`). μP's output multiplier scales the head's input, which is the same as
    scaling the logits."""
    if isinstance(h, DTensor):
        h = h.full_tensor()  # sequence parallel: the final norm's slices, gathered for the head
    multiplier = mup.output_multiplier(cfg)
    if multiplier != 1.0:
        h = h * multiplier
    if labels is None:
        logits: torch.Tensor = lm_head(h)
        return logits
    if cfg.kernels:
        return kernels.fused_linear_cross_entropy(h, lm_head.weight, labels, z_loss=cfg.z_loss)
    return reference.linear_cross_entropy(
        h.reshape(-1, h.shape[-1]), lm_head.weight, labels.reshape(-1), z_loss=cfg.z_loss
    )


# Wrappers that activation checkpointing and `torch.compile` put between a module and its
# parameters; the whole model's name is what is left without them.
_WRAPPER_PREFIXES = ("_checkpoint_wrapped_module.", "_orig_mod.")


def canonical_name(name: str) -> str:
    for prefix in _WRAPPER_PREFIXES:
        name = name.replace(prefix, "")
    return name


def _seed_of(seed: int, name: str) -> int:
    """A generator seed for one parameter: a stable hash of the run's seed and the name."""
    digest = hashlib.blake2b(f"{seed}:{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1  # torch seeds are signed 64-bit


def initial_value(
    cfg: ModelConfig, name: str, shape: torch.Size, seed: int, device: torch.device
) -> torch.Tensor:
    """The whole model's parameter `name` at initialisation, in fp32 on `device`: Normal(0,
    init_std), with the two projections back into the residual stream (attention out, MLP down)
    scaled by 1/sqrt(2 n_layers) so the residual's variance does not grow with depth (GPT-2); norms
    at 1. Under μP the hidden matrices' std is also divided by sqrt(their fan-in / the base
    model's)."""
    if name.endswith("norm.weight"):
        return torch.ones(shape, device=device)
    std = cfg.init_std
    if name.endswith(("attn.o.weight", "mlp.down.weight")):
        std /= math.sqrt(2 * cfg.n_layers)
    ratio = mup.fan_in_ratio(cfg, name)
    if ratio is not None:
        std /= math.sqrt(ratio)
    gen = torch.Generator(device=device).manual_seed(_seed_of(seed, name))
    return torch.empty(shape, device=device).normal_(0.0, std, generator=gen)


def init_parameters(module: nn.Module, cfg: ModelConfig, seed: int) -> None:
    """Sets every parameter of `module` to its `initial_value`. `module` is a `Transformer`, a
    `TransformerStage`, or either after `parallelize`: a DTensor parameter gets its own shard of
    the whole value. Each parameter has its own generator, so a rank's values do not depend on
    which parameters it holds or how they are sharded: every parallel layout starts from the
    weights of the single-process model. Peak extra memory is one whole parameter."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            local = p.to_local() if isinstance(p, DTensor) else p
            full = initial_value(cfg, canonical_name(name), p.shape, seed, local.device).to(p.dtype)
            if isinstance(p, DTensor):
                # Every rank computed the same whole value: each keeps its shard, no communication.
                full = distribute_tensor(full, p.device_mesh, p.placements, src_data_rank=None)
            p.copy_(full)


def materialize(
    modules: Iterable[nn.Module], part: nn.Module, cfg: ModelConfig, seed: int, device: torch.device
) -> None:
    """Gives `modules` (built on the meta device, then parallelized) storage on `device`, and
    initialises `part`, the module that holds their parameters under the whole model's names."""
    for m in modules:
        m.to_empty(device=device)
    init_parameters(part, cfg, seed)


class Transformer(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.output_multiplier = mup.output_multiplier(cfg)  # applied in `head`
        self.embed = nn.Embedding(cfg.vocab_size, cfg.dim)
        self.layers = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.norm = Norm(cfg.dim, cfg.norm_eps, cfg.kernels)
        self.lm_head = nn.Linear(cfg.dim, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.lm_head.weight = self.embed.weight
        self.init_weights()

    def init_weights(self, seed: int | None = None) -> None:
        """`init_parameters` with `seed`, or one drawn from torch's global generator (so
        `torch.manual_seed` then `Transformer(cfg)` gives the same weights every time). A model
        built on the meta device has no storage to fill: it is initialised after it is placed."""
        if any(p.is_meta for p in self.parameters()):
            return
        if seed is None:
            seed = int(torch.randint(0, 2**62, ()).item())
        init_parameters(self, self.cfg, seed)

    def hidden_states(
        self, input_ids: torch.Tensor, position_ids: torch.Tensor | None = None
    ) -> torch.Tensor:
        x = self.embed(input_ids)
        cos, sin, mask = rope_and_mask(self.cfg, x, position_ids)
        for layer in self.layers:
            x = layer(x, cos, sin, mask)
        return self.norm(x)  # type: ignore[no-any-return]

    def forward(
        self,
        input_ids: torch.Tensor,
        position_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logits (batch, seq, vocab); with `labels`, the mean cross-entropy over labels that are
        not -100 (plus z-loss when configured) instead. The loss goes through `forward` so that
        FSDP's hooks gather the head's weight; the kernel path never materialises the logits."""
        h = self.hidden_states(input_ids, position_ids)
        return head(self.cfg, self.lm_head, h, labels)

    def loss(
        self, input_ids: torch.Tensor, labels: torch.Tensor, position_ids: torch.Tensor | None = None
    ) -> torch.Tensor:
        out: torch.Tensor = self(input_ids, position_ids, labels)
        return out


class TransformerStage(nn.Module):
    """Some of a `Transformer`'s layers, for pipeline parallelism, with the embedding when `first`
    and the final norm, LM head and loss when `last`. It holds the model's own modules, and the layers are
    keyed by their index in the whole model, so parameter names (and so checkpoints) are the whole
    model's. Every stage recomputes RoPE and the document mask from the position ids."""

    def __init__(self, model: Transformer, layers: Iterable[int], first: bool, last: bool) -> None:
        super().__init__()
        cfg = model.cfg
        if cfg.tie_embeddings and first != last:
            raise ValueError("pipeline parallelism needs untied embeddings (tie_embeddings=False)")
        self.cfg = cfg
        self.embed = model.embed if first else None
        self.layers = nn.ModuleDict({str(i): model.layers[i] for i in layers})
        self.norm = model.norm if last else None
        self.lm_head = model.lm_head if last else None

    def forward(
        self, x: torch.Tensor, position_ids: torch.Tensor, labels: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Token ids (with the embedding) or the previous stage's hidden states in; the next
        stage's hidden states out, or with the head the mean loss as a 1-element tensor (the
        pipeline schedule concatenates its microbatches' outputs, which needs a dimension)."""
        if self.embed is not None:
            x = self.embed(x)
        cos, sin, mask = rope_and_mask(self.cfg, x, position_ids)
        for layer in self.layers.values():
            x = layer(x, cos, sin, mask)
        if self.norm is None or self.lm_head is None:
            return x
        out = head(self.cfg, self.lm_head, self.norm(x), labels)
        return out if labels is None else out.reshape(1)

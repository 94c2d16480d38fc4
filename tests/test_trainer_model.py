"""The Llama-style model against outside references: `transformers`' `LlamaForCausalLM` loaded from
our export gives the same logits; a packed sequence with document masking gives each document the
logits it gets alone; and the model trains to the same losses with the Triton kernels on and off,
reading real text through the loader."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("torch")

import torch

import shardforge
from conftest import real_documents, write_jsonl
from shardforge.loader import Loader
from shardforge.trainer import ModelConfig, Transformer, model_config
from shardforge.trainer.hf import export_hf, import_hf

SMALL = ModelConfig(vocab_size=1000, dim=64, n_layers=2, n_heads=4, n_kv_heads=2, ffn_dim=96, max_seq_len=128)


@pytest.mark.parametrize("tied", [False, True])
def test_transformers_llama_loaded_from_our_export_gives_the_same_logits(tmp_path: Path, tied: bool) -> None:
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    cfg = SMALL.with_(tie_embeddings=tied, rope_base=50000.0)
    model = Transformer(cfg).eval()
    with torch.no_grad():  # norms away from 1, so a swapped norm weight would show
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.uniform_(0.5, 1.5)
    export_hf(model, tmp_path / "hf")
    hf = transformers.LlamaForCausalLM.from_pretrained(tmp_path / "hf", torch_dtype=torch.float32).eval()
    ids = torch.randint(0, cfg.vocab_size, (2, 37))
    with torch.no_grad():
        ours = model(ids)
        theirs = hf(ids).logits
        back = import_hf(tmp_path / "hf")(ids)
    torch.testing.assert_close(theirs, ours, rtol=1e-5, atol=1e-5)
    assert torch.equal(back, ours)


def test_document_masking_gives_each_document_its_own_logits() -> None:
    torch.manual_seed(1)
    model = Transformer(SMALL).eval()
    a, b = torch.randint(0, 1000, (1, 20)), torch.randint(0, 1000, (1, 15))
    packed = torch.cat([a, b], 1)
    pos = torch.cat([torch.arange(20), torch.arange(15)])[None]
    with torch.no_grad():
        together = model(packed, pos)
        alone = torch.cat([model(a), model(b)], 1)
        unmasked = model(packed)
    torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(unmasked[:, 20:], alone[:, 20:], atol=1e-3)


def test_sizes_and_flops() -> None:
    small = Transformer(SMALL)
    assert sum(p.numel() for p in small.parameters()) == SMALL.num_params()
    assert 7.0e9 < model_config("8b").num_params() < 8.2e9
    assert 1.0e8 < model_config("125m", vocab_size=50257).num_params() < 1.7e8
    with pytest.raises(ValueError, match="multiple of n_kv_heads"):
        ModelConfig(n_heads=4, n_kv_heads=3)


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real text, a 512-token BPE vocabulary trained on it, and its token dataset."""
    d = tmp_path_factory.mktemp("train")
    write_jsonl(d / "docs.jsonl", [{"text": t[:4000]} for t in real_documents(60, seed=4)])
    shardforge.train_tokenizer(d / "docs.jsonl", d / "tok.json", vocab_size=512)
    shardforge.tokenize(d / "docs.jsonl", d / "tokens", tokenizer=str(d / "tok.json"))
    return d / "tokens"


def train_losses(dataset: Path, cache: Path, kernels: bool, steps: int) -> list[float]:
    torch.manual_seed(0)
    cfg = ModelConfig(
        vocab_size=512, dim=64, n_layers=2, n_heads=4, n_kv_heads=2, ffn_dim=96, kernels=kernels
    )
    model = Transformer(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, betas=(0.9, 0.95), weight_decay=0.1)
    loader = Loader(
        {
            "seq_len": 32,
            "batch_size": 2,
            "sources": [{"name": "t", "datasets": [str(dataset)]}],
            "cache_dir": str(cache),
        },
        format="torch",
    )
    losses = []
    for _, batch in zip(range(steps), loader, strict=False):
        loss = model.loss(batch["input_ids"], batch["labels"], batch["position_ids"])
        opt.zero_grad()
        torch.autograd.backward(loss)
        opt.step()
        losses.append(loss.item())
    return losses


@pytest.mark.slow  # the kernels run under Triton's interpreter: about a minute
def test_debug_model_trains_to_the_same_loss_with_kernels_on_and_off(
    tiny_dataset: Path, tmp_path: Path
) -> None:
    off = train_losses(tiny_dataset, tmp_path, kernels=False, steps=10)
    on = train_losses(tiny_dataset, tmp_path, kernels=True, steps=10)
    assert off[-1] < off[0] - 0.5, f"the loss falls: {off}"
    for step, (a, b) in enumerate(zip(off, on, strict=True)):
        assert abs(a - b) <= 1e-3 * abs(a), f"step {step}: {a} without kernels, {b} with"

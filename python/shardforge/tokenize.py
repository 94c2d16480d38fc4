"""Tokenization with the HF `tokenizers` crate inside the core: the file-to-shards job, in-memory
batch encoding into NumPy buffers, and byte-level BPE training."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from shardforge import _core
from shardforge.config import FieldConfig, OnError, TokenizeConfig, TrainConfig, parse_size
from shardforge.dedup import PathLike, ProgressFn, as_list, report_from_json

STAGES = ("starting", "tokenizing", "done")


@dataclass(frozen=True)
class TokenizeReport:
    """What a tokenize run did; `raw` is the whole JSON report (also written as `report.json`)."""

    files: int
    documents: int
    tokens: int
    shards: int
    shards_resumed: int
    rejected: int
    text_bytes: int
    seconds: float
    mb_per_s: float
    tokens_per_s: float
    peak_rss_bytes: int
    threads: int
    up_to_date: bool
    raw: dict[str, Any]

    @classmethod
    def from_json(cls, text: str) -> TokenizeReport:
        return report_from_json(cls, text)


def make_tokenize_config(
    tokenizer: PathLike,
    *,
    text_field: str = "text",
    id_field: str | None = "id",
    metadata: Sequence[str] = (),
    eos_token: str | None = None,
    add_bos: bool = False,
    bos_token: str | None = None,
    shard_tokens: int | None = None,
    shard_bytes: int | str = "256MiB",
    on_error: OnError = "raise",
    threads: int | None = None,
) -> TokenizeConfig:
    """Build a `TokenizeConfig` from flat keyword options (the ones `tokenize` and the CLI take)."""
    return TokenizeConfig(
        tokenizer=os.fspath(tokenizer),
        fields=FieldConfig(text_field=text_field, id_field=id_field),
        metadata=list(metadata),
        eos_token=eos_token,
        add_bos=add_bos,
        bos_token=bos_token,
        shard_tokens=shard_tokens,
        shard_bytes=parse_size(shard_bytes),
        on_error=on_error,
        threads=threads,
    )


def tokenize(
    inputs: PathLike | Iterable[PathLike],
    output: PathLike,
    tokenizer: PathLike | None = None,
    *,
    config: TokenizeConfig | None = None,
    progress: ProgressFn | None = None,
    **options: Any,
) -> TokenizeReport:
    """Tokenize `inputs` (files, directories, globs of .jsonl, .jsonl.gz, .jsonl.zst, .parquet) into
    the token dataset directory `output`: `manifest.json`, `tokenizer.json`, `NNNNN.tokens`
    (little-endian ids, EOS after every document) and `NNNNN.parquet` (doc_id, token_offset,
    n_tokens, source and the carried `metadata` fields). A rerun after an interruption keeps the
    finished shards. Options are those of `make_tokenize_config`, or pass a whole `config`.
    """
    if config is not None:
        if options or tokenizer is not None:
            raise TypeError("pass either config= or a tokenizer and keyword options, not both")
        cfg = config
    else:
        if tokenizer is None:
            raise TypeError("tokenize() needs a tokenizer (a tokenizer.json path)")
        cfg = make_tokenize_config(tokenizer, **options)
    report = _core.tokenize(as_list(inputs), os.fspath(output), cfg.to_json(), progress)
    return TokenizeReport.from_json(report)


class Tokenizer:
    """A `tokenizer.json` loaded into the core. `encode_batch` tokenizes in parallel with the GIL
    released and returns flat NumPy buffers, never Python lists of ints."""

    def __init__(self, path: PathLike, *, eos_token: str | None = None, bos_token: str | None = None) -> None:
        self._enc = _core.Encoder(os.fspath(path), eos_token, bos_token)

    @property
    def vocab_size(self) -> int:
        return self._enc.vocab_size

    @property
    def eos_id(self) -> int:
        return self._enc.eos_id

    @property
    def bos_id(self) -> int | None:
        return self._enc.bos_id

    @property
    def pad_id(self) -> int | None:
        return self._enc.pad_id

    def encode_batch(
        self, texts: Sequence[str], *, add_eos: bool = False, add_bos: bool = False
    ) -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.uint64]]:
        """`(tokens, offsets)`: all ids concatenated, and `len(texts) + 1` offsets so that text
        `i` is `tokens[offsets[i]:offsets[i + 1]]`. No special tokens unless asked for."""
        return self._enc.encode_batch(list(texts), add_eos, add_bos)

    def encode(self, text: str) -> npt.NDArray[np.uint32]:
        tokens, _ = self.encode_batch([text])
        return tokens

    def decode(self, ids: Sequence[int] | npt.NDArray[np.integer[Any]]) -> str:
        return self._enc.decode([int(i) for i in ids])


def encode_batch(
    texts: Sequence[str], tokenizer: PathLike, *, add_eos: bool = False, add_bos: bool = False
) -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.uint64]]:
    """One-shot `Tokenizer(tokenizer).encode_batch(texts)`; keep a `Tokenizer` to encode many batches."""
    return Tokenizer(tokenizer).encode_batch(texts, add_eos=add_eos, add_bos=add_bos)


def train_tokenizer(
    inputs: PathLike | Iterable[PathLike],
    output: PathLike,
    *,
    vocab_size: int = 32_000,
    min_frequency: int = 2,
    special_tokens: Sequence[str] = ("<|endoftext|>",),
    text_field: str = "text",
    max_bytes: int | str = "1GiB",
    progress: ProgressFn | None = None,
) -> dict[str, Any]:
    """Train a byte-level BPE tokenizer (GPT-2 layout) on `inputs` and write it as the
    `tokenizer.json` file `output`. Returns the training report."""
    cfg = TrainConfig(
        fields=FieldConfig(text_field=text_field, id_field=None),
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(special_tokens),
        max_bytes=parse_size(max_bytes),
    )
    report = _core.train_tokenizer(as_list(inputs), os.fspath(output), cfg.to_json(), progress)
    result: dict[str, Any] = json.loads(report)
    return result

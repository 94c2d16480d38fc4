"""shardforge: a pretraining data engine. Rust core, Python API, one CLI.

import shardforge
report = shardforge.dedup("corpus/", "clean/", threshold=0.8)
shardforge.tokenize("clean/", "tokens/", tokenizer="tokenizer.json")
ds = shardforge.open_dataset("tokens/")
"""

from shardforge._core import (
    ConfigError,
    CorruptDatasetError,
    MalformedRecordError,
    NoInputError,
    ParquetError,
    ShardforgeError,
    TokenizerError,
    TruncatedInputError,
    __version__,
)
from shardforge.clean import CleanConfig, CleanSource, clean, load_clean_config
from shardforge.config import (
    DedupConfig,
    FieldConfig,
    NormalizeConfig,
    SketchConfig,
    TokenizeConfig,
    TrainConfig,
)
from shardforge.dataset import Dataset, VerifyReport, open_dataset, verify
from shardforge.decontam import EvalIndex, EvalSet, Hit, decontaminate, humaneval_path
from shardforge.dedup import (
    Report,
    TextsResult,
    candidate_pairs,
    connected_components,
    dedup,
    dedup_texts,
    lsh_params,
    make_config,
    minhash,
    normalize_text,
    shingle_hashes,
)
from shardforge.filters import FilterResult, filter_files, filter_texts
from shardforge.loader import Loader
from shardforge.loader_config import LoaderConfig, PhaseConfig, RepeatFilterConfig, SourceConfig
from shardforge.megatron import MegatronReader, export_megatron
from shardforge.tokenize import (
    Tokenizer,
    TokenizeReport,
    encode_batch,
    make_tokenize_config,
    tokenize,
    train_tokenizer,
)

__all__ = [
    "CleanConfig",
    "CleanSource",
    "ConfigError",
    "CorruptDatasetError",
    "Dataset",
    "DedupConfig",
    "EvalIndex",
    "EvalSet",
    "FieldConfig",
    "FilterResult",
    "Hit",
    "Loader",
    "LoaderConfig",
    "MalformedRecordError",
    "MegatronReader",
    "NoInputError",
    "NormalizeConfig",
    "ParquetError",
    "PhaseConfig",
    "RepeatFilterConfig",
    "Report",
    "ShardforgeError",
    "SketchConfig",
    "SourceConfig",
    "TextsResult",
    "TokenizeConfig",
    "TokenizeReport",
    "Tokenizer",
    "TokenizerError",
    "TrainConfig",
    "TruncatedInputError",
    "VerifyReport",
    "__version__",
    "candidate_pairs",
    "clean",
    "connected_components",
    "decontaminate",
    "dedup",
    "dedup_texts",
    "encode_batch",
    "export_megatron",
    "filter_files",
    "filter_texts",
    "humaneval_path",
    "load_clean_config",
    "lsh_params",
    "make_config",
    "make_tokenize_config",
    "minhash",
    "normalize_text",
    "open_dataset",
    "shingle_hashes",
    "tokenize",
    "train_tokenizer",
    "verify",
]

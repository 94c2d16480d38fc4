"""The streaming loader (DESIGN §4): token datasets → mixture × curriculum × epochs → packed
sequences with document boundaries → batches, one disjoint slice per rank.

The sample index lives in the Rust core and is a pure function of the config and the global sample
number, so the loader's whole state is one counter: `state_dict()` is a few bytes, and resuming
(with the same or another world size) continues the exact global sequence.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import warnings
from collections import deque
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any, Literal

import duckdb
import numpy as np
import numpy.typing as npt

from shardforge import _core
from shardforge._core import ConfigError, CorruptDatasetError
from shardforge.dataset import Dataset, open_dataset, verify
from shardforge.loader_config import LoaderConfig, SourceConfig

Batch = dict[str, Any]
Format = Literal["numpy", "torch"]

# Upsampling past this many epochs is allowed but rarely wise (Muennighoff et al. 2023).
EPOCH_WARNING = 4.0


def default_cache_dir() -> Path:
    return Path(os.environ.get("SHARDFORGE_CACHE") or Path.home() / ".cache" / "shardforge") / "loader"


class Loader:
    """Batches for one rank. Iterate it for dicts of `input_ids`, `labels` (-100: no loss),
    `position_ids` (restart at every document), `cu_seqlens` (document starts in the flattened
    batch, for varlen attention), `source` (index into `sources`) and `filtered` (removed from
    the loss by the repeat filter).

    Every check (tokenizer, shard files, checksums, selections, epoch bounds) runs here, before the
    first batch. `num_workers > 0` reads in `torch.utils.data` worker processes with the same
    sequence and the same state.
    """

    def __init__(
        self,
        config: LoaderConfig | Mapping[str, Any],
        *,
        rank: int = 0,
        world_size: int = 1,
        num_workers: int = 0,
        prefetch: int = 4,
        format: Format = "numpy",
        pin_memory: bool | None = None,
    ) -> None:
        self.config = config if isinstance(config, LoaderConfig) else LoaderConfig.from_dict(config)
        if not 0 <= rank < world_size:
            raise ConfigError(f"rank {rank} is outside world size {world_size}")
        if num_workers > 0 and format != "torch":
            raise ConfigError("num_workers > 0 reads through torch.utils.data: use format='torch'")
        self.rank, self.world_size = rank, world_size
        self.num_workers, self.prefetch, self.format = num_workers, max(1, prefetch), format
        self.pin_memory = pin_memory
        cfg = self.config
        if cfg.seq_len < 1 or cfg.batch_size < 1:
            raise ConfigError("seq_len and batch_size must be at least 1")
        self.cache_dir = Path(cfg.cache_dir) if cfg.cache_dir else default_cache_dir()
        self.sources = [s.name for s in cfg.sources]
        self._spec, self._docs, self._origins, self.fingerprint = _build_spec(cfg, self.cache_dir)
        self._index = _core.SampleIndex(self._spec, self._docs)
        self.plan: dict[str, Any] = json.loads(self._index.plan())
        for s in self.plan["sources"]:
            p = s["packing"]
            p["truncated_fraction"] = p["truncated_documents"] / max(1, p["documents"])
            p["padding_fraction"] = p["padding_tokens"] / max(1, p["samples_per_epoch"] * (cfg.seq_len + 1))
        for s in self.plan["sources"]:
            if s["epochs"] is not None and s["epochs"] > EPOCH_WARNING:
                warnings.warn(
                    f"source '{s['name']}' is read for {s['epochs']:.1f} epochs (more than "
                    f"{EPOCH_WARNING:g}); repeated data gives diminishing returns",
                    stacklevel=2,
                )
        self.consumed_samples = 0
        self.filtered_samples = 0

    @property
    def global_batch(self) -> int:
        return self.config.batch_size * self.world_size

    @property
    def total_samples(self) -> int | None:
        """Global samples the run reads (`None`: endless)."""
        return self._index.end

    def __len__(self) -> int:
        """Steps left from the current position."""
        end = self._index.end
        if end is None:
            raise TypeError("an endless loader has no length")
        return max(0, (end - self.consumed_samples) // self.global_batch)

    def phase(self, step_or_sample: int | None = None) -> int:
        """Curriculum phase of global sample `step_or_sample` (default: the next one)."""
        k = self.consumed_samples if step_or_sample is None else step_or_sample
        return self._index.phase(k)

    def state_dict(self) -> dict[str, Any]:
        return {
            "consumed_samples": self.consumed_samples,
            "tokens": self.consumed_samples * self.config.seq_len,
            "fingerprint": self.fingerprint,
            "filtered_samples": self.filtered_samples,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state.get("fingerprint") != self.fingerprint:
            raise ConfigError(
                "loader state is from a different configuration or different data "
                f"(fingerprint {state.get('fingerprint')}, this loader {self.fingerprint}); "
                "resuming would not continue the same sample sequence"
            )
        self.consumed_samples = int(state["consumed_samples"])
        self.filtered_samples = int(state.get("filtered_samples", 0))

    def batch_at(self, consumed_samples: int) -> Batch:
        """This rank's batch of the step that starts at global sample `consumed_samples`."""
        first = consumed_samples + self.rank * self.config.batch_size
        return dict(self._index.batch(first, self.config.batch_size))

    def pieces(self, sample: int) -> tuple[str, int, list[tuple[str, int, int, int]]]:
        """Where global sample `sample` comes from: its source, its index in that source's
        stream, and `(dataset, document, start, length)` of each document piece in it."""
        s, local, pieces = self._index.pieces(sample)
        o = self._origins[s]
        return (
            self.sources[s],
            local,
            [(o.datasets[o.dataset[d]], int(o.doc[d]), start, n) for d, start, n in pieces],
        )

    def __iter__(self) -> Iterator[Batch]:
        if self.num_workers > 0:
            return self._iter_workers()
        return self._iter_threads()

    def _steps(self, start: int) -> Iterator[int]:
        end = self._index.end
        k = start
        while end is None or k + self.global_batch <= end:
            yield k
            k += self.global_batch

    def _iter_threads(self) -> Iterator[Batch]:
        # One background thread: the Rust call releases the GIL, so it overlaps the training step.
        pin = self._pin()
        with ThreadPoolExecutor(1, thread_name_prefix="shardforge-loader") as pool:
            pending: deque[tuple[int, Future[Batch]]] = deque()
            steps = self._steps(self.consumed_samples)
            for k in steps:
                pending.append((k, pool.submit(self._make, k, pin)))
                if len(pending) >= self.prefetch:
                    break
            while pending:
                k, fut = pending.popleft()
                nxt = next(steps, None)
                if nxt is not None:
                    pending.append((nxt, pool.submit(self._make, nxt, pin)))
                batch = fut.result()
                self._advance(k, batch)
                yield batch

    def _make(self, k: int, pin: bool) -> Batch:
        batch = self.batch_at(k)
        return to_torch(batch, pin) if self.format == "torch" else batch

    def _advance(self, k: int, batch: Batch) -> None:
        self.consumed_samples = k + self.global_batch
        self.filtered_samples += int(np.asarray(batch["filtered"]).sum())

    def _pin(self) -> bool:
        if self.format != "torch":
            return False
        if self.pin_memory is not None:
            return self.pin_memory
        import torch

        return torch.cuda.is_available()

    def _iter_workers(self) -> Iterator[Batch]:
        import torch.utils.data

        from shardforge.loader_workers import StepDataset

        steps = StepDataset(self._spec, self._docs, self.rank, self.config.batch_size, self.world_size)
        steps.start = self.consumed_samples
        dl = torch.utils.data.DataLoader(
            steps,
            batch_size=None,
            num_workers=self.num_workers,
            prefetch_factor=self.prefetch,
            pin_memory=self._pin(),
        )
        for k, batch in dl:
            self._advance(int(k), batch)
            yield batch


def to_torch(batch: Batch, pin: bool) -> Batch:
    import torch

    out = {k: torch.from_numpy(v) for k, v in batch.items()}
    if pin:
        out = {k: v.pin_memory() for k, v in out.items()}
    return out


DocCols = tuple[npt.NDArray[np.uint32], npt.NDArray[np.uint64], npt.NDArray[np.uint32]]


class _Origin:
    """Which dataset and document number each selected document of a source is."""

    def __init__(self, datasets: list[str], dataset: npt.NDArray[np.int32], doc: npt.NDArray[np.int64]):
        self.datasets, self.dataset, self.doc = datasets, dataset, doc


def _build_spec(cfg: LoaderConfig, cache_dir: Path) -> tuple[str, list[DocCols], list[_Origin], str]:
    """Open and check every dataset, select each source's documents, and write the core's spec."""
    paths: list[str] = []
    for src in cfg.sources:
        for p in src.datasets:
            if os.path.abspath(p) not in paths:
                paths.append(os.path.abspath(p))
    datasets = {p: _open_checked(p) for p in paths}
    sha0 = datasets[paths[0]].manifest["tokenizer"]["sha256"]
    for p in paths[1:]:
        sha = datasets[p].manifest["tokenizer"]["sha256"]
        if sha != sha0:
            raise ConfigError(
                f"{p}: tokenizer sha256 {sha[:12]}... differs from {paths[0]}'s {sha0[:12]}...; "
                "all datasets of a loader must share one tokenizer"
            )
    if cfg.verify:
        for p in paths:
            _verify_cached(datasets[p], cache_dir)
    shards: list[dict[str, Any]] = []
    first_shard: dict[str, int] = {}
    for p in paths:
        ds = datasets[p]
        first_shard[p] = len(shards)
        for sh in ds.shards:
            shards.append(
                {
                    "path": str(ds.path / sh["tokens_file"]),
                    "dtype": ds.manifest["dtype"],
                    "tokens": sh["tokens"],
                }
            )
    docs: list[DocCols] = []
    origins: list[_Origin] = []
    for src in cfg.sources:
        src_paths = [os.path.abspath(p) for p in src.datasets]
        parts = [_select(datasets[p], src, cache_dir) for p in src_paths]
        if sum(len(part[0]) for part in parts) == 0:
            raise ConfigError(
                f"source '{src.name}': the selection {src.where!r} matches no documents in {src.datasets}"
            )
        docs.append(
            (
                np.concatenate(
                    [part[0] + first_shard[p] for part, p in zip(parts, src_paths, strict=True)]
                ).astype(np.uint32),
                np.concatenate([part[1] for part in parts]).astype(np.uint64),
                np.concatenate([part[2] for part in parts]).astype(np.uint32),
            )
        )
        origins.append(
            _Origin(
                src_paths,
                np.concatenate([np.full(len(part[0]), i, np.int32) for i, part in enumerate(parts)]),
                np.concatenate([part[3] for part in parts]).astype(np.int64),
            )
        )
    spec = {
        "seq_len": cfg.seq_len,
        "packing": cfg.packing,
        "seed": cfg.seed,
        "mixture_window": cfg.mixture_window,
        "sources": [{"name": s.name, "max_epochs": s.max_epochs} for s in cfg.sources],
        "phases": _phases(cfg),
        "repeat_filter": asdict(cfg.repeat_filter) if cfg.repeat_filter else None,
        "pad_id": 0,
    }
    identity = {
        **spec,
        "sources": [asdict(s) | {"datasets": None} for s in cfg.sources],
        "data": [[datasets[os.path.abspath(p)].manifest_sha256 for p in s.datasets] for s in cfg.sources],
    }
    fingerprint = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
    return json.dumps(spec | {"shards": shards}), docs, origins, fingerprint


def _phases(cfg: LoaderConfig) -> list[dict[str, Any]]:
    names = [s.name for s in cfg.sources]
    out = []
    start = 0
    for i, ph in enumerate(cfg.phases):
        unknown = sorted(set(ph.weights) - set(names))
        if unknown:
            raise ConfigError(f"phase {i}: weights name unknown sources {unknown} (sources: {names})")
        samples = None
        if ph.tokens is not None:
            if ph.tokens <= 0 or ph.tokens % cfg.seq_len:
                raise ConfigError(
                    f"phase {i}: tokens {ph.tokens} is not a positive multiple of seq_len {cfg.seq_len}; "
                    "phases switch at an exact token"
                )
            samples = ph.tokens // cfg.seq_len
        out.append({"samples": samples, "weights": [float(ph.weights.get(n, 0.0)) for n in names]})
        start += samples or 0
    if cfg.total_tokens is not None:
        total = cfg.total_tokens // cfg.seq_len
        last = out[-1]
        if last["samples"] is None:
            if total <= start:
                raise ConfigError(
                    f"total_tokens {cfg.total_tokens} ends before the last phase starts "
                    f"(token {start * cfg.seq_len})"
                )
            last["samples"] = total - start
        elif total != start:
            raise ConfigError(
                f"total_tokens {cfg.total_tokens} disagrees with the phases, "
                f"which end at token {start * cfg.seq_len}"
            )
    return out


def _open_checked(path: str) -> Dataset:
    """Open a dataset and check that every shard file is there at its manifest size."""
    if not os.path.isfile(os.path.join(path, "manifest.json")):
        raise CorruptDatasetError(f"{path}: no manifest.json; not a token dataset (or not finished)")
    ds = open_dataset(path)
    for sh in ds.shards:
        for key in ("tokens_file", "table_file"):
            f = ds.path / sh[key]
            if not f.is_file():
                raise CorruptDatasetError(f"{f}: missing (the manifest lists shard {sh['index']})")
        f = ds.path / sh["tokens_file"]
        want = sh["tokens"] * ds.dtype.itemsize
        if f.stat().st_size != want:
            raise CorruptDatasetError(f"{f}: {f.stat().st_size} bytes, the manifest says {want}")
    return ds


def _file_key(ds: Dataset) -> str:
    h = hashlib.sha256(ds.manifest_sha256.encode())
    for sh in ds.shards:
        for key in ("tokens_file", "table_file"):
            st = (ds.path / sh[key]).stat()
            h.update(f"{sh[key]}:{st.st_size}:{st.st_mtime_ns};".encode())
    return h.hexdigest()[:24]


def _verify_cached(ds: Dataset, cache_dir: Path) -> None:
    """Full checksum verification, once per dataset version (files unchanged since)."""
    marker = cache_dir / f"verified-{_file_key(ds)}"
    if marker.exists():
        return
    verify(ds.path)
    _write_atomic(marker, str(ds.path).encode())


def _select(ds: Dataset, src: SourceConfig, cache_dir: Path) -> tuple[npt.NDArray[Any], ...]:
    """`(shard, token_offset, n_tokens, document number)` of the documents `src.where` selects,
    in dataset order; cached on disk by the dataset's identity and the condition."""
    key = hashlib.sha256(f"{_file_key(ds)}\n{src.where}".encode()).hexdigest()[:24]
    cached = cache_dir / f"select-{key}.npz"
    if cached.exists():
        with np.load(cached) as z:
            return z["shard"], z["offset"], z["len"], z["doc"]
    where = f"WHERE {src.where}" if src.where else ""
    sql = (
        "SELECT shard, token_offset, n_tokens, doc FROM (SELECT *, "
        "(row_number() OVER (ORDER BY shard, token_offset) - 1)::BIGINT AS doc FROM docs) "
        f"{where} ORDER BY doc"
    )
    try:
        cols = ds.connect(duckdb.connect()).execute(sql).fetchnumpy()
    except duckdb.Error as e:
        raise ConfigError(f"source '{src.name}': bad selection {src.where!r} on {ds.path}: {e}") from e
    out = (
        np.asarray(cols["shard"], np.uint32),
        np.asarray(cols["token_offset"], np.uint64),
        np.asarray(cols["n_tokens"], np.uint32),
        np.asarray(cols["doc"], np.int64),
    )
    buf = _npz_bytes(shard=out[0], offset=out[1], len=out[2], doc=out[3])
    _write_atomic(cached, buf)
    return out


def _npz_bytes(**arrays: npt.NDArray[Any]) -> bytes:
    import io

    b = io.BytesIO()
    np.savez(b, **arrays)  # type: ignore[arg-type]
    return b.getvalue()


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)

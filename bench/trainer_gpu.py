"""Trainer throughput on one GPU, side by side: shardforge's trainer against torchtitan's Llama 3
trainer on the same model shape, sequence length, batch, text and device. Prints the median
tokens/s and MFU of each (steps after the first `--warmup`, which hold compilation) and their
ratio, and appends the rows to bench/out/trainer_gpu.csv with device, versions and date.

    python bench/trainer_gpu.py --tokenizer TOKENIZER.json [--size 1b] [--seq-len 2048]
        [--batch 4] [--steps 40] [--skip torchtitan] [--no-kernels] [--no-compile]

Both sides count FLOPs alike: 6 × the matmul parameters (the LM head included, the input
embedding not) plus 12 × layers × dim × seq_len per token, i.e. causal attention counted in full
(torchtitan's convention; Megatron halves it), against the same bf16 dense peak (989 TFLOP/s for
an H100 SXM).

Text: the machine's own, gathered by `shardforge corpus` (the plain `.jsonl` sources). shardforge
trains on it tokenized once into a token dataset; torchtitan reads the same JSONL through its
`c4_test` loader with `--training.dataset_path` and tokenizes on the fly with the same
`tokenizer.json` (so its time includes tokenizing, about a percent of a 1B model's step). A bare
BPE `tokenizer.json` (like ../shared's Llama 3 one) gets Llama 3's `<|begin_of_text|>` and
`<|end_of_text|>`, then its 254 other special-token slots as placeholders, so both trainers have
Llama 3's 128,256-token vocabulary and EOS. `--reserved-tokens 0` leaves 128,002 tokens: a size
that is not a multiple of 8, which slows every product with the LM head on a GPU unless the trainer
pads it (shardforge's fused loss does; torchtitan does not).

Attention: plain causal on both sides, torchtitan's default. shardforge's per-document masking
(on by default) is switched off here: as a dense mask it keeps SDPA off FlashAttention.

Precision: shardforge runs `param_dtype="bfloat16"` (bf16 parameters, fp32 master weights); torchtitan on
one GPU keeps fp32 weights under bf16 autocast (`--training.mixed_precision_param` applies only
under FSDP).

torchtitan 0.2.2 is the release to use on torch 2.11 (0.3.0 fails to import there). Where it is
missing, carry it with its dependencies the GPU image lacks (tyro, docstring-parser, typeguard,
torchdata, datasets, dill, multiprocess) as wheels; see the device tool's README.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
HEADER = [
    "date",
    "device",
    "torch",
    "shardforge",
    "engine",
    "size",
    "seq_len",
    "batch",
    "vocab",
    "tokens_per_s",
    "mfu",
]
# torchtitan's log line: "step: N  loss: ...  tps: 12,345  tflops: ...  mfu: 45.67%".
TT_LINE = re.compile(r"step:\s*(\d+).*?tps:\s*([\d,]+).*?mfu:\s*([\d.]+)%")


def gather_text(work: Path) -> list[Path]:
    """The machine's text as plain JSONL files (what both trainers read)."""
    from shardforge.corpus import gather

    corpus = work / "corpus"
    gather(corpus, verbose=False)
    files = sorted(p for p in corpus.glob("*.jsonl") if p.stat().st_size > 0)
    if not files:
        sys.exit(f"no plain .jsonl sources in {corpus}")
    return files


# Llama 3's document markers, at the ids Meta gives them right after the 128,000 BPE tokens.
BOS, EOS = "<|begin_of_text|>", "<|end_of_text|>"


def prepare_tokenizer(src: Path, work: Path, reserved: int = 0) -> Path:
    """`src` in a directory of its own, with Llama 3's BOS and EOS added as special tokens when it
    lacks them (a bare BPE `tokenizer.json` has none), then `reserved` more placeholder special
    tokens, and a `tokenizer_config.json` naming BOS and EOS: both trainers then mark documents
    alike, and torchtitan finds the layout it expects."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(src))
    wanted = [BOS, EOS] + [f"<|reserved_special_token_{i}|>" for i in range(reserved)]
    missing = [t for t in wanted if tok.token_to_id(t) is None]
    if missing:
        tok.add_special_tokens(missing)
    out = work / "tokenizer"
    out.mkdir(exist_ok=True)
    tok.save(str(out / "tokenizer.json"))
    config = {"bos_token": BOS, "eos_token": EOS, "add_bos_token": True, "add_eos_token": False}
    (out / "tokenizer_config.json").write_text(json.dumps(config))
    return out / "tokenizer.json"


def run_shardforge(args: argparse.Namespace, work: Path, text: list[Path]) -> dict[str, Any]:
    import shardforge
    from shardforge.trainer import model_config

    tokens = work / "tokens"
    shardforge.tokenize([str(p) for p in text], tokens, tokenizer=args.tokenizer, eos_token=EOS)
    mcfg = model_config(args.size)
    cfg = {
        "loader": {
            "seq_len": args.seq_len,
            "batch_size": args.batch,
            "sources": [{"name": "text", "datasets": [str(tokens)]}],
            "weights": {"text": 1.0},
            "cache_dir": str(work / "loader-cache"),
        },
        "out_dir": str(work / "sf-run"),
        "model": args.size,
        # torchtitan's Llama 3 attends causally across documents (attn_mask_type "causal"); ours
        # masks per document by default, with a dense mask that keeps SDPA off FlashAttention.
        "model_overrides": {"max_seq_len": args.seq_len, "kernels": args.kernels, "doc_masking": False},
        "steps": args.steps,
        "warmup_steps": min(10, args.steps),
        "checkpoint_every": args.steps + 1,
        "keep_checkpoints": 1,
        "collapse_every": 0,
        "tensorboard": False,
        "log_every": 1,
        "parallel": {"compile": args.compile, "param_dtype": args.param_dtype},
        "profile_at": args.profile_at,
    }
    cfg_path = work / "sf-train.json"
    cfg_path.write_text(json.dumps(cfg, indent=1))
    # A run left in a reused --work would be resumed, and its metrics read with this one's.
    shutil.rmtree(work / "sf-run", ignore_errors=True)
    subprocess.run([sys.executable, "-m", "shardforge.cli", "train", str(cfg_path)], check=True)
    top_ops = work / "sf-run" / "profile" / "top_ops.txt"
    if top_ops.exists():
        print(
            f"shardforge, steps {args.profile_at}-{args.profile_at + 1}, by device time:\n{top_ops.read_text()}"
        )
    rows = [json.loads(line) for line in (work / "sf-run" / "metrics.jsonl").read_text().splitlines()]
    steady = [r for r in rows if r["step"] > args.warmup]
    mfu = [r["mfu"] for r in steady if r.get("mfu") is not None]
    return {
        "engine": "shardforge",
        "tokens_per_s": statistics.median(r["tokens_per_s"] for r in steady),
        "mfu": statistics.median(mfu) if mfu else None,
        "memory_gib": max((r.get("memory_mib") or 0) for r in steady) / 1024,
        "params": mcfg.num_params(),
    }


def torchtitan_flavor(size: str, vocab_size: int) -> dict[str, Any]:
    """Our model shape as torchtitan's `TransformerModelArgs` fields. torchtitan derives the MLP
    width as int(8·dim/3) rounded up to `multiple_of`; a multiple of our width gives our width."""
    from shardforge.trainer import model_config

    m = model_config(size, vocab_size=vocab_size)
    if m.tie_embeddings or m.qk_norm:
        sys.exit(f"size {size} ties embeddings or uses QK-norm; torchtitan's Llama 3 has neither")
    hidden = m.hidden_dim
    if hidden < int(8 * m.dim / 3):
        sys.exit(f"size {size}: MLP width {hidden} is below torchtitan's minimum int(8·dim/3)")
    return {
        "dim": m.dim,
        "n_layers": m.n_layers,
        "n_heads": m.n_heads,
        "n_kv_heads": m.n_kv_heads,
        "vocab_size": vocab_size,
        "multiple_of": hidden,
        "rope_theta": m.rope_base,
    }


def torchtitan_command(
    args: argparse.Namespace, work: Path, text: list[Path]
) -> tuple[list[str], dict[str, str]]:
    """torchtitan's command line and environment: the text as one JSONL file, the tokenizer in
    the directory layout it expects, and a module that registers our model shape as a flavor."""
    from tokenizers import Tokenizer

    data = work / "tt-data"
    data.mkdir(exist_ok=True)
    with open(data / "train.jsonl", "w") as out:
        for path in text:
            with open(path) as f:
                shutil.copyfileobj(f, out)
    tok_dir = args.tokenizer.parent
    vocab = Tokenizer.from_file(str(args.tokenizer)).get_vocab_size()
    shim = work / "tt-shim"
    shim.mkdir(exist_ok=True)
    fields = torchtitan_flavor(args.size, vocab)
    (shim / "sf_bench_flavor.py").write_text(
        "from torchtitan.models.llama3 import llama3_args\n"
        "from torchtitan.models.llama3.model.args import TransformerModelArgs\n"
        f"llama3_args['sf_bench'] = TransformerModelArgs(**{fields!r})\n"
    )
    cmd = [
        *(
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=1",
            "-m",
            "torchtitan.train",
        ),
        *("--experimental.custom_import", "sf_bench_flavor"),
        *("--model.name", "llama3", "--model.flavor", "sf_bench", "--model.hf_assets_path", str(tok_dir)),
        *("--training.dataset", "c4_test", "--training.dataset_path", str(data)),
        *("--training.seq_len", str(args.seq_len), "--training.local_batch_size", str(args.batch)),
        *("--training.steps", str(args.steps), "--lr_scheduler.warmup_steps", str(min(10, args.steps))),
        *("--activation_checkpoint.mode", "none", "--metrics.log_freq", "1"),
        "--metrics.disable_color_printing",
        *("--job.dump_folder", str(work / "tt-run")),
    ]
    cmd += ["--compile.enable"] if args.compile else []
    env = dict(os.environ, PYTHONPATH=f"{shim}:{os.environ.get('PYTHONPATH', '')}", HF_HUB_OFFLINE="1")
    env["HF_DATASETS_OFFLINE"] = "1"
    return cmd, env


def run_torchtitan(args: argparse.Namespace, work: Path, text: list[Path]) -> dict[str, Any]:
    import importlib.metadata

    version = importlib.metadata.version("torchtitan")
    cmd, env = torchtitan_command(args, work, text)
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    (work / "tt.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        sys.exit(f"torchtitan failed; its log is {work / 'tt.log'}:\n{proc.stderr[-3000:]}")
    steps = [
        (int(m.group(1)), float(m.group(2).replace(",", "")), float(m.group(3)) / 100)
        for m in TT_LINE.finditer(proc.stdout + proc.stderr)
    ]
    steady = [s for s in steps if s[0] > args.warmup]
    if not steady:
        sys.exit(f"no step lines after step {args.warmup} in {work / 'tt.log'}")
    return {
        "engine": f"torchtitan {version}",
        "tokens_per_s": statistics.median(s[1] for s in steady),
        "mfu": statistics.median(s[2] for s in steady),
        "memory_gib": None,
        "params": None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokenizer", type=Path, required=True, help="a Hugging Face tokenizer.json")
    ap.add_argument("--size", default="1b", help="model size of shardforge.trainer.SIZES (default: 1b)")
    ap.add_argument("--seq-len", type=int, default=2048)
    ap.add_argument("--batch", type=int, default=4, help="sequences per step")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--warmup", type=int, default=5, help="first steps left out of the medians")
    ap.add_argument("--param-dtype", default="bfloat16", help="shardforge's parameter dtype")
    ap.add_argument("--no-kernels", dest="kernels", action="store_false", help="plain PyTorch layers")
    ap.add_argument("--no-compile", dest="compile", action="store_false", help="no torch.compile")
    ap.add_argument(
        "--reserved-tokens",
        type=int,
        default=254,
        help="placeholder special tokens after BOS and EOS (default 254: Llama 3's 128,256-token vocabulary)",
    )
    ap.add_argument("--profile-at", type=int, default=0, help="profile shardforge's steps N and N+1")
    ap.add_argument("--skip", nargs="*", default=[], choices=["shardforge", "torchtitan"])
    ap.add_argument("--work", type=Path, default=None, help="work directory (default: a new temporary one)")
    args = ap.parse_args()
    if args.steps <= args.warmup:
        sys.exit("--steps must exceed --warmup")
    import torch

    import shardforge

    work = args.work or Path(tempfile.mkdtemp(prefix="sf-trainer-gpu-"))
    work.mkdir(parents=True, exist_ok=True)
    text = gather_text(work)
    args.tokenizer = prepare_tokenizer(args.tokenizer, work, args.reserved_tokens)
    results = []
    if "shardforge" not in args.skip:
        results.append(run_shardforge(args, work, text))
    if "torchtitan" not in args.skip:
        results.append(run_torchtitan(args, work, text))
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    from tokenizers import Tokenizer

    vocab = Tokenizer.from_file(str(args.tokenizer)).get_vocab_size()
    print(
        f"\n{args.size}, vocab {vocab:,}, seq_len {args.seq_len}, batch {args.batch}, {args.steps} steps, {device}"
    )
    print("| engine | tokens/s | MFU | peak memory GiB |\n|---|---|---|---|")
    for r in results:
        mfu = f"{r['mfu']:.1%}" if r["mfu"] is not None else "n/a"
        mem = f"{r['memory_gib']:.1f}" if r["memory_gib"] else "-"
        print(f"| {r['engine']} | {r['tokens_per_s']:,.0f} | {mfu} | {mem} |")
    if len(results) == 2:
        print(
            f"shardforge vs torchtitan: {results[0]['tokens_per_s'] / results[1]['tokens_per_s']:.2f}× tokens/s"
        )
    out = HERE / "out" / "trainer_gpu.csv"
    out.parent.mkdir(exist_ok=True)
    if out.exists() and out.open().readline().strip() != ",".join(HEADER):
        out.rename(out.with_suffix(".old.csv"))  # written by a version with other columns
    new = not out.exists()
    with open(out, "a", newline="") as f:
        w = csv.writer(f)
        if new:
            w.writerow(HEADER)
        for r in results:
            row = [datetime.date.today(), device, torch.__version__, shardforge.__version__, r["engine"]]
            w.writerow([*row, args.size, args.seq_len, args.batch, vocab, round(r["tokens_per_s"]), r["mfu"]])
    print(f"rows appended to {out}; work dir {work}")


if __name__ == "__main__":
    main()

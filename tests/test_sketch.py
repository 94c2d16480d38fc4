"""Signatures against exact Jaccard, LSH parameters against datasketch, input forms."""

from __future__ import annotations

import random
import threading

import numpy as np
import pyarrow as pa
import pytest

import shardforge
from conftest import mutate


@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.7, 0.8, 0.9, 0.95])
@pytest.mark.parametrize("num_perm", [64, 128, 256])
def test_lsh_params_match_datasketch(threshold: float, num_perm: int) -> None:
    from datasketch import MinHashLSH

    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    assert shardforge.lsh_params(threshold, num_perm) == (lsh.b, lsh.r)


@pytest.mark.parametrize("method", ["classic", "one_permutation"])
def test_estimates_within_sketch_error_on_real_pairs(real_docs: list[str], method: str) -> None:
    rng = random.Random(7)
    k = 256
    errors = []
    outside = 0
    for doc in real_docs[:150]:
        other = mutate(doc, rng.choice([0.02, 0.05, 0.1, 0.2, 0.4]), rng)
        a = set(shardforge.shingle_hashes(doc).tolist())
        b = set(shardforge.shingle_hashes(other).tolist())
        exact = len(a & b) / len(a | b)
        sig = shardforge.minhash([doc, other], num_perm=k, method=method)
        est = float(np.mean(sig[0] == sig[1]))
        sd = max(np.sqrt(exact * (1 - exact) / k), 1 / k)
        outside += abs(est - exact) > 4 * sd
        errors.append(est - exact)
    # Unbiased: the mean error is far inside one standard error of the mean.
    assert abs(np.mean(errors)) < 0.01, np.mean(errors)
    assert outside <= 2, f"{outside} of 150 estimates outside 4 sigma"


def test_accuracy_comparable_to_datasketch(real_docs: list[str]) -> None:
    from datasketch import MinHash

    rng = random.Random(3)
    ours, theirs = [], []
    for doc in real_docs[:80]:
        other = mutate(doc, 0.1, rng)
        sa, sb = shardforge.shingle_hashes(doc), shardforge.shingle_hashes(other)
        exact = len(set(sa.tolist()) & set(sb.tolist())) / len(set(sa.tolist()) | set(sb.tolist()))
        sig = shardforge.minhash([doc, other])
        ours.append(abs(float(np.mean(sig[0] == sig[1])) - exact))
        ma, mb = MinHash(num_perm=128), MinHash(num_perm=128)
        ma.update_batch([int(h).to_bytes(8, "little") for h in sa])
        mb.update_batch([int(h).to_bytes(8, "little") for h in sb])
        theirs.append(abs(ma.jaccard(mb) - exact))
    # Same k, same value range: the mean absolute error is the same up to sampling noise.
    assert np.mean(ours) < 1.5 * np.mean(theirs) + 0.005, (np.mean(ours), np.mean(theirs))


def test_identical_and_disjoint_texts() -> None:
    sig = shardforge.minhash(
        ["the quick brown fox jumps over", "The quick, brown fox jumps over!", "zz yy xx"]
    )
    assert (sig[0] == sig[1]).all()
    assert (sig[0] != sig[2]).mean() > 0.95
    empty = shardforge.minhash(["", "   ...  "])
    assert (empty == np.iinfo(np.uint32).max).all()


def test_shingles_short_text_is_one_shingle() -> None:
    assert len(shardforge.shingle_hashes("only three words")) == 1
    assert len(shardforge.shingle_hashes("one two three four five six")) == 2
    assert len(shardforge.shingle_hashes("")) == 0


def test_normalization_matches_python_reference() -> None:
    import re
    import string

    def reference(text: str) -> str:
        text = text.lower()
        text = re.sub(f"[{re.escape(string.punctuation)}]", " ", text)
        return " ".join(text.split())

    rng = random.Random(1)
    alphabet = string.ascii_letters + string.digits + string.punctuation + " \t\n"
    for _ in range(500):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 80)))
        assert shardforge.normalize_text(text) == reference(text)
    assert shardforge.normalize_text("Café ＦＵＬＬ", nfkc=True) == "café full"
    assert shardforge.normalize_text("v1.2 and 345", fold_digits=True) == "v0 0 and 000"


def test_arrow_input_is_zero_copy_and_matches_lists(real_docs: list[str]) -> None:
    texts = real_docs[:40]
    expected = shardforge.minhash(texts, method="one_permutation")
    arr = pa.array(texts)
    assert (shardforge.minhash(arr, method="one_permutation") == expected).all()
    assert (shardforge.minhash(arr.slice(5, 20), method="one_permutation") == expected[5:25]).all()
    large = pa.array(texts, type=pa.large_string())
    assert (shardforge.minhash(large, method="one_permutation") == expected).all()
    chunked = pa.chunked_array([texts[:10], texts[10:]])
    assert (shardforge.minhash(chunked, method="one_permutation") == expected).all()
    with pytest.raises(ValueError, match="nulls"):
        shardforge.minhash(pa.array(["a", None]))


def test_candidate_pairs_and_components() -> None:
    sig = np.array([[1, 2, 3, 4], [1, 2, 9, 9], [7, 7, 3, 4], [5, 5, 5, 5]], dtype=np.uint32)
    pairs = shardforge.candidate_pairs(sig, bands=2, rows=2)
    assert pairs.tolist() == [[0, 1], [0, 2]]
    labels = shardforge.connected_components(4, pairs)
    assert labels.tolist() == [0, 0, 0, 3]
    with pytest.raises(shardforge.ConfigError):
        shardforge.candidate_pairs(sig, bands=3, rows=2)
    with pytest.raises(shardforge.ConfigError):
        shardforge.connected_components(2, pairs)


def test_native_calls_from_many_threads(real_docs: list[str]) -> None:
    texts = real_docs[:60]
    expected = shardforge.minhash(texts)
    results: list[np.ndarray] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(5):
                results.append(shardforge.minhash(texts))
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(results) == 20
    assert all((r == expected).all() for r in results)

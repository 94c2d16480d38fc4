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


def _low32(text: str, **options: object) -> list[int]:
    """The 32-bit values a peer's `hashfunc` would return for our shingles."""
    return [int(h) & 0xFFFFFFFF for h in shardforge.shingle_hashes(text, **options)]


@pytest.mark.parametrize("scheme", ["affine32", "legacy"])
@pytest.mark.parametrize(("num_perm", "seed", "ngram"), [(128, 1, 5), (7, 4_000_000_000, 3)])
def test_classic_signatures_equal_datasketch(
    real_docs: list[str], scheme: str, num_perm: int, seed: int, ngram: int
) -> None:
    from datasketch import MinHash

    # A text with no words keeps datasketch's empty value everywhere, as ours does.
    docs = [*real_docs[:40], "", "two words"]
    sigs = shardforge.minhash(docs, num_perm=num_perm, seed=seed, ngram=ngram, scheme=scheme)
    for doc, sig in zip(docs, sigs, strict=True):
        m = MinHash(num_perm=num_perm, seed=seed, scheme=scheme, hashfunc=lambda h: h)
        m.update_batch(_low32(doc, ngram=ngram))
        np.testing.assert_array_equal(sig, m.hashvalues.astype(np.uint64))


def test_datatrove_scheme_equals_its_signature_formula(real_docs: list[str]) -> None:
    # datatrove's MinhashDedupSignature (32-bit hashes): every a, then every b, from one
    # RandomState; ((h * a + b) mod 2^64) mod (2^61 - 1), low 32 bits, minimum per column.
    k, seed, prime = 112, 5, np.uint64((1 << 61) - 1)
    gen = np.random.RandomState(seed)
    a = gen.randint(1, prime, dtype=np.uint64, size=(1, k))
    b = gen.randint(0, prime, dtype=np.uint64, size=(1, k))
    docs = real_docs[:40]
    sigs = shardforge.minhash(docs, num_perm=k, seed=seed, scheme="datatrove")
    for doc, sig in zip(docs, sigs, strict=True):
        h = np.array(_low32(doc), dtype=np.uint64).reshape(-1, 1)
        expected = np.min(((h * a + b) % prime) & np.uint64(0xFFFFFFFF), axis=0)
        np.testing.assert_array_equal(sig, expected)


def test_bad_scheme_and_seed_are_config_errors() -> None:
    with pytest.raises(shardforge.ConfigError, match="seed must be below 2"):
        shardforge.minhash(["some text here"], seed=1 << 32)
    with pytest.raises(shardforge.ConfigError, match="unknown variant"):
        shardforge.minhash(["some text here"], scheme="affine64")
    with pytest.raises(shardforge.ConfigError, match="classic sketch only"):
        shardforge.minhash(["some text here"], method="one_permutation", scheme="legacy")


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

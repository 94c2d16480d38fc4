//! Time byte-level tokenization on a JSONL file, one thread: GPT-2's and cl100k's splits by the
//! regex engine and by the hand-written matchers (checked equal on the file), then whole encoding
//! with the per-thread word cache.
//!
//!     cargo run --release -p shardforge-core --example tokenize_stages -- TOKENIZER.json FILE.jsonl [MB]

#[path = "common/texts.rs"]
mod texts;
#[path = "common/timing.rs"]
mod timing;
use texts::read_texts;
use timing::median_mbps;

use shardforge_core::tokenize::Encoder;
use shardforge_core::tokenize::pretokenize::{CL100K_PATTERN, GPT2_PATTERN, Split};
use std::path::Path;
use tokenizers::utils::SysRegex;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mb: f64 = args.get(3).map_or(10.0, |s| s.parse().unwrap());
    let (texts, bytes) = read_texts(&args[2], mb);
    println!("{} docs, {bytes} bytes", texts.len());
    for (split, pattern) in [(Split::Gpt2, GPT2_PATTERN), (Split::Cl100k, CL100K_PATTERN)] {
        let regex = SysRegex::new(pattern).unwrap();
        let by_regex = median_mbps(bytes, 3, || {
            for t in &texts {
                std::hint::black_box(regex.find_iter(t).count());
            }
        });
        let by_matcher = median_mbps(bytes, 5, || {
            for t in &texts {
                split.for_each_word(t, |_| Ok::<(), ()>(())).unwrap();
            }
        });
        let mut words = 0;
        for t in &texts {
            let mut expected = regex.find_iter(t).map(|(a, b)| &t[a..b]);
            split
                .for_each_word(t, |w| {
                    assert_eq!(Some(w), expected.next(), "{split:?} split differs");
                    words += 1;
                    Ok::<(), ()>(())
                })
                .unwrap();
            assert_eq!(expected.next(), None, "{split:?} split differs");
        }
        println!(
            "{:<24} regex {by_regex:6.1} MB/s, matcher {by_matcher:6.1} MB/s ({:.1}x), {words} words, equal",
            format!("{split:?} split"),
            by_matcher / by_regex
        );
    }
    let t = std::time::Instant::now();
    // Vocabularies converted from tiktoken may lack an end-of-text token; one is then added.
    let enc = Encoder::from_file(Path::new(&args[1]), Some("<|endoftext|>"), None).unwrap();
    let load = t.elapsed().as_secs_f64();
    let t = std::time::Instant::now();
    let json = enc.to_json().unwrap();
    println!(
        "tokenizer: load {load:.3} s, to_json {:.3} s ({} bytes)",
        t.elapsed().as_secs_f64(),
        json.len()
    );
    let mut ids = Vec::new();
    // The first pass, with an empty word cache: what a data job pays on new text.
    let t = std::time::Instant::now();
    for t in &texts {
        enc.encode_cached(t, &mut ids).unwrap();
    }
    println!(
        "{:<24} {:8.1} MB/s",
        "encode (first pass)",
        bytes as f64 / 1e6 / t.elapsed().as_secs_f64()
    );
    let encode = median_mbps(bytes, 5, || {
        ids.clear();
        for t in &texts {
            enc.encode_cached(t, &mut ids).unwrap();
        }
    });
    // A digest of the ids, so a change that alters them shows.
    let digest = ids.iter().fold(0u64, |h, &id| {
        (h ^ u64::from(id)).wrapping_mul(0x9E37_79B9_7F4A_7C15)
    });
    println!(
        "{:<24} {encode:8.1} MB/s ({} ids, digest {digest:016x})",
        "encode (warm cache)",
        ids.len()
    );
}

//! Time the quality rules on a JSONL file: the word splitter alone, each family alone, and all.
//!
//!     cargo run --release -p shardforge-core --example filter_stages -- FILE.jsonl

#[path = "common/texts.rs"]
mod texts;
#[path = "common/timing.rs"]
mod timing;
use texts::read_texts;
use timing::median_mbps;

use shardforge_core::filter::Scratch;
use shardforge_core::filter::{FilterConfig, Words};

fn main() {
    let path = std::env::args().nth(1).expect("a JSONL file");
    let (texts, bytes) = read_texts(&path, f64::INFINITY);
    println!("{} docs, {bytes} bytes", texts.len());
    let mut words = Words::default();
    let r = median_mbps(bytes, 5, || {
        for t in &texts {
            words.split(t);
        }
    });
    // A digest of every word span, so a change to the splitter that alters its output shows.
    let mut digest = 0u64;
    for t in &texts {
        words.split(t);
        for w in words.iter(t) {
            let at = w.as_ptr() as usize - t.as_ptr() as usize;
            digest = (digest ^ xxhash_rust::xxh3::xxh3_64(w.as_bytes()) ^ at as u64)
                .wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    println!("{:<20} {r:8.1} MB/s (spans digest {digest:016x})", "words");
    let families = ["gopher_repetition", "gopher_quality", "c4", "fineweb"];
    let only = |family: &str| {
        let mut c = FilterConfig::default();
        c.gopher_repetition.enabled = family == families[0];
        c.gopher_quality.enabled = family == families[1];
        c.c4.enabled = family == families[2];
        c.fineweb.enabled = family == families[3];
        c
    };
    let mut scratch = Scratch::default();
    // `filter_stages FILE FAMILY`: that family alone, for a profiler.
    let chosen: Vec<String> = std::env::args().skip(2).collect();
    for family in families.into_iter().chain(["all"]) {
        if !chosen.is_empty() && !chosen.iter().any(|c| c == family) {
            continue;
        }
        let cfg = if family == "all" {
            FilterConfig::default()
        } else {
            only(family)
        };
        let r = median_mbps(bytes, 5, || {
            for t in &texts {
                std::hint::black_box(cfg.evaluate(t, &mut scratch));
            }
        });
        println!("{family:<20} {r:8.1} MB/s (words included)");
    }
}

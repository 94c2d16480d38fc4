//! Time each stage of sketching on a JSONL file: normalize, shingle hashing, and each sketch.
//!
//!     cargo run --release -p shardforge-core --example sketch_stages -- FILE.jsonl [MB]

#[path = "common/texts.rs"]
mod texts;
#[path = "common/timing.rs"]
mod timing;
use texts::read_texts;
use timing::median_mbps;

use shardforge_core::minhash::{Permutations, Scheme};
use shardforge_core::normalize::{NormalizeConfig, WordScratch, normalize_with};
use shardforge_core::oph::OnePermutation;
use shardforge_core::shingle::for_each_shingle;
use shardforge_core::shingle::for_each_shingle_in_text;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mb: f64 = args.get(2).map_or(10.0, |s| s.parse().unwrap());
    let (texts, bytes) = read_texts(&args[1], mb);
    let cfg = NormalizeConfig::default();
    let mut norm = String::new();
    let mut words = WordScratch::default();
    let normalized: Vec<String> = texts
        .iter()
        .map(|t| {
            normalize_with(t, &cfg, &mut words, &mut norm);
            norm.clone()
        })
        .collect();
    let nbytes: usize = normalized.iter().map(String::len).sum();
    let shingles: Vec<Vec<u64>> = normalized
        .iter()
        .map(|t| {
            let mut v = Vec::new();
            for_each_shingle(t, 5, |h| v.push(h));
            v
        })
        .collect();
    let nsh: usize = shingles.iter().map(Vec::len).sum();
    println!(
        "{} docs, {bytes} bytes, normalized {nbytes}, {nsh} shingles ({:.1} bytes/shingle)",
        texts.len(),
        bytes as f64 / nsh as f64
    );
    let r = median_mbps(bytes, 7, || {
        for t in &texts {
            normalize_with(t, &cfg, &mut words, &mut norm);
            std::hint::black_box(&norm);
        }
    });
    println!("normalize        {r:8.1} MB/s of raw text");
    let r = median_mbps(bytes, 7, || {
        let mut acc = 0u64;
        for t in &normalized {
            for_each_shingle(t, 5, |h| acc ^= h);
        }
        std::hint::black_box(acc);
    });
    println!("shingle hashing  {r:8.1} MB/s of raw text");
    let r = median_mbps(bytes, 7, || {
        let mut acc = 0u64;
        for t in &texts {
            for_each_shingle_in_text(t, &cfg, 5, &mut words, None, |h| acc ^= h);
        }
        std::hint::black_box(acc);
    });
    println!("normalize+shingle fused {r:8.1} MB/s of raw text");
    let sk =
        shardforge_core::sketch::Sketcher::new(&shardforge_core::sketch::SketchConfig::default())
            .unwrap();
    let mut scratch = shardforge_core::sketch::Scratch::default();
    let mut sig = vec![0u32; 128];
    let r = median_mbps(bytes, 7, || {
        for t in &texts {
            sk.sign(t, &mut scratch, &mut sig);
        }
    });
    println!("classic end to end {r:8.1} MB/s of raw text");
    let sk = shardforge_core::sketch::Sketcher::new(&shardforge_core::sketch::SketchConfig {
        method: shardforge_core::sketch::SketchMethod::OnePermutation,
        ..Default::default()
    })
    .unwrap();
    let r = median_mbps(bytes, 7, || {
        for t in &texts {
            sk.sign(t, &mut scratch, &mut sig);
        }
    });
    println!("oph end to end     {r:8.1} MB/s of raw text");
    for scheme in [Scheme::Affine32, Scheme::Legacy] {
        let perms = Permutations::new(128, 1, scheme);
        let inputs: Vec<Vec<u32>> = shingles
            .iter()
            .map(|v| {
                let mut h: Vec<u32> = v.iter().map(|&h| h as u32).collect();
                perms.prepare(&mut h);
                h
            })
            .collect();
        let r = median_mbps(bytes, 7, || {
            for h in &inputs {
                perms.sign(h, &mut sig);
                std::hint::black_box(&sig);
            }
        });
        println!(
            "classic sign {:<10} {r:8.1} MB/s of raw text",
            format!("{scheme:?}")
        );
    }
    let oph = OnePermutation::new(128, 1);
    let r = median_mbps(bytes, 7, || {
        for h in &shingles {
            oph.sign(h, &mut sig);
            std::hint::black_box(&sig);
        }
    });
    println!("oph sign         {r:8.1} MB/s of raw text");
}

//! Tokenization into the token dataset of DESIGN §3: `manifest.json`, `tokenizer.json`,
//! `NNNNN.tokens` and `NNNNN.parquet`.

pub mod byte_bpe;
pub mod byte_level;
pub mod config;
pub mod encoder;
pub mod manifest;
pub mod pipeline;
pub mod pretokenize;
pub mod shard;
pub mod train;
pub mod verify;
pub mod word_cache;

pub use config::TokenizeConfig;
pub use encoder::Encoder;
pub use manifest::{Dtype, Manifest};
pub use pipeline::{TokenizeReport, run};

/// A tokenizer file from the shared test material beside the repository (DESIGN §6).
#[cfg(test)]
pub(crate) fn shared_tokenizer(name: &str) -> std::path::PathBuf {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/tokenizers")
        .join(name);
    assert!(
        p.exists(),
        "{} is missing: the shared test material must sit beside the repository",
        p.display()
    );
    p
}

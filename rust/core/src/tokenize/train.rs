//! `shardforge tokenizer train`: a byte-level BPE tokenizer (the GPT-2 family's layout) trained with
//! the crate's BPE trainer on documents from any reader.

use crate::atomic::write_atomic;
use crate::control::Control;
use crate::error::{Error, Result};
use crate::input::discover;
use crate::reader::{FieldConfig, Item, read_file};
use std::path::Path;
use tokenizers::models::TrainerWrapper;
use tokenizers::models::bpe::{BPE, BpeTrainer};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{AddedToken, Tokenizer};

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    pub fields: FieldConfig,
    /// Size of the vocabulary, the 256 byte symbols and the special tokens included.
    pub vocab_size: usize,
    /// A merge needs a pair seen at least this often.
    pub min_frequency: u64,
    /// Added as special tokens with the first ids, in this order.
    pub special_tokens: Vec<String>,
    /// Text read for training, at most; every input file contributes an equal share of it, so a
    /// sample of a large corpus still covers all of its sources.
    pub max_bytes: u64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            fields: FieldConfig::default(),
            vocab_size: 32_000,
            min_frequency: 2,
            special_tokens: vec!["<|endoftext|>".into()],
            max_bytes: 1 << 30,
        }
    }
}

#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct TrainReport {
    pub documents: u64,
    pub text_bytes: u64,
    pub vocab_size: usize,
    pub seconds: f64,
}

/// Train on `inputs` and write `tokenizer.json` to `output` (atomically).
pub fn train(
    inputs: &[String],
    output: &Path,
    cfg: &TrainConfig,
    ctl: &Control,
) -> Result<TrainReport> {
    let t0 = std::time::Instant::now();
    let min_vocab = 256 + cfg.special_tokens.len();
    if cfg.vocab_size < min_vocab {
        return Err(Error::Config(format!(
            "vocab_size {} is below the {min_vocab} byte and special symbols",
            cfg.vocab_size
        )));
    }
    let files = discover(inputs)?;
    let mut texts: Vec<String> = Vec::new();
    let mut bytes = 0u64;
    let share = (cfg.max_bytes / files.len() as u64).max(1);
    for file in &files {
        let mut full = false;
        let mut file_bytes = 0u64;
        read_file(file, &cfg.fields, &ctl.cancel, |items| {
            for it in items {
                match it {
                    // Training reads what it can; a bad record only costs a sample.
                    Item::Reject(_) => {}
                    Item::Doc(d) => {
                        file_bytes += d.text.len() as u64;
                        texts.push(d.text);
                    }
                }
                if file_bytes >= share {
                    full = true;
                    return Err(Error::Interrupted);
                }
            }
            Ok(())
        })
        .or_else(|e| if full { Ok(()) } else { Err(e) })?;
        bytes += file_bytes;
        ctl.docs_read.store(texts.len() as u64, Ordering::Relaxed);
        ctl.bytes_read.store(bytes, Ordering::Relaxed);
    }
    ctl.check()?;
    let specials: Vec<AddedToken> = cfg
        .special_tokens
        .iter()
        .map(|t| AddedToken::from(t.clone(), true))
        .collect();
    let trainer = BpeTrainer::builder()
        .vocab_size(cfg.vocab_size)
        .min_frequency(cfg.min_frequency)
        .special_tokens(specials)
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .show_progress(false)
        .build();
    let mut tk = Tokenizer::new(BPE::default());
    tk.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)))
        .with_decoder(Some(ByteLevel::default()))
        .with_post_processor(Some(ByteLevel::new(false, false, true)));
    let mut trainer = TrainerWrapper::BpeTrainer(trainer);
    tk.train(&mut trainer, texts.iter())
        .map_err(|e| Error::Config(format!("tokenizer training failed: {e}")))?;
    let json = tk
        .to_string(true)
        .map_err(|e| Error::Config(format!("cannot serialize the tokenizer: {e}")))?;
    write_atomic(output, json.as_bytes())?;
    Ok(TrainReport {
        documents: texts.len() as u64,
        text_bytes: bytes,
        vocab_size: tk.get_vocab_size(true),
        seconds: t0.elapsed().as_secs_f64(),
    })
}

use std::sync::atomic::Ordering;

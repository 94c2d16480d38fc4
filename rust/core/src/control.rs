//! What a long job shares with whoever watches it: progress counters, a cancel flag, peak memory.

use crate::error::{Error, Result};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};

/// Shared between the job and whoever watches it: progress counters and a cancel flag.
#[derive(Default)]
pub struct Control {
    pub cancel: AtomicBool,
    /// Job-specific stage number; 0 is starting, the highest is done.
    pub stage: AtomicU8,
    pub files_total: AtomicU64,
    pub files_done: AtomicU64,
    pub docs_read: AtomicU64,
    pub bytes_read: AtomicU64,
}

impl Control {
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }

    pub fn check(&self) -> Result<()> {
        if self.cancel.load(Ordering::Relaxed) {
            Err(Error::Interrupted)
        } else {
            Ok(())
        }
    }
}

/// Peak resident set size of this process (Linux `VmHWM`); 0 where unknown.
#[must_use]
pub fn peak_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<u64>().ok())
            })
        })
        .map_or(0, |kb| kb * 1024)
}

//! Atomic file output: write to a temporary name in the target directory, fsync, rename. A reader
//! (or a resumed run) sees either the old file or the complete new one, never a partial file.

use crate::error::{Error, Result};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

pub struct AtomicFile {
    tmp: PathBuf,
    dest: PathBuf,
}

impl AtomicFile {
    /// Create the temporary file for `dest` (parent directories are created).
    pub fn create(dest: &Path) -> Result<(Self, File)> {
        let dir = dest.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
        let file = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        Ok((
            Self {
                tmp,
                dest: dest.to_path_buf(),
            },
            file,
        ))
    }

    /// fsync `file` (the handle from `create`), rename it into place and fsync the directory.
    pub fn commit(self, file: File) -> Result<()> {
        file.sync_all().map_err(|e| Error::io(&self.tmp, e))?;
        drop(file);
        std::fs::rename(&self.tmp, &self.dest).map_err(|e| Error::io(&self.dest, e))?;
        if let Some(dir) = self.dest.parent()
            && let Ok(d) = File::open(if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            })
        {
            // Best effort: some filesystems refuse fsync on directories.
            let _ = d.sync_all();
        }
        Ok(())
    }

    #[must_use]
    pub fn tmp_path(&self) -> &Path {
        &self.tmp
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        // After a successful commit the temp name no longer exists; otherwise clean up.
        let _ = std::fs::remove_file(&self.tmp);
    }
}

/// Write `bytes` to `dest` atomically.
pub fn write_atomic(dest: &Path, bytes: &[u8]) -> Result<()> {
    let (guard, file) = AtomicFile::create(dest)?;
    let mut w = BufWriter::new(file);
    w.write_all(bytes)
        .map_err(|e| Error::io(guard.tmp_path(), e))?;
    let file = w
        .into_inner()
        .map_err(|e| Error::io(guard.tmp_path(), e.into_error()))?;
    guard.commit(file)
}

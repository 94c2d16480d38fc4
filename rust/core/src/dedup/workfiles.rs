//! Per-input work files: what the sketch pass learned of each input file, kept on disk so that
//! clustering streams them with bounded memory and an interrupted run skips finished files.
//!
//! For input number `i`, `work/iiiii.meta` holds one fixed-size record per document, `.sig` the
//! signatures (k × u32 each), `.ids` the document ids (u32 length + bytes), `.rej` the rejected
//! records as JSON lines. `.done` is written last, atomically; without it (or with a fingerprint
//! that differs from the current run's) the file is sketched again.

use crate::atomic::{AtomicFile, write_atomic};
use crate::error::{Error, Result};
use crate::input::InputFile;
use crate::reader::Reject;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Done {
    pub fingerprint: String,
    pub input_size: u64,
    pub input_mtime_ns: u64,
    pub docs: u64,
    pub rejects: u64,
    pub text_bytes: u64,
    /// Set when the file ended in a stream error that was skipped (truncated compressed input).
    pub incomplete: bool,
}

pub struct MetaRecord {
    pub line: u64,
    pub exact: u128,
    pub len: u64,
    pub key: f64,
    pub shingles: u32,
}

#[must_use]
pub const fn meta_record_bytes(bands: usize) -> usize {
    8 + 16 + 8 + 8 + 4 + 8 * bands
}

#[must_use]
pub fn path(work: &Path, index: usize, ext: &str) -> PathBuf {
    work.join(format!("{index:05}.{ext}"))
}

/// The finished record of input `index`, if it matches the input file and the fingerprint.
#[must_use]
pub fn load_done(work: &Path, index: usize, file: &InputFile, fingerprint: &str) -> Option<Done> {
    let bytes = std::fs::read(path(work, index, "done")).ok()?;
    let done: Done = serde_json::from_slice(&bytes).ok()?;
    (done.fingerprint == fingerprint
        && done.input_size == file.size
        && done.input_mtime_ns == file.mtime_ns)
        .then_some(done)
}

struct Part {
    guard: AtomicFile,
    w: BufWriter<File>,
}

impl Part {
    fn create(dest: &Path) -> Result<Self> {
        let (guard, f) = AtomicFile::create(dest)?;
        Ok(Self {
            guard,
            w: BufWriter::with_capacity(1 << 18, f),
        })
    }

    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.w
            .write_all(bytes)
            .map_err(|e| Error::io(self.guard.tmp_path(), e))
    }

    fn commit(self) -> Result<()> {
        let Part { guard, w } = self;
        let f = w
            .into_inner()
            .map_err(|e| Error::io(guard.tmp_path(), e.into_error()))?;
        guard.commit(f)
    }
}

pub struct SketchWriter {
    meta: Part,
    sig: Part,
    ids: Part,
    rej: Part,
    done_path: PathBuf,
    pub docs: u64,
    pub rejects: u64,
    pub text_bytes: u64,
}

impl SketchWriter {
    pub fn create(work: &Path, index: usize) -> Result<Self> {
        let done_path = path(work, index, "done");
        // A stale marker must not vouch for the new parts while they are being written.
        let _ = std::fs::remove_file(&done_path);
        Ok(Self {
            meta: Part::create(&path(work, index, "meta"))?,
            sig: Part::create(&path(work, index, "sig"))?,
            ids: Part::create(&path(work, index, "ids"))?,
            rej: Part::create(&path(work, index, "rej"))?,
            done_path,
            docs: 0,
            rejects: 0,
            text_bytes: 0,
        })
    }

    pub fn push_doc(
        &mut self,
        rec: &MetaRecord,
        bands: &[u64],
        sig: &[u32],
        id: &str,
    ) -> Result<()> {
        let mut buf = Vec::with_capacity(meta_record_bytes(bands.len()));
        buf.extend_from_slice(&rec.line.to_le_bytes());
        buf.extend_from_slice(&rec.exact.to_le_bytes());
        buf.extend_from_slice(&rec.len.to_le_bytes());
        buf.extend_from_slice(&rec.key.to_le_bytes());
        buf.extend_from_slice(&rec.shingles.to_le_bytes());
        for b in bands {
            buf.extend_from_slice(&b.to_le_bytes());
        }
        self.meta.write(&buf)?;
        let sig_bytes: Vec<u8> = sig.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.sig.write(&sig_bytes)?;
        self.ids.write(&(id.len() as u32).to_le_bytes())?;
        self.ids.write(id.as_bytes())?;
        self.docs += 1;
        self.text_bytes += rec.len;
        Ok(())
    }

    pub fn push_reject(&mut self, file: &Path, reject: &Reject) -> Result<()> {
        let bytes = reject.json_line(file);
        self.rej.write(&bytes)?;
        self.rejects += 1;
        Ok(())
    }

    pub fn finish(self, file: &InputFile, fingerprint: &str, incomplete: bool) -> Result<Done> {
        let done = Done {
            fingerprint: fingerprint.to_owned(),
            input_size: file.size,
            input_mtime_ns: file.mtime_ns,
            docs: self.docs,
            rejects: self.rejects,
            text_bytes: self.text_bytes,
            incomplete,
        };
        self.meta.commit()?;
        self.sig.commit()?;
        self.ids.commit()?;
        self.rej.commit()?;
        write_atomic(
            &self.done_path,
            &serde_json::to_vec_pretty(&done).expect("serializes"),
        )?;
        Ok(done)
    }
}

/// Stream the meta records of input `index`: `f(record, band_keys)`.
pub fn read_meta(
    work: &Path,
    index: usize,
    bands: usize,
    mut f: impl FnMut(&MetaRecord, &[u64]),
) -> Result<()> {
    let p = path(work, index, "meta");
    let file = File::open(&p).map_err(|e| Error::io(&p, e))?;
    let len = file.metadata().map_err(|e| Error::io(&p, e))?.len() as usize;
    let size = meta_record_bytes(bands);
    if !len.is_multiple_of(size) {
        return Err(Error::Config(format!(
            "{}: work file is corrupt (size {len} is not a multiple of {size}); delete the output's .shardforge-work directory",
            p.display()
        )));
    }
    let mut r = BufReader::with_capacity(1 << 18, file);
    let mut buf = vec![0u8; size];
    let mut keys = vec![0u64; bands];
    for _ in 0..len / size {
        r.read_exact(&mut buf).map_err(|e| Error::io(&p, e))?;
        let u64_at = |o: usize| u64::from_le_bytes(buf[o..o + 8].try_into().expect("8 bytes"));
        let rec = MetaRecord {
            line: u64_at(0),
            exact: u128::from_le_bytes(buf[8..24].try_into().expect("16 bytes")),
            len: u64_at(24),
            key: f64::from_bits(u64_at(32)),
            shingles: u32::from_le_bytes(buf[40..44].try_into().expect("4 bytes")),
        };
        for (b, k) in keys.iter_mut().enumerate() {
            *k = u64_at(44 + 8 * b);
        }
        f(&rec, &keys);
    }
    Ok(())
}

/// Stream the document ids of input `index`.
pub fn read_ids(work: &Path, index: usize, mut f: impl FnMut(&str)) -> Result<()> {
    let p = path(work, index, "ids");
    let file = File::open(&p).map_err(|e| Error::io(&p, e))?;
    let mut r = BufReader::with_capacity(1 << 18, file);
    let mut len_buf = [0u8; 4];
    let mut buf = Vec::new();
    loop {
        match r.read_exact(&mut len_buf) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(Error::io(&p, e)),
        }
        buf.resize(u32::from_le_bytes(len_buf) as usize, 0);
        r.read_exact(&mut buf).map_err(|e| Error::io(&p, e))?;
        f(std::str::from_utf8(&buf)
            .map_err(|_| Error::Config(format!("{}: corrupt id", p.display())))?);
    }
}

/// Random access to the signatures of one input's documents.
pub struct SigFile {
    file: File,
    path: PathBuf,
    k: usize,
}

impl SigFile {
    pub fn open(work: &Path, index: usize, k: usize) -> Result<Self> {
        let path = path(work, index, "sig");
        let file = File::open(&path).map_err(|e| Error::io(&path, e))?;
        Ok(Self { file, path, k })
    }

    pub fn read(&self, local: u64, out: &mut [u32]) -> Result<()> {
        use std::os::unix::fs::FileExt;
        let mut buf = vec![0u8; self.k * 4];
        self.file
            .read_exact_at(&mut buf, local * (self.k as u64) * 4)
            .map_err(|e| Error::io(&self.path, e))?;
        for (o, c) in out.iter_mut().zip(buf.chunks_exact(4)) {
            *o = u32::from_le_bytes(c.try_into().expect("4 bytes"));
        }
        Ok(())
    }
}

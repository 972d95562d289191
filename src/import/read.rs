//! Finding the inputs (files, folders walked recursively in sorted order, `-` for stdin)
//! and reading them on a thread of their own, one message at a time, into a bounded
//! channel: memory stays bounded whatever the size of the files.

use super::split::{Kind, Splitter};
use intake_pipeline::Format;
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{self, BufReader, Cursor, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use tokio::sync::mpsc;

/// How many bytes of an input decide its kind and fingerprint it.
const PREFIX: usize = 64 << 10;

/// One input to import.
#[derive(Debug)]
pub struct Input {
    /// The path as given or found (`-` for stdin).
    pub path: PathBuf,
    /// Its size in bytes (0 for stdin).
    pub size: u64,
    /// How it is cut into messages.
    pub kind: Kind,
    /// The checkpoint key (`None` for stdin, which cannot resume):
    /// `import:<canonical path>:<size>:<sha-256 of the first 64 KiB, 16 hex digits>`.
    pub key: Option<String>,
    /// Where reading starts (a saved checkpoint).
    pub start: u64,
}

impl Input {
    /// Whether this is standard input.
    pub fn is_stdin(&self) -> bool {
        self.path.as_os_str() == "-"
    }
}

/// Expands `paths` into inputs: files as given, folders recursively in sorted order
/// (hidden entries skipped), `-` as standard input (its kind is decided when read).
pub fn find(paths: &[PathBuf]) -> io::Result<Vec<Input>> {
    let mut files = Vec::new();
    for p in paths {
        if p.as_os_str() == "-" {
            files.push(p.clone());
        } else if std::fs::metadata(p).map_err(|e| at(p, e))?.is_dir() {
            walk(p, &mut files)?;
        } else {
            files.push(p.clone());
        }
    }
    files.into_iter().map(describe).collect()
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>) -> io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| at(dir, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| at(dir, e))?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        if e.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let path = e.path();
        // Symbolic links to files are followed; to folders, not (no cycles).
        if e.file_type().map_err(|e| at(&path, e))?.is_dir() {
            walk(&path, files)?;
        } else if std::fs::metadata(&path)
            .map_err(|e| at(&path, e))?
            .is_file()
        {
            files.push(path);
        }
    }
    Ok(())
}

fn at(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

fn describe(path: PathBuf) -> io::Result<Input> {
    if path.as_os_str() == "-" {
        return Ok(Input {
            path,
            size: 0,
            kind: Kind::Hl7,
            key: None,
            start: 0,
        });
    }
    let mut file = File::open(&path).map_err(|e| at(&path, e))?;
    let size = file.metadata().map_err(|e| at(&path, e))?.len();
    let prefix = read_prefix(&mut file).map_err(|e| at(&path, e))?;
    let canonical = path.canonicalize().map_err(|e| at(&path, e))?;
    let hash = Sha256::digest(&prefix);
    let hex = intake_pipeline::hex(&hash[..8]);
    Ok(Input {
        kind: Kind::detect(&prefix, extension(&path)),
        key: Some(format!("import:{}:{size}:{hex}", canonical.display())),
        path,
        size,
        start: 0,
    })
}

fn extension(path: &Path) -> Option<&str> {
    path.extension().and_then(|x| x.to_str())
}

fn read_prefix(r: &mut impl Read) -> io::Result<Vec<u8>> {
    let mut prefix = Vec::with_capacity(PREFIX);
    r.take(PREFIX as u64).read_to_end(&mut prefix)?;
    Ok(prefix)
}

/// What the reader thread sends.
pub enum Item {
    /// A message of input `input`, the `seq`-th read from it in this run.
    Message {
        /// Index into the inputs.
        input: usize,
        /// Its number among the messages read from this input in this run.
        seq: u64,
        /// Its format.
        format: Format,
        /// The message.
        piece: super::split::Piece,
    },
    /// Input `input` was read to its end: `messages` messages, `ignored` bytes outside
    /// MLLP frames.
    Done {
        /// Index into the inputs.
        input: usize,
        /// Messages read from it in this run.
        messages: u64,
        /// Bytes that were not part of any message.
        ignored: u64,
    },
    /// Reading input `input` failed; its remaining messages were not read.
    Failed {
        /// Index into the inputs.
        input: usize,
        /// What went wrong (names the path, never content).
        error: String,
    },
}

/// Reads every input in order, from its start offset, on the calling (blocking) thread;
/// stops early once the receiver is closed.
pub fn read_all(inputs: Vec<(PathBuf, Kind, u64)>, limit: usize, tx: mpsc::Sender<Item>) {
    for (i, (path, kind, start)) in inputs.into_iter().enumerate() {
        let item = match read_one(i, &path, kind, start, limit, &tx) {
            Ok(Some(done)) => done,
            Ok(None) => return,
            Err(e) => Item::Failed {
                input: i,
                error: format!("{}: {e}", path.display()),
            },
        };
        if tx.blocking_send(item).is_err() {
            return;
        }
    }
}

/// Reads one input; `Ok(None)` when the receiver went away.
fn read_one(
    input: usize,
    path: &Path,
    kind: Kind,
    start: u64,
    limit: usize,
    tx: &mpsc::Sender<Item>,
) -> io::Result<Option<Item>> {
    let reader: Box<dyn io::BufRead> = if path.as_os_str() == "-" {
        Box::new(BufReader::with_capacity(1 << 20, io::stdin().lock()))
    } else {
        let mut f = File::open(path)?;
        f.seek(SeekFrom::Start(start))?;
        Box::new(BufReader::with_capacity(1 << 20, f))
    };
    let (reader, kind): (Box<dyn io::BufRead>, Kind) = if path.as_os_str() == "-" {
        let mut reader = reader;
        let prefix = read_prefix(&mut reader)?;
        let kind = Kind::detect(&prefix, None);
        (Box::new(Cursor::new(prefix).chain(reader)), kind)
    } else {
        (reader, kind)
    };
    let mut split = Splitter::new(reader, kind, limit, start);
    let mut seq = 0;
    while let Some(piece) = split.next_piece()? {
        let item = Item::Message {
            input,
            seq,
            format: kind.format(),
            piece,
        };
        if tx.blocking_send(item).is_err() {
            return Ok(None);
        }
        seq += 1;
    }
    Ok(Some(Item::Done {
        input,
        messages: seq,
        ignored: split.ignored,
    }))
}

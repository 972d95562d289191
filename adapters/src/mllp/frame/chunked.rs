//! The framing property, as code: reading a byte string gives the same frames, the same
//! error and the same count of skipped bytes however the string is cut into reads.
//!
//! Shared by the unit tests of [`super`] (a proptest) and the `mllp_frame` fuzz target;
//! built for tests and with the crate's `testing` feature, never in the engine.

use super::{Frame, FrameLimits, FrameReader};
use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, ReadBuf};

/// A reader that hands out one pre-cut chunk per read, then EOF. It is always ready, so
/// no deadline of the [`FrameReader`] can fire.
pub struct Chunks(VecDeque<Vec<u8>>);

impl Chunks {
    /// The reads, in order; empty chunks are dropped (an empty read is EOF).
    pub fn new(chunks: Vec<Vec<u8>>) -> Self {
        Chunks(chunks.into_iter().filter(|c| !c.is_empty()).collect())
    }
}

impl AsyncRead for Chunks {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Some(mut c) = self.0.pop_front() {
            let n = c.len().min(buf.remaining());
            buf.put_slice(&c[..n]);
            if n < c.len() {
                let rest = c.split_off(n);
                self.0.push_front(rest);
            }
        }
        Poll::Ready(Ok(()))
    }
}

/// What reading a byte string to its end gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// The frames, in order.
    pub frames: Vec<Frame>,
    /// The error that ended the reading, as its message (which holds no payload bytes);
    /// `None` for a clean EOF between frames.
    pub error: Option<String>,
    /// Bytes skipped outside frames.
    pub skipped: u64,
}

/// `bytes` cut at `cuts` (offsets in any order; repeated ones and those at or past the
/// end are ignored).
pub fn split(bytes: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let mut cuts: Vec<usize> = cuts.iter().copied().filter(|&c| c < bytes.len()).collect();
    cuts.sort_unstable();
    cuts.dedup();
    let mut chunks = Vec::with_capacity(cuts.len() + 1);
    let mut from = 0;
    for c in cuts.into_iter().chain([bytes.len()]) {
        chunks.push(bytes[from..c].to_vec());
        from = c;
    }
    chunks
}

/// Reads every frame of `chunks` (one chunk per read) until EOF or the first error.
pub fn decode(chunks: Vec<Vec<u8>>, max_frame_bytes: usize) -> Decoded {
    let limits = FrameLimits {
        max_frame_bytes,
        // The reader is always ready: these only guard against a reader that hangs.
        idle_timeout: Duration::from_secs(3600),
        frame_timeout: Duration::from_secs(3600),
    };
    let mut reader = FrameReader::new(Chunks::new(chunks), limits);
    let mut frames = Vec::new();
    let error = RUNTIME.with(|rt| {
        rt.block_on(async {
            loop {
                match reader.next_frame().await {
                    Ok(Some(f)) => frames.push(f),
                    Ok(None) => return None,
                    Err(e) => return Some(e.to_string()),
                }
            }
        })
    });
    Decoded {
        frames,
        error,
        skipped: reader.skipped_bytes(),
    }
}

thread_local! {
    /// The reader's deadlines need a runtime with a timer; one per thread, reused.
    static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a current-thread runtime");
}

/// Inputs up to this size are also read one byte per read.
pub const BYTE_BY_BYTE_MAX: usize = 4096;

/// Reads `bytes` whole, cut at `cuts`, and (when short) one byte per read, and panics
/// unless all give the same [`Decoded`] and every frame keeps to `max_frame_bytes`.
/// Returns the whole reading.
pub fn assert_split_invariant(bytes: &[u8], cuts: &[usize], max_frame_bytes: usize) -> Decoded {
    let whole = decode(vec![bytes.to_vec()], max_frame_bytes);
    let cut = decode(split(bytes, cuts), max_frame_bytes);
    assert_eq!(whole, cut, "whole vs cut at {cuts:?}");
    if bytes.len() <= BYTE_BY_BYTE_MAX {
        let single = decode(
            bytes.chunks(1).map(<[u8]>::to_vec).collect(),
            max_frame_bytes,
        );
        assert_eq!(whole, single, "whole vs byte by byte");
    }
    for f in &whole.frames {
        match f {
            Frame::Message(p) => assert!(p.len() <= max_frame_bytes, "message over the limit"),
            Frame::Oversized {
                prefix,
                total_bytes,
            } => {
                assert_eq!(prefix.len(), max_frame_bytes, "oversized prefix length");
                assert!(
                    *total_bytes > max_frame_bytes as u64,
                    "oversized within the limit"
                );
            }
        }
    }
    let framed: u64 = whole.frames.iter().map(|f| f.total_bytes() + 3).sum();
    assert!(
        framed + whole.skipped <= bytes.len() as u64,
        "more bytes accounted for than read"
    );
    whole
}

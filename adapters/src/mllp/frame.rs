//! MLLP (Minimal Lower Layer Protocol) framing.
//!
//! An MLLP frame is the start byte [`START`] (0x0B), the payload, and the end
//! sequence [`END`] (0x1C 0x0D). [`FrameReader`] pulls frames off any
//! [`AsyncRead`] with bounded memory and two deadlines:
//!
//! * `idle_timeout` — how long to wait for the start byte of the next frame,
//! * `frame_timeout` — a deadline for the whole frame, from its start byte to
//!   its end sequence (a slow-drip sender cannot extend it).
//!
//! Bytes outside frames (garbage, stray CR/LF between frames) are skipped and
//! only counted. A payload longer than `max_frame_bytes` is not kept in full:
//! its first `max_frame_bytes` bytes are kept, the rest is counted and
//! discarded until the end sequence, and the frame comes back as
//! [`Frame::Oversized`] so the caller can reject it and carry on with the next
//! frame on the same connection.
//!
//! Nothing in this module's `Debug` or `Display` output contains message
//! bytes: only sizes and counts.

use std::fmt;
use std::time::Duration;

use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{timeout_at, Instant};

#[cfg(any(test, feature = "testing"))]
pub mod chunked;

/// MLLP start-of-block byte (vertical tab).
pub const START: u8 = 0x0B;

/// MLLP end-of-block sequence: file separator then carriage return.
pub const END: [u8; 2] = [0x1C, 0x0D];

/// Size of the fixed read buffer each [`FrameReader`] owns and reuses.
pub const READ_BUF_SIZE: usize = 64 * 1024;

/// Limits applied by a [`FrameReader`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameLimits {
    /// Largest payload (framing bytes excluded) returned as
    /// [`Frame::Message`]; longer payloads come back as [`Frame::Oversized`].
    pub max_frame_bytes: usize,
    /// How long to wait for the start byte of the next frame, measured from
    /// the call to [`FrameReader::next_frame`]. Bytes skipped before a start
    /// byte do not extend it.
    pub idle_timeout: Duration,
    /// Deadline for a whole frame, from its start byte to its end sequence.
    pub frame_timeout: Duration,
}

/// One frame read off the wire.
#[derive(Clone, PartialEq, Eq)]
pub enum Frame {
    /// A complete payload of at most `max_frame_bytes` bytes, framing removed.
    Message(Vec<u8>),
    /// A payload longer than `max_frame_bytes`; only its start was kept.
    Oversized {
        /// The first `max_frame_bytes` bytes of the payload, for building a
        /// reject ACK from its MSH segment.
        prefix: Vec<u8>,
        /// Length of the whole payload in bytes, framing excluded.
        total_bytes: u64,
    },
}

impl Frame {
    /// Length of the whole payload in bytes (framing excluded), also for an
    /// oversized frame.
    pub fn total_bytes(&self) -> u64 {
        match self {
            Frame::Message(p) => p.len() as u64,
            Frame::Oversized { total_bytes, .. } => *total_bytes,
        }
    }
}

// Hand-written so that payload bytes (patient data) never reach logs.
impl fmt::Debug for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Frame::Message(p) => f.debug_struct("Message").field("len", &p.len()).finish(),
            Frame::Oversized {
                prefix,
                total_bytes,
            } => f
                .debug_struct("Oversized")
                .field("prefix_len", &prefix.len())
                .field("total_bytes", total_bytes)
                .finish(),
        }
    }
}

/// Why [`FrameReader::next_frame`] failed. After any error the connection
/// should be closed: the stream position is somewhere inside or before a
/// frame.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// No start byte arrived within `idle_timeout`.
    #[error("connection idle timeout")]
    IdleTimeout,
    /// A frame was started but its end sequence did not arrive within
    /// `frame_timeout`.
    #[error("frame not completed in time")]
    FrameTimeout,
    /// The peer closed the connection after a start byte and before the end
    /// sequence.
    #[error("connection closed inside a frame")]
    ClosedMidFrame,
    /// The underlying reader failed.
    #[error("io error: {0}")]
    Io(#[from] std::io::Error),
}

/// Why a single buffer refill failed.
enum FillError {
    Deadline,
    Io(std::io::Error),
}

/// Collects a payload up to the size limit and counts the rest.
struct Payload {
    bytes: Vec<u8>,
    total: u64,
    max: usize,
}

impl Payload {
    fn new(max: usize) -> Self {
        Payload {
            bytes: Vec::new(),
            total: 0,
            max,
        }
    }

    /// Appends `chunk`, keeping at most `max` bytes in memory and never
    /// reserving capacity beyond `max`.
    fn push(&mut self, chunk: &[u8]) {
        self.total += chunk.len() as u64;
        let room = self.max.saturating_sub(self.bytes.len());
        let take = room.min(chunk.len());
        if take == 0 {
            return;
        }
        let needed = self.bytes.len() + take;
        if needed > self.bytes.capacity() {
            let target = (self.bytes.capacity() * 2).max(needed).min(self.max);
            self.bytes.reserve_exact(target - self.bytes.len());
        }
        self.bytes.extend_from_slice(&chunk[..take]);
    }

    fn finish(self) -> Frame {
        if self.total > self.max as u64 {
            Frame::Oversized {
                prefix: self.bytes,
                total_bytes: self.total,
            }
        } else {
            Frame::Message(self.bytes)
        }
    }
}

/// Reads MLLP frames from an [`AsyncRead`] through a fixed-size buffer of
/// [`READ_BUF_SIZE`] bytes that is reused between frames. Bytes read past the
/// end of one frame are kept for the next call.
///
/// Memory per reader is bounded by `READ_BUF_SIZE + max_frame_bytes`.
pub struct FrameReader<R> {
    reader: R,
    limits: FrameLimits,
    budget: Option<Arc<Semaphore>>,
    buf: Box<[u8]>,
    pos: usize,
    len: usize,
    skipped: u64,
}

// Hand-written: shows counts only, never buffered bytes, and needs no
// `R: Debug`.
impl<R> fmt::Debug for FrameReader<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrameReader")
            .field("limits", &self.limits)
            .field("buffered_bytes", &(self.len - self.pos))
            .field("skipped_bytes", &self.skipped)
            .finish()
    }
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// Wraps `reader`; allocates the read buffer once.
    pub fn new(reader: R, limits: FrameLimits) -> Self {
        FrameReader {
            reader,
            limits,
            budget: None,
            buf: vec![0u8; READ_BUF_SIZE].into_boxed_slice(),
            pos: 0,
            len: 0,
            skipped: 0,
        }
    }

    /// Shares `budget` (one permit per KiB) with the listener's other readers: the bytes of
    /// unfinished frames of all of them stay within it. A reader whose frame would grow
    /// past it waits (the sender is slowed by TCP) until others finish or time out.
    pub fn with_budget(mut self, budget: Arc<Semaphore>) -> Self {
        self.budget = Some(budget);
        self
    }

    /// Reads the next frame.
    ///
    /// Returns `Ok(None)` on a clean EOF between frames (bytes skipped before
    /// the EOF do not matter). Bytes before a start byte are skipped and added
    /// to [`skipped_bytes`](Self::skipped_bytes). Inside a frame a start byte,
    /// and a 0x1C not followed by 0x0D, are payload.
    ///
    /// Cancel safety: not cancel safe; dropping the future part-way loses the
    /// frame in progress. Use the limits instead of an outer timeout.
    pub async fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        // Phase 1: look for the start byte.
        let idle_deadline = Instant::now() + self.limits.idle_timeout;
        loop {
            let window = &self.buf[self.pos..self.len];
            if let Some(i) = window.iter().position(|&b| b == START) {
                self.skipped += i as u64;
                self.pos += i + 1;
                break;
            }
            self.skipped += window.len() as u64;
            match self.fill(idle_deadline).await {
                Ok(0) => return Ok(None),
                Ok(_) => {}
                Err(FillError::Deadline) => return Err(FrameError::IdleTimeout),
                Err(FillError::Io(e)) => return Err(FrameError::Io(e)),
            }
        }

        // Phase 2: collect the payload up to the end sequence.
        let frame_deadline = Instant::now() + self.limits.frame_timeout;
        let mut payload = Payload::new(self.limits.max_frame_bytes);
        // Budget held for this frame's bytes, returned when the frame ends either way.
        let mut held: Option<OwnedSemaphorePermit> = None;
        // True when the last byte looked at was 0x1C and its successor has
        // not been seen yet (possibly because the read ended there).
        let mut pending_fs = false;
        loop {
            while self.pos < self.len {
                let window = &self.buf[self.pos..self.len];
                if pending_fs {
                    pending_fs = false;
                    if window[0] == END[1] {
                        self.pos += 1;
                        return Ok(Some(payload.finish()));
                    }
                    // A lone 0x1C is payload; look at this byte again below.
                    payload.push(&END[..1]);
                    continue;
                }
                match window.iter().position(|&b| b == END[0]) {
                    Some(i) => {
                        payload.push(&window[..i]);
                        self.pos += i + 1;
                        pending_fs = true;
                    }
                    None => {
                        payload.push(window);
                        self.pos = self.len;
                    }
                }
            }
            // The next read adds at most one buffer to the payload: reserve that first.
            if let Some(budget) = &self.budget {
                if payload.bytes.len() < payload.max {
                    let kib = (READ_BUF_SIZE / 1024) as u32;
                    let permit = timeout_at(frame_deadline, budget.clone().acquire_many_owned(kib));
                    match permit.await {
                        Ok(Ok(p)) => match &mut held {
                            Some(h) => h.merge(p),
                            None => held = Some(p),
                        },
                        Ok(Err(_)) | Err(_) => return Err(FrameError::FrameTimeout),
                    }
                }
            }
            match self.fill(frame_deadline).await {
                Ok(0) => return Err(FrameError::ClosedMidFrame),
                Ok(_) => {}
                Err(FillError::Deadline) => return Err(FrameError::FrameTimeout),
                Err(FillError::Io(e)) => return Err(FrameError::Io(e)),
            }
        }
    }

    /// Total bytes skipped outside frames (before start bytes) so far on this
    /// connection.
    pub fn skipped_bytes(&self) -> u64 {
        self.skipped
    }

    /// The limits this reader applies.
    pub fn limits(&self) -> &FrameLimits {
        &self.limits
    }

    /// Shared access to the wrapped reader.
    pub fn get_ref(&self) -> &R {
        &self.reader
    }

    /// Mutable access to the wrapped reader (e.g. to write an ACK on the same
    /// socket). Reading from it directly bypasses the buffered bytes.
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.reader
    }

    /// Returns the wrapped reader; bytes already buffered are dropped.
    pub fn into_inner(self) -> R {
        self.reader
    }

    /// Replaces the buffer contents with one read from the underlying reader.
    /// The deadline is checked before reading as well, because a reader that
    /// always has data ready would otherwise never let `timeout_at` fire.
    async fn fill(&mut self, deadline: Instant) -> Result<usize, FillError> {
        self.pos = 0;
        self.len = 0;
        loop {
            if Instant::now() >= deadline {
                return Err(FillError::Deadline);
            }
            match timeout_at(deadline, self.reader.read(&mut self.buf[..])).await {
                Err(_) => return Err(FillError::Deadline),
                Ok(Ok(n)) => {
                    self.len = n;
                    return Ok(n);
                }
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Ok(Err(e)) => return Err(FillError::Io(e)),
            }
        }
    }
}

/// Wraps `payload` in an MLLP frame: [`START`], payload, [`END`].
pub fn encode(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 3);
    out.push(START);
    out.extend_from_slice(payload);
    out.extend_from_slice(&END);
    out
}

/// Writes `payload` as one MLLP frame with a single `write_all`, then
/// flushes.
pub async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, payload: &[u8]) -> std::io::Result<()> {
    w.write_all(&encode(payload)).await?;
    w.flush().await
}

#[cfg(test)]
mod tests {
    use super::chunked::{assert_split_invariant, Chunks};
    use super::*;
    use proptest::prelude::*;
    use std::io;
    use std::pin::Pin;
    use std::task::{Context, Poll};
    use tokio::io::{duplex, ReadBuf};
    use tokio::net::{TcpListener, TcpStream};

    const MSG1: &[u8] = b"MSH|^~\\&|A|B|C|D|20240101000000||ADT^A01|1|P|2.5\rPID|1||123\r";
    const MSG2: &[u8] = b"MSH|^~\\&|A|B|C|D|20240101000000||ADT^A08|2|P|2.5\r";

    fn limits(max: usize) -> FrameLimits {
        FrameLimits {
            max_frame_bytes: max,
            idle_timeout: Duration::from_secs(5),
            frame_timeout: Duration::from_secs(5),
        }
    }

    /// A reader that fails every read.
    struct Failing;

    impl AsyncRead for Failing {
        fn poll_read(
            self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            _buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            Poll::Ready(Err(io::Error::new(io::ErrorKind::ConnectionReset, "reset")))
        }
    }

    async fn read_all<R: AsyncRead + Unpin>(r: &mut FrameReader<R>) -> Vec<Frame> {
        let mut out = Vec::new();
        while let Some(f) = r.next_frame().await.expect("frame") {
            out.push(f);
        }
        out
    }

    fn msg(p: &[u8]) -> Frame {
        Frame::Message(p.to_vec())
    }

    #[test]
    fn encode_wraps_payload() {
        assert_eq!(encode(b"abc"), b"\x0babc\x1c\x0d".to_vec());
        assert_eq!(encode(b""), vec![START, END[0], END[1]]);
    }

    #[tokio::test]
    async fn normal_frame_then_clean_eof() {
        let (mut w, r) = duplex(1024);
        write_frame(&mut w, MSG1).await.unwrap();
        drop(w);
        let mut fr = FrameReader::new(r, limits(1024));
        assert_eq!(fr.next_frame().await.unwrap(), Some(msg(MSG1)));
        assert!(fr.next_frame().await.unwrap().is_none());
        assert_eq!(fr.skipped_bytes(), 0);
    }

    #[tokio::test]
    async fn clean_eof_on_empty_stream() {
        let (w, r) = duplex(64);
        drop(w);
        let mut fr = FrameReader::new(r, limits(1024));
        assert!(fr.next_frame().await.unwrap().is_none());
        // And stays at EOF.
        assert!(fr.next_frame().await.unwrap().is_none());
    }

    #[tokio::test]
    async fn empty_payload_frame() {
        let mut fr = FrameReader::new(Chunks::new(vec![encode(b"")]), limits(16));
        assert_eq!(read_all(&mut fr).await, vec![msg(b"")]);
    }

    #[tokio::test]
    async fn two_frames_in_one_write() {
        let (mut w, r) = duplex(4096);
        let mut both = encode(MSG1);
        both.extend_from_slice(&encode(MSG2));
        w.write_all(&both).await.unwrap();
        drop(w);
        let mut fr = FrameReader::new(r, limits(1024));
        assert_eq!(read_all(&mut fr).await, vec![msg(MSG1), msg(MSG2)]);
    }

    #[tokio::test]
    async fn many_frames_in_one_read() {
        let mut all = Vec::new();
        for i in 0..100u32 {
            all.extend_from_slice(&encode(format!("MSG{i}").as_bytes()));
        }
        let mut fr = FrameReader::new(Chunks::new(vec![all]), limits(64));
        let frames = read_all(&mut fr).await;
        assert_eq!(frames.len(), 100);
        assert_eq!(frames[42], msg(b"MSG42"));
    }

    #[tokio::test]
    async fn split_end_marker_across_reads() {
        let mut first = encode(MSG1);
        first.pop(); // ends with 0x1C
        let mut second = vec![0x0D];
        second.extend_from_slice(&encode(MSG2));
        let mut fr = FrameReader::new(Chunks::new(vec![first, second]), limits(1024));
        assert_eq!(read_all(&mut fr).await, vec![msg(MSG1), msg(MSG2)]);
    }

    #[tokio::test]
    async fn split_end_marker_over_duplex() {
        let (mut w, r) = duplex(4096);
        let writer = tokio::spawn(async move {
            let f = encode(MSG1);
            w.write_all(&f[..f.len() - 1]).await.unwrap();
            w.flush().await.unwrap();
            tokio::time::sleep(Duration::from_millis(50)).await;
            w.write_all(&[0x0D]).await.unwrap();
            write_frame(&mut w, MSG2).await.unwrap();
        });
        let mut fr = FrameReader::new(r, limits(1024));
        assert_eq!(fr.next_frame().await.unwrap(), Some(msg(MSG1)));
        assert_eq!(fr.next_frame().await.unwrap(), Some(msg(MSG2)));
        writer.await.unwrap();
        assert!(fr.next_frame().await.unwrap().is_none());
    }

    #[tokio::test]
    async fn lone_fs_at_end_of_read_is_payload() {
        // 0x1C ends one read, the next read starts with a non-CR byte.
        let chunks = vec![b"\x0bab\x1c".to_vec(), b"cd\x1c\x0d".to_vec()];
        let mut fr = FrameReader::new(Chunks::new(chunks), limits(64));
        assert_eq!(read_all(&mut fr).await, vec![msg(b"ab\x1ccd")]);
    }

    #[tokio::test]
    async fn fs_inside_payload_is_kept() {
        let mut stream = b"\x0ba\x1cb\x1c\x1c\x0d".to_vec(); // payload a 1C b 1C
        stream.extend_from_slice(b"\x0b\x1c\x1c\x1cX\x1c\x0d");
        let mut fr = FrameReader::new(Chunks::new(vec![stream]), limits(64));
        assert_eq!(
            read_all(&mut fr).await,
            vec![msg(b"a\x1cb\x1c"), msg(b"\x1c\x1c\x1cX")]
        );
    }

    #[tokio::test]
    async fn start_byte_inside_frame_is_payload() {
        let stream = b"\x0bab\x0bcd\x1c\x0d".to_vec();
        let mut fr = FrameReader::new(Chunks::new(vec![stream]), limits(64));
        assert_eq!(read_all(&mut fr).await, vec![msg(b"ab\x0bcd")]);
    }

    #[tokio::test]
    async fn cr_alone_is_payload() {
        let stream = b"\x0ba\rb\r\x1c\x0d".to_vec();
        let mut fr = FrameReader::new(Chunks::new(vec![stream]), limits(64));
        assert_eq!(read_all(&mut fr).await, vec![msg(b"a\rb\r")]);
    }

    #[tokio::test]
    async fn garbage_between_frames_is_skipped_and_counted() {
        let mut stream = b"junk\r\n".to_vec(); // 6
        stream.extend_from_slice(&encode(MSG1));
        stream.extend_from_slice(b"\r\n"); // 2
        stream.extend_from_slice(&encode(MSG2));
        stream.extend_from_slice(b"\x1c\x0d\r\ntrailing"); // 12, ends in EOF
        let mut fr = FrameReader::new(Chunks::new(vec![stream]), limits(1024));
        assert_eq!(read_all(&mut fr).await, vec![msg(MSG1), msg(MSG2)]);
        assert_eq!(fr.skipped_bytes(), 6 + 2 + 12);
    }

    #[tokio::test]
    async fn every_two_way_split_and_byte_by_byte() {
        let mut stream = b"\r\n".to_vec();
        stream.extend_from_slice(&encode(MSG1));
        stream.extend_from_slice(&encode(b"x\x1cy\x0bz\x1c"));
        stream.extend_from_slice(b"\n");
        stream.extend_from_slice(&encode(MSG2));
        let expected = vec![msg(MSG1), msg(b"x\x1cy\x0bz\x1c"), msg(MSG2)];

        for cut in 1..stream.len() {
            let chunks = vec![stream[..cut].to_vec(), stream[cut..].to_vec()];
            let mut fr = FrameReader::new(Chunks::new(chunks), limits(1024));
            assert_eq!(read_all(&mut fr).await, expected, "cut at {cut}");
            assert_eq!(fr.skipped_bytes(), 3);
        }

        let bytes: Vec<Vec<u8>> = stream.iter().map(|b| vec![*b]).collect();
        let mut fr = FrameReader::new(Chunks::new(bytes), limits(1024));
        assert_eq!(read_all(&mut fr).await, expected);
    }

    #[tokio::test]
    async fn frame_larger_than_read_buffer() {
        let payload: Vec<u8> = (0..(READ_BUF_SIZE * 3 + 17))
            .map(|i| b'A' + (i % 26) as u8)
            .collect();
        let (mut w, r) = duplex(8 * 1024);
        let p = payload.clone();
        let writer = tokio::spawn(async move {
            write_frame(&mut w, &p).await.unwrap();
        });
        let mut fr = FrameReader::new(r, limits(1024 * 1024));
        assert_eq!(
            fr.next_frame().await.unwrap(),
            Some(Frame::Message(payload))
        );
        writer.await.unwrap();
        assert!(fr.next_frame().await.unwrap().is_none());
    }

    #[tokio::test]
    async fn size_limit_boundaries() {
        let mut stream = encode(&[b'a'; 10]);
        stream.extend_from_slice(&encode(&[b'b'; 11]));
        let mut fr = FrameReader::new(Chunks::new(vec![stream]), limits(10));
        let frames = read_all(&mut fr).await;
        assert_eq!(frames[0], Frame::Message(vec![b'a'; 10]));
        assert_eq!(
            frames[1],
            Frame::Oversized {
                prefix: vec![b'b'; 10],
                total_bytes: 11
            }
        );
    }

    #[tokio::test]
    async fn oversized_frame_then_next_frame() {
        const LIMIT: usize = 100 * 1024;
        let big: Vec<u8> = (0..LIMIT * 3).map(|i| b'0' + (i % 10) as u8).collect();
        let (mut w, r) = duplex(16 * 1024);
        let b = big.clone();
        let writer = tokio::spawn(async move {
            write_frame(&mut w, &b).await.unwrap();
            write_frame(&mut w, MSG2).await.unwrap();
        });
        let mut fr = FrameReader::new(r, limits(LIMIT));
        match fr.next_frame().await.unwrap() {
            Some(Frame::Oversized {
                prefix,
                total_bytes,
            }) => {
                assert_eq!(prefix.len(), LIMIT);
                assert!(prefix.capacity() <= LIMIT, "capacity {}", prefix.capacity());
                assert_eq!(prefix[..], big[..LIMIT]);
                assert_eq!(total_bytes, (LIMIT * 3) as u64);
            }
            other => panic!("expected oversized, got {other:?}"),
        }
        assert_eq!(fr.next_frame().await.unwrap(), Some(msg(MSG2)));
        writer.await.unwrap();
        assert!(fr.next_frame().await.unwrap().is_none());
    }

    #[tokio::test]
    async fn oversized_with_fs_at_limit_boundary() {
        // The 0x1C that is payload lands exactly on the limit and across reads.
        let chunks = vec![
            b"\x0babcd\x1c".to_vec(),
            b"ef\x1c".to_vec(),
            b"\x0d".to_vec(),
        ];
        let mut fr = FrameReader::new(Chunks::new(chunks), limits(4));
        assert_eq!(
            read_all(&mut fr).await,
            vec![Frame::Oversized {
                prefix: b"abcd".to_vec(),
                total_bytes: 7
            }]
        );
    }

    #[tokio::test]
    async fn zero_limit_makes_every_nonempty_frame_oversized() {
        let mut stream = encode(b"");
        stream.extend_from_slice(&encode(b"x"));
        let mut fr = FrameReader::new(Chunks::new(vec![stream]), limits(0));
        assert_eq!(
            read_all(&mut fr).await,
            vec![
                msg(b""),
                Frame::Oversized {
                    prefix: vec![],
                    total_bytes: 1
                }
            ]
        );
    }

    #[tokio::test]
    async fn eof_mid_frame() {
        let (mut w, r) = duplex(1024);
        let f = encode(MSG1);
        w.write_all(&f[..20]).await.unwrap();
        drop(w);
        let mut fr = FrameReader::new(r, limits(1024));
        assert!(matches!(
            fr.next_frame().await,
            Err(FrameError::ClosedMidFrame)
        ));
    }

    #[tokio::test]
    async fn eof_after_fs_is_mid_frame() {
        let mut fr = FrameReader::new(Chunks::new(vec![b"\x0babc\x1c".to_vec()]), limits(64));
        assert!(matches!(
            fr.next_frame().await,
            Err(FrameError::ClosedMidFrame)
        ));
    }

    #[tokio::test]
    async fn eof_right_after_start_byte() {
        let mut fr = FrameReader::new(Chunks::new(vec![vec![START]]), limits(64));
        assert!(matches!(
            fr.next_frame().await,
            Err(FrameError::ClosedMidFrame)
        ));
    }

    #[tokio::test]
    async fn io_error_is_reported() {
        let mut fr = FrameReader::new(Failing, limits(64));
        match fr.next_frame().await {
            Err(FrameError::Io(e)) => assert_eq!(e.kind(), io::ErrorKind::ConnectionReset),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[tokio::test]
    async fn idle_timeout_when_nothing_arrives() {
        let (_w, r) = duplex(64); // writer kept open, never writes
        let lim = FrameLimits {
            idle_timeout: Duration::from_millis(100),
            ..limits(64)
        };
        let mut fr = FrameReader::new(r, lim);
        let t0 = std::time::Instant::now();
        assert!(matches!(
            fr.next_frame().await,
            Err(FrameError::IdleTimeout)
        ));
        assert!(t0.elapsed() >= Duration::from_millis(100));
    }

    #[tokio::test]
    async fn idle_timeout_not_extended_by_garbage() {
        let (mut w, r) = duplex(64);
        let writer = tokio::spawn(async move {
            for _ in 0..200 {
                if w.write_all(b"\r\n").await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
        let lim = FrameLimits {
            idle_timeout: Duration::from_millis(150),
            ..limits(64)
        };
        let mut fr = FrameReader::new(r, lim);
        let t0 = std::time::Instant::now();
        assert!(matches!(
            fr.next_frame().await,
            Err(FrameError::IdleTimeout)
        ));
        assert!(t0.elapsed() < Duration::from_millis(1500));
        assert!(fr.skipped_bytes() > 0);
        drop(fr);
        writer.await.unwrap();
    }

    #[tokio::test]
    async fn idle_timer_restarts_for_each_frame() {
        let (mut w, r) = duplex(1024);
        let writer = tokio::spawn(async move {
            for _ in 0..3 {
                tokio::time::sleep(Duration::from_millis(80)).await;
                write_frame(&mut w, MSG2).await.unwrap();
            }
        });
        let lim = FrameLimits {
            idle_timeout: Duration::from_millis(500),
            ..limits(1024)
        };
        let mut fr = FrameReader::new(r, lim);
        assert_eq!(read_all(&mut fr).await.len(), 3);
        writer.await.unwrap();
    }

    #[tokio::test]
    async fn endless_frame_slow_drip_times_out() {
        // Each write arrives well within any per-read timeout; only the
        // whole-frame deadline can stop this.
        let (mut w, r) = duplex(4096);
        let writer = tokio::spawn(async move {
            if w.write_all(&[START]).await.is_err() {
                return;
            }
            for _ in 0..500 {
                if w.write_all(&[b'x'; 100]).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
        let lim = FrameLimits {
            frame_timeout: Duration::from_millis(300),
            ..limits(1024)
        };
        let mut fr = FrameReader::new(r, lim);
        let t0 = std::time::Instant::now();
        assert!(matches!(
            fr.next_frame().await,
            Err(FrameError::FrameTimeout)
        ));
        let took = t0.elapsed();
        assert!(took >= Duration::from_millis(300), "{took:?}");
        assert!(took < Duration::from_secs(3), "{took:?}");
        drop(fr);
        writer.await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn endless_frame_flood_over_tcp_times_out() {
        // The writer never pauses, so reads are always ready: the deadline must
        // still be enforced.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let writer = tokio::spawn(async move {
            let mut c = TcpStream::connect(addr).await.unwrap();
            if c.write_all(&[START]).await.is_err() {
                return;
            }
            let junk = vec![b'j'; 16 * 1024];
            let until = std::time::Instant::now() + Duration::from_secs(10);
            while std::time::Instant::now() < until {
                if c.write_all(&junk).await.is_err() {
                    return;
                }
            }
        });
        let (server, _) = listener.accept().await.unwrap();
        let lim = FrameLimits {
            max_frame_bytes: 4096,
            idle_timeout: Duration::from_secs(5),
            frame_timeout: Duration::from_millis(300),
        };
        let mut fr = FrameReader::new(server, lim);
        let t0 = std::time::Instant::now();
        assert!(matches!(
            fr.next_frame().await,
            Err(FrameError::FrameTimeout)
        ));
        assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
        drop(fr);
        writer.await.unwrap();
    }

    #[tokio::test]
    async fn tcp_round_trip_with_ack() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (sock, _) = listener.accept().await.unwrap();
            let (rd, mut wr) = sock.into_split();
            let mut fr = FrameReader::new(rd, limits(1024));
            let mut n = 0;
            while let Some(f) = fr.next_frame().await.unwrap() {
                assert!(matches!(f, Frame::Message(_)));
                n += 1;
                write_frame(&mut wr, format!("ACK{n}").as_bytes())
                    .await
                    .unwrap();
            }
            n
        });
        let sock = TcpStream::connect(addr).await.unwrap();
        let (rd, mut wr) = sock.into_split();
        let mut acks = FrameReader::new(rd, limits(1024));
        write_frame(&mut wr, MSG1).await.unwrap();
        assert_eq!(acks.next_frame().await.unwrap(), Some(msg(b"ACK1")));
        write_frame(&mut wr, MSG2).await.unwrap();
        assert_eq!(acks.next_frame().await.unwrap(), Some(msg(b"ACK2")));
        drop(wr);
        assert_eq!(server.await.unwrap(), 2);
        assert!(acks.next_frame().await.unwrap().is_none());
    }

    #[tokio::test]
    async fn write_frame_writes_exact_bytes() {
        let mut out: Vec<u8> = Vec::new();
        write_frame(&mut out, b"hello").await.unwrap();
        assert_eq!(out, encode(b"hello"));
    }

    #[test]
    fn debug_and_display_never_show_payload() {
        let secret = b"PID|1||SECRET-MRN^^^H||DOE^JANE";
        let m = Frame::Message(secret.to_vec());
        let o = Frame::Oversized {
            prefix: secret.to_vec(),
            total_bytes: 99,
        };
        for s in [format!("{m:?}"), format!("{o:?}"), format!("{o:#?}")] {
            assert!(!s.contains("SECRET") && !s.contains("DOE"), "{s}");
            assert!(!s.contains("80, 73, 68"), "{s}"); // "PID" as a byte list
        }
        assert_eq!(
            format!("{m:?}"),
            format!("Message {{ len: {} }}", secret.len())
        );
        assert_eq!(m.total_bytes(), secret.len() as u64);
        assert_eq!(o.total_bytes(), 99);

        let fr = FrameReader::new(Chunks::new(vec![secret.to_vec()]), limits(8));
        let s = format!("{fr:?}");
        assert!(!s.contains("SECRET"), "{s}");

        for e in [
            FrameError::IdleTimeout,
            FrameError::FrameTimeout,
            FrameError::ClosedMidFrame,
        ] {
            let s = format!("{e} {e:?}");
            assert!(!s.contains("SECRET"));
        }
    }

    /// Bytes that matter to the framing (start, end, CR, LF) far more often than chance.
    fn framing_byte() -> impl Strategy<Value = u8> {
        prop_oneof![
            3 => Just(START),
            3 => Just(END[0]),
            3 => Just(END[1]),
            1 => Just(b'\n'),
            2 => Just(b'A'),
            1 => any::<u8>(),
        ]
    }

    /// Streams of whole frames with some noise around and inside them.
    fn framed_stream() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            3 => prop::collection::vec(framing_byte(), 0..24).prop_map(|p| encode(&p)),
            1 => prop::collection::vec(framing_byte(), 0..8),
        ];
        prop::collection::vec(piece, 0..8).prop_map(|ps| ps.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Any byte string split at any points gives the same frames, error and skipped
        /// count as read whole (and byte by byte), under any size limit.
        #[test]
        fn frames_do_not_depend_on_how_reads_split_the_bytes(
            bytes in prop_oneof![
                prop::collection::vec(framing_byte(), 0..256),
                framed_stream(),
                prop::collection::vec(any::<u8>(), 0..256),
            ],
            cuts in prop::collection::vec(0usize..300, 0..12),
            max in prop_oneof![0usize..8, 8usize..64, Just(1024)],
        ) {
            assert_split_invariant(&bytes, &cuts, max);
        }
    }
}

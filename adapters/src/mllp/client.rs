//! A minimal MLLP client: send messages in order on one connection and read each ACK.
//! Used by `intake send` and by the end-to-end tests; also how files are cut into frames
//! ([`split_messages`], [`split_file`]) and how an answer's MSA codes are read
//! ([`read_acks`]).

use super::frame::{write_frame, Frame, FrameLimits, FrameReader};
use crate::tls::client::TlsClient;
use intake_pipeline::hl7::batch;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, ToSocketAddrs};

/// Errors of the client.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Could not connect or write.
    #[error("connection failed: {0}")]
    Io(#[from] std::io::Error),
    /// No ACK came back in time, or the connection closed.
    #[error("no acknowledgement received: {0}")]
    NoAck(String),
}

/// The largest acknowledgement accepted: a batch's answer holds one ACK per message.
pub const MAX_ACK_BYTES: usize = 64 << 20;

/// One MLLP connection, plain or over TLS.
pub struct MllpClient {
    reader: FrameReader<Box<dyn AsyncRead + Send + Unpin>>,
    writer: Box<dyn AsyncWrite + Send + Unpin>,
}

impl MllpClient {
    /// Connects; ACKs must arrive within `timeout`.
    pub async fn connect(addr: impl ToSocketAddrs, timeout: Duration) -> Result<Self, ClientError> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (r, w) = stream.into_split();
        Ok(Self::over(Box::new(r), Box::new(w), timeout))
    }

    /// Connects over TLS, checking the server's certificate for `server_name`; the
    /// handshake and each ACK must come within `timeout`.
    pub async fn connect_tls(
        addr: impl ToSocketAddrs,
        timeout: Duration,
        tls: &TlsClient,
        server_name: &str,
    ) -> Result<Self, ClientError> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let stream = tokio::time::timeout(timeout, tls.connect(server_name, stream))
            .await
            .map_err(|_| ClientError::NoAck("TLS handshake timed out".into()))??;
        let (r, w) = tokio::io::split(stream);
        Ok(Self::over(Box::new(r), Box::new(w), timeout))
    }

    fn over(
        reader: Box<dyn AsyncRead + Send + Unpin>,
        writer: Box<dyn AsyncWrite + Send + Unpin>,
        timeout: Duration,
    ) -> Self {
        let limits = FrameLimits {
            max_frame_bytes: MAX_ACK_BYTES,
            idle_timeout: timeout,
            frame_timeout: timeout,
        };
        MllpClient {
            reader: FrameReader::new(reader, limits),
            writer,
        }
    }

    /// Sends one message and waits for its acknowledgement.
    pub async fn send(&mut self, message: &[u8]) -> Result<String, ClientError> {
        write_frame(&mut self.writer, message).await?;
        match self.reader.next_frame().await {
            Ok(Some(Frame::Message(ack))) => Ok(String::from_utf8_lossy(&ack).into_owned()),
            Ok(Some(Frame::Oversized { .. })) => {
                Err(ClientError::NoAck("acknowledgement too large".into()))
            }
            Ok(None) => Err(ClientError::NoAck("connection closed".into())),
            Err(e) => Err(ClientError::NoAck(e.to_string())),
        }
    }
}

/// Splits a file's text into messages: each starts at a line beginning with `MSH`.
/// Segment separators inside a message are kept as they are.
pub fn split_messages(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut starts = Vec::new();
    let mut line_start = true;
    for (i, b) in bytes.iter().enumerate() {
        if line_start && bytes[i..].starts_with(b"MSH") {
            starts.push(i);
        }
        line_start = *b == b'\r' || *b == b'\n';
    }
    if starts.is_empty() {
        return if bytes.iter().all(u8::is_ascii_whitespace) {
            Vec::new()
        } else {
            vec![bytes.to_vec()]
        };
    }
    if starts[0] != 0
        && !bytes[..starts[0]]
            .iter()
            .all(|b| b.is_ascii_whitespace() || *b == 0xEF || *b == 0xBB || *b == 0xBF)
    {
        starts[0] = 0;
    }
    starts
        .iter()
        .enumerate()
        .map(|(k, &s)| {
            let s = if k == 0 { 0 } else { s };
            let e = starts.get(k + 1).copied().unwrap_or(bytes.len());
            let mut m = &bytes[s..e];
            while let Some((last, rest)) = m.split_last() {
                if last.is_ascii_whitespace() {
                    m = rest
                } else {
                    break;
                }
            }
            m.to_vec()
        })
        .collect()
}

/// Whether a file or frame is an FHS/BHS batch (after an optional BOM and whitespace).
pub fn is_batch(bytes: &[u8]) -> bool {
    batch::is_batch(bytes)
}

/// A file's messages for a dry run: a batch's messages as the engine splits them (a
/// batch that cannot be split stays whole, to be refused with its code), else
/// [`split_messages`].
pub fn split_file(bytes: &[u8]) -> Vec<Vec<u8>> {
    if !batch::is_batch(bytes) {
        return split_messages(bytes);
    }
    match batch::split(bytes, batch::MAX_BATCH_MESSAGES) {
        Ok(b) => b.message_ranges().map(|r| bytes[r].to_vec()).collect(),
        Err(_) => vec![bytes.to_vec()],
    }
}

/// One acknowledged message in an answer: its MSA-1 and the code of its first ERR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckRead {
    /// MSA-1, e.g. `AA`.
    pub code: String,
    /// ERR-5.1 (our code), else ERR-3.1 (HL7 table 0357), else the code of ERR-1.
    pub error: Option<String>,
}

/// The acknowledged messages of an answer (one ACK, or a batch acknowledgement with one
/// MSH/MSA per message), in order. Reads codes only.
pub fn read_acks(answer: &str) -> Vec<AckRead> {
    let mut out: Vec<AckRead> = Vec::new();
    let (mut field, mut component, mut sub) = ('|', '^', '&');
    let mut err_seen = true;
    for seg in answer.split(['\r', '\n']) {
        let (Some(id), Some(rest)) = (seg.get(..3), seg.get(3..)) else {
            continue;
        };
        let mut chars = rest.chars();
        match id {
            "MSH" => {
                field = chars.next().unwrap_or('|');
                component = chars.next().unwrap_or('^');
                sub = chars.nth(2).unwrap_or('&');
            }
            "MSA" => {
                let code = seg.split(field).nth(1).unwrap_or("").trim();
                out.push(AckRead {
                    code: code.to_string(),
                    error: None,
                });
                err_seen = false;
            }
            "ERR" if !err_seen => {
                err_seen = true;
                let f: Vec<&str> = seg.split(field).collect();
                let first = |i: usize| {
                    let v = f.get(i)?.split(component).next()?.trim();
                    (!v.is_empty()).then(|| v.to_string())
                };
                let eld = || {
                    let v = f.get(1)?.split(component).nth(3)?.split(sub).next()?.trim();
                    (!v.is_empty()).then(|| v.to_string())
                };
                if let Some(last) = out.last_mut() {
                    last.error = first(5).or_else(|| first(3)).or_else(eld);
                }
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_codes_from_single_and_batch_answers() {
        let single = "MSH|^~\\&|I|I|A|F|2024||ACK|1|P|2.5\rMSA|AA|C1\r";
        assert_eq!(
            read_acks(single),
            [AckRead {
                code: "AA".into(),
                error: None
            }]
        );
        let batch = "FHS|^~\\&\rBHS|^~\\&\r\
            MSH|^~\\&|I\rMSA|AA|C1\r\
            MSH|^~\\&|I\rMSA|AE|C2|MAPPING_REQUIRED_FIELD\rERR|||101^Required^HL70357|E|MAPPING_REQUIRED_FIELD^x^L\r\
            MSH#$~\\&#I\rMSA#AR#C3\rERR#$$$207&Internal&HL70357\r\
            MSH|^~\\&|I\rMSA|CE|C4\rERR|||207^Internal^HL70357\r\
            BTS|4\rFTS|1\r";
        let got: Vec<(String, Option<String>)> = read_acks(batch)
            .into_iter()
            .map(|a| (a.code, a.error))
            .collect();
        assert_eq!(
            got,
            [
                ("AA".into(), None),
                ("AE".into(), Some("MAPPING_REQUIRED_FIELD".into())),
                ("AR".into(), Some("207".into())),
                ("CE".into(), Some("207".into())),
            ]
        );
        assert!(read_acks("garbage").is_empty());
    }

    #[test]
    fn files_split_by_batch_or_by_msh() {
        let batch = b"BHS|^~\\&\nMSH|^~\\&|a\nPID|1\nMSH|^~\\&|b\nBTS|2\n";
        assert!(is_batch(batch));
        assert_eq!(
            split_file(batch),
            vec![b"MSH|^~\\&|a\nPID|1\n".to_vec(), b"MSH|^~\\&|b\n".to_vec()]
        );
        assert_eq!(
            split_file(b"BHS|^~\\&\nBTS|0"),
            vec![b"BHS|^~\\&\nBTS|0".to_vec()]
        );
        assert_eq!(
            split_file(b"MSH|a\nMSH|b"),
            vec![b"MSH|a".to_vec(), b"MSH|b".to_vec()]
        );
    }

    #[test]
    fn splits_files_into_messages() {
        let f = b"MSH|a\nPID|1\n\nMSH|b\rPID|2\r\n";
        assert_eq!(
            split_messages(f),
            vec![b"MSH|a\nPID|1".to_vec(), b"MSH|b\rPID|2".to_vec()]
        );
        assert_eq!(split_messages(b"garbage"), vec![b"garbage".to_vec()]);
        assert!(split_messages(b"\n\n").is_empty());
    }
}

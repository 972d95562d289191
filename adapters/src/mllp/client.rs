//! A minimal MLLP client: send messages in order on one connection and read each ACK.
//! Used by `intake send` and by the end-to-end tests.

use super::frame::{write_frame, Frame, FrameLimits, FrameReader};
use std::time::Duration;
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::tcp::OwnedWriteHalf;
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

/// One MLLP connection.
pub struct MllpClient {
    reader: FrameReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

impl MllpClient {
    /// Connects; ACKs must arrive within `timeout`.
    pub async fn connect(addr: impl ToSocketAddrs, timeout: Duration) -> Result<Self, ClientError> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (r, w) = stream.into_split();
        let limits = FrameLimits {
            max_frame_bytes: 1 << 20,
            idle_timeout: timeout,
            frame_timeout: timeout,
        };
        Ok(MllpClient {
            reader: FrameReader::new(r, limits),
            writer: w,
        })
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

#[cfg(test)]
mod tests {
    use super::*;

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

//! intake's core: the message pipeline (decode, parse, route, map), the mapping
//! interpreter, the event store trait and its implementations, and the batching writer.
//!
//! Adapters (MLLP, HTTP) depend on this crate; it depends on no adapter.

pub mod audit;
pub mod batch;
pub mod census;
pub mod deploy;
pub mod event;
pub mod fhir;
pub mod hl7;
pub mod ingest;
pub mod mapping;
pub mod message;
pub mod metrics;
pub mod outcome;
pub mod pipeline;
pub mod reason;
pub mod remap;
pub mod store;
pub mod timeline;
pub mod writer;

pub use batch::FrameOutcome;
pub use hl7::ack::AckCode;
pub use message::{Format, IdempotencyKey, RawMessage};
pub use outcome::{Outcome, Stored};
pub use pipeline::{process, Disposition, Processed};
pub use reason::{Reason, Rejection, Stage};

/// Lower-case hex of `bytes` (digests in keys, versions and tokens).
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

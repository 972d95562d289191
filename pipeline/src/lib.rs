//! intake's core: the message pipeline (decode, parse, route, map), the mapping
//! interpreter, the event store trait and its implementations, and the batching writer.
//!
//! Adapters (MLLP, HTTP) depend on this crate; it depends on no adapter.

pub mod event;
pub mod fhir;
pub mod hl7;
pub mod ingest;
pub mod mapping;
pub mod metrics;
pub mod pipeline;
pub mod reason;
pub mod store;
pub mod writer;

pub use pipeline::{process, AckCode, Disposition, Processed, RawMessage};
pub use reason::{Reason, Rejection, Stage};

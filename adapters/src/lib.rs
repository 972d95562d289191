//! intake's adapters: MLLP (framing, listener, client, ACK builder) and the HTTP API.
//! They turn socket bytes into [`intake_pipeline::RawMessage`]s and answer once the
//! pipeline's writer has committed.

pub mod dead_letters;
pub mod http;
pub mod mllp;

//! intake's adapters: MLLP (framing, listener, client, ACK builder), the HTTP API, and
//! the AMQP outbox publisher, FHIR push (`POST .../fhir`) and the FHIR pull poller.
//! They turn socket bytes into [`intake_pipeline::RawMessage`]s and answer once the
//! pipeline's writer has committed.

pub mod amqp;
pub mod dead_letters;
pub mod fhir;
pub mod fhir_pull;
pub mod http;
pub mod mllp;

//! intake's adapters: the components that turn socket bytes into
//! [`intake_pipeline::RawMessage`]s and answer once the pipeline's writer has committed —
//! MLLP (framing, listener, client, ACK builder), the HTTP API (FHIR push, HL7 v2 over
//! HTTP, dead letters), the FHIR pull poller — and the AMQP outbox publisher.
//!
//! Every component has one shape ([`component`]): a settings struct `intake.toml` reads
//! (its `config.rs`), built into a [`component::Component`] that runs until shutdown. Each
//! logs and counts from its own `internal_events.rs`. A new component is a folder here,
//! one line below, and its table in the binary's `src/config.rs`.

pub mod backoff;
pub mod component;
pub mod rate;
pub mod telemetry;

pub mod amqp;
pub mod fhir_pull;
pub mod http;
pub mod mllp;
pub mod tls;

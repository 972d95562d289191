//! The pipeline: one raw message in, events or a dead letter out, whatever its format.
//!
//! [`process`] is a pure function of the raw message and the tenant mappings: the same
//! input gives the same events with the same ids. It stores nothing; the batching writer
//! does that, and the adapter acknowledges once the writer's batch has committed.
//!
//! The hops, in order:
//! 1. decode by [`Format`]: HL7 v2 bytes to text (MSH-18 charset) and segments; FHIR JSON
//!    or XML to a validated FHIR JSON value;
//! 2. route: the tenant the listener is bound to, else the one claiming MSH-4 / MSH-6;
//! 3. the idempotency key: (tenant, MSH-4, MSH-10), or the FHIR resource's version key;
//! 4. the tenant's mapping rules;
//! 5. the tenant's plugins: events derived from the mapped ones, and validations (rules
//!    that read stream state run later, in the store's commit: `store/derive.rs`);
//! 6. envelopes: deterministic event ids, stream ids and provenance ([`to_events`]).
//!
//! A message that stops at any hop becomes a dead letter, built in one place
//! ([`dead_letter`]), with everything learnt up to that hop (header, tenant, key).

use crate::event::{self, NewEvent};
use crate::fhir;
use crate::hl7::ack::AckCode;
use crate::hl7::{self, Header, Hl7Message};
use crate::mapping::{DeadLetterAck, Filter, Mapped, MappedEvent, SkippedItem, Tenant, Tenants};
use crate::message::{Format, IdempotencyKey, RawMessage};
use crate::reason::{Reason, Rejection};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};
use std::sync::Arc;

/// What should happen to a message.
#[derive(Debug, Clone)]
pub enum Disposition {
    /// Append these events (acknowledged AA/CA once committed).
    Events(Vec<NewEvent>),
    /// An ignoring rule matched: keep the raw message as `filtered` (AA/CA), no events,
    /// no dead letter.
    Filtered(Filter),
    /// Keep the message as a dead letter, acknowledged with `ack`.
    DeadLetter {
        /// Why.
        rejection: Rejection,
        /// Which acknowledgement it earns once stored.
        ack: AckCode,
    },
}

/// A processed message, ready for the writer.
#[derive(Debug, Clone)]
pub struct Processed {
    /// The input, unchanged.
    pub raw: RawMessage,
    /// The MSH fields, when the bytes are HL7 v2 and got that far (used for the ACK).
    pub header: Option<Header>,
    /// The resolved tenant, if any.
    pub tenant: Option<String>,
    /// The tenant version that mapped it, when it has events: the plugins' rules that
    /// read stream state run with it in the store's commit.
    pub mapped_by: Option<Arc<Tenant>>,
    /// Present once the tenant and the message's own key are known.
    pub key: Option<IdempotencyKey>,
    /// `ADT^A01` (HL7 v2) or the resource type (FHIR), when known.
    pub message_type: Option<String>,
    /// Events or dead letter.
    pub disposition: Disposition,
    /// `for_each` items skipped by `on_item_error: skip` (also in each event's metadata).
    pub skipped: Vec<SkippedItem>,
}

/// A message decoded by its format, ready for the mapping engine.
enum Input<'t> {
    Hl7 {
        message: Hl7Message<'t>,
        header: Header,
    },
    Fhir {
        resource: Value,
    },
}

/// What the hops learnt before a message stopped (kept on its dead letter).
#[derive(Default)]
struct Learnt {
    tenant: Option<Arc<Tenant>>,
    header: Option<Header>,
    message_type: Option<String>,
    key: Option<IdempotencyKey>,
}

/// Runs decode, route, key and mapping on one message.
pub fn process(raw: RawMessage, tenants: &Tenants) -> Processed {
    let mut learnt = Learnt::default();
    let mut skipped = Vec::new();
    let disposition = match events(&raw, tenants, &mut learnt, &mut skipped) {
        Ok(disposition) => disposition,
        Err(rejection) => dead_letter(rejection, learnt.tenant.as_deref()),
    };
    // A header sniffed from a message that did not parse still names its type.
    let message_type =
        (learnt.message_type).or_else(|| learnt.header.as_ref().map(Header::message_code));
    // A message that failed before its own key was known is keyed by its bytes, so a
    // resend of the same bytes is a duplicate of the first dead letter, not a second one.
    let key = learnt.key.or_else(|| {
        let tenant = learnt.tenant.as_deref()?;
        matches!(disposition, Disposition::DeadLetter { .. })
            .then(|| content_key(&tenant.name, &raw.bytes))
    });
    let mapped_by = match &disposition {
        Disposition::Events(_) => learnt.tenant.clone(),
        _ => None,
    };
    Processed {
        raw,
        header: learnt.header,
        tenant: learnt.tenant.map(|t| t.name.clone()),
        mapped_by,
        key,
        message_type,
        disposition,
        skipped,
    }
}

/// The sending-facility column of a key made from a message's bytes (no MSH-4 holds a
/// `~`: it is the repetition separator).
pub const CONTENT_KEY_FACILITY: &str = "~content-sha256";

/// The key of a message that has none of its own: the tenant and the SHA-256 of its bytes.
fn content_key(tenant: &str, bytes: &[u8]) -> IdempotencyKey {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(bytes);
    IdempotencyKey {
        tenant: tenant.to_string(),
        sending_facility: CONTENT_KEY_FACILITY.to_string(),
        control_id: crate::hex(&digest),
    }
}

fn events(
    raw: &RawMessage,
    tenants: &Tenants,
    learnt: &mut Learnt,
    skipped_items: &mut Vec<SkippedItem>,
) -> Result<Disposition, Rejection> {
    learnt.tenant = raw.tenant.as_deref().and_then(|t| tenants.get(t)).cloned();
    let mut text = String::new();
    let input = decode(raw, &mut text, learnt)?;
    let tenant = route(raw, &input, tenants, learnt)?;
    let key = match &input {
        Input::Hl7 { header, .. } => IdempotencyKey {
            tenant: tenant.name.clone(),
            sending_facility: header.sending_facility.clone(),
            control_id: header.control_id.clone(),
        },
        Input::Fhir { resource } => fhir::key(&tenant.name, resource),
    };
    learnt.key = Some(key.clone());
    if let Input::Hl7 { message, .. } = &input {
        tenant.hl7_limits.check(message)?;
    }
    let mapped = match &input {
        Input::Hl7 { message, header } => tenant.rules.apply(message, header, tenant.timezone),
        Input::Fhir { resource } => tenant.fhir.rules.apply(resource, tenant.timezone),
    }?;
    Ok(match mapped {
        Mapped::Events {
            mut events,
            skipped,
        } => {
            // Step 5, the plugins' pure part: derived events, then validations.
            tenant.plugins.derive_pure(&mut events, raw.received_at);
            tenant.plugins.validate(&mut events)?;
            let events = to_events(raw, &tenant, &key, &input, learnt, events, &skipped);
            *skipped_items = skipped;
            Disposition::Events(events)
        }
        Mapped::Filtered(filter) => Disposition::Filtered(filter),
    })
}

/// Hop 1: bytes to a decoded message, by format. HL7 v2 text is kept in `text`, which
/// the parsed message borrows.
fn decode<'t>(
    raw: &RawMessage,
    text: &'t mut String,
    learnt: &mut Learnt,
) -> Result<Input<'t>, Rejection> {
    match raw.format {
        Format::Hl7v2 => {
            *text = hl7::decode(&raw.bytes).map_err(|(rejection, header)| {
                learnt.header = header;
                rejection
            })?;
            let message = Hl7Message::parse(text).inspect_err(|_| {
                learnt.header = hl7::sniff_header(&raw.bytes);
            })?;
            let header = message.header_lenient();
            learnt.header = Some(header.clone());
            learnt.message_type = Some(header.message_code());
            header.check()?;
            Ok(Input::Hl7 { message, header })
        }
        Format::FhirJson | Format::FhirXml => {
            // FHIR carries no header naming its tenant: only a bound source can send it.
            let Some(tenant) = &learnt.tenant else {
                return Err(Rejection::new(Reason::UnknownTenant));
            };
            let resource = fhir::decode::decode_within(
                &raw.bytes,
                raw.format,
                tenant.fhir.mode,
                tenant.fhir.max_items,
            )?;
            learnt.message_type = fhir::resource_type(&resource).map(str::to_string);
            Ok(Input::Fhir { resource })
        }
    }
}

/// Hop 2: the tenant bound to the source, else the one claiming MSH-4 / MSH-6.
fn route(
    raw: &RawMessage,
    input: &Input<'_>,
    tenants: &Tenants,
    learnt: &mut Learnt,
) -> Result<Arc<Tenant>, Rejection> {
    let tenant = match (&raw.tenant, input) {
        (None, Input::Hl7 { header, .. }) => tenants.route(header).cloned(),
        _ => learnt.tenant.clone(),
    };
    learnt.tenant = tenant.clone();
    tenant.ok_or_else(|| match input {
        Input::Hl7 { header, .. } => Rejection::with_detail(
            Reason::UnknownTenant,
            format!(
                "MSH-4 {:?}, MSH-6 {:?}",
                facility(&header.sending_facility),
                facility(&header.receiving_facility)
            ),
        ),
        _ => Rejection::new(Reason::UnknownTenant),
    })
}

/// A facility code for an UNKNOWN_TENANT detail: facility codes are routing identifiers,
/// not PHI, so support can see which claim is missing; cut to a bounded length.
fn facility(value: &str) -> &str {
    const MAX: usize = 64;
    match value.char_indices().nth(MAX) {
        Some((end, _)) => &value[..end],
        None => value,
    }
}

/// The dead-letter disposition with the ACK the rules give it: AR for bytes that are not
/// a message at all (the sender cannot correlate anything), else the tenant's policy.
pub fn dead_letter(rejection: Rejection, tenant: Option<&Tenant>) -> Disposition {
    let ack = match rejection.reason {
        Reason::NotHl7 | Reason::EmptyMessage | Reason::BatchEnvelope => AckCode::Reject,
        Reason::BatchEmpty | Reason::BatchMalformed | Reason::BatchTooManyMessages => {
            AckCode::Reject
        }
        Reason::FhirMalformed
        | Reason::FhirInvalid
        | Reason::FhirUnsafeXml
        | Reason::FhirTooDeep
        | Reason::FhirTooManyItems => AckCode::Reject,
        _ => match tenant.map(|t| t.ack_on_dead_letter).unwrap_or_default() {
            DeadLetterAck::Accept => AckCode::Accept,
            DeadLetterAck::Error => AckCode::Error,
        },
    };
    Disposition::DeadLetter { rejection, ack }
}

/// Events without a time of their own but with a source key of their own (a FHIR
/// resource version) get this time in their id, not the receipt time, so that every post
/// of that resource gives them the same id.
const NO_TIME: DateTime<Utc> = DateTime::UNIX_EPOCH;

/// Hop 5: mapped events to envelopes. An event's id comes from its own source key when
/// the mapping gives one (FHIR: resource, event type, place), else from the message key
/// and its index in the message; its time is its own, else the receipt time.
fn to_events(
    raw: &RawMessage,
    tenant: &Tenant,
    key: &IdempotencyKey,
    input: &Input<'_>,
    learnt: &Learnt,
    mapped: Vec<MappedEvent>,
    skipped: &[SkippedItem],
) -> Vec<NewEvent> {
    let message_key = format!("{}\u{0}{}", key.sending_facility, key.control_id);
    let received_at = raw.received_at.to_rfc3339_opts(SecondsFormat::Millis, true);
    mapped
        .into_iter()
        .enumerate()
        .map(|(i, m)| {
            let event_id = match &m.source_key {
                Some(source) => event::event_id(m.time.unwrap_or(NO_TIME), &tenant.name, source, 0),
                None => event::event_id(
                    m.time.unwrap_or(raw.received_at),
                    &tenant.name,
                    &message_key,
                    i,
                ),
            };
            let mut metadata = json!({
                "correlation_id": raw.id,
                "control_id": key.control_id,
                "channel": raw.channel,
                "message_type": learnt.message_type,
                "mapping": {"tenant": tenant.name, "file": m.file, "version": tenant.version},
                "received_at": received_at,
                "effective_at": m.time.unwrap_or(raw.received_at)
                    .to_rfc3339_opts(SecondsFormat::Millis, true),
            });
            match input {
                Input::Hl7 { header, .. } => {
                    metadata["sender"] = json!({
                        "application": header.sending_application,
                        "facility": header.sending_facility,
                    })
                }
                Input::Fhir { .. } => metadata["source"] = json!(m.source_key),
            }
            if !skipped.is_empty() {
                metadata["skipped_items"] = json!(skipped);
            }
            if let Some(derived) = &m.derived {
                metadata["derived"] = json!(derived);
            }
            if !m.flags.is_empty() {
                metadata["flags"] = json!(m.flags);
            }
            NewEvent {
                event_id,
                stream_id: event::stream_id(&tenant.name, &m.stream_type, &m.stream_key),
                metadata,
                stream_type: m.stream_type,
                stream_key: m.stream_key,
                event_type: m.event_type,
                tenant_id: tenant.name.clone(),
                data: m.data,
                message_id: Some(raw.id),
            }
        })
        .collect()
}

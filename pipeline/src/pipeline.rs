//! The pipeline: raw bytes in, events or a dead letter out.
//!
//! [`process`] is a pure function of the raw message and the tenant mappings: the same
//! input gives the same events with the same ids. It stores nothing; the batching writer
//! does that, and the adapter acknowledges once the writer's batch has committed.

use crate::event::{self, NewEvent};
use crate::hl7::{charset, Header, Hl7Message};
use crate::mapping::{DeadLetterAck, Tenant, Tenants};
use crate::reason::{Reason, Rejection};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::json;
use std::sync::Arc;
use uuid::Uuid;

/// A message as it came off the wire.
#[derive(Debug, Clone)]
pub struct RawMessage {
    /// Inbound message id (UUIDv7, assigned on receipt); events carry it as correlation id.
    pub id: Uuid,
    /// The tenant the listener or URL is bound to, if any.
    pub tenant: Option<String>,
    /// Where it came from, e.g. `mllp:127.0.0.1:2575` or `http`.
    pub channel: String,
    /// The bytes, verbatim.
    pub bytes: Vec<u8>,
    /// When it was received.
    pub received_at: DateTime<Utc>,
}

impl RawMessage {
    /// A freshly received message.
    pub fn new(tenant: Option<String>, channel: impl Into<String>, bytes: Vec<u8>) -> Self {
        RawMessage {
            id: Uuid::now_v7(),
            tenant,
            channel: channel.into(),
            bytes,
            received_at: Utc::now(),
        }
    }
}

/// The acknowledgement class a message earns once stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckCode {
    /// AA / CA.
    Accept,
    /// AE / CE.
    Error,
    /// AR / CR.
    Reject,
}

impl AckCode {
    /// One-letter form stored with the inbound message (`A`, `E`, `R`).
    pub fn as_letter(self) -> &'static str {
        match self {
            AckCode::Accept => "A",
            AckCode::Error => "E",
            AckCode::Reject => "R",
        }
    }

    /// Inverse of [`AckCode::as_letter`].
    pub fn from_letter(s: &str) -> Option<Self> {
        match s {
            "A" => Some(AckCode::Accept),
            "E" => Some(AckCode::Error),
            "R" => Some(AckCode::Reject),
            _ => None,
        }
    }
}

/// The idempotency key of an HL7 message: (tenant, MSH-4, MSH-10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey {
    /// Tenant id.
    pub tenant: String,
    /// MSH-4 as sent.
    pub sending_facility: String,
    /// MSH-10 as sent.
    pub control_id: String,
}

/// What should happen to a message.
#[derive(Debug, Clone)]
pub enum Disposition {
    /// Append these events (acknowledged AA/CA once committed).
    Events(Vec<NewEvent>),
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
    /// The MSH fields, when the bytes got that far (used for the ACK).
    pub header: Option<Header>,
    /// The resolved tenant, if any.
    pub tenant: Option<String>,
    /// Present when tenant, MSH-4 and MSH-10 are known.
    pub key: Option<IdempotencyKey>,
    /// Events or dead letter.
    pub disposition: Disposition,
    /// The FHIR resource type (`Encounter`, `Bundle`), for FHIR input; HL7 v2 has its
    /// header's `ADT^A01` instead.
    pub resource_type: Option<String>,
}

impl Processed {
    /// `ADT^A01` (HL7 v2) or the resource type (FHIR), when known.
    pub fn message_code(&self) -> Option<String> {
        self.header
            .as_ref()
            .map(Header::message_code)
            .or_else(|| self.resource_type.clone())
    }
}

/// Runs decode, parse, route and map on one message: FHIR for channels named `fhir...`
/// (see [`crate::fhir`]), HL7 v2 otherwise.
pub fn process(raw: RawMessage, tenants: &Tenants) -> Processed {
    if crate::fhir::is_fhir_channel(&raw.channel) {
        return crate::fhir::process(raw, tenants);
    }
    let bound = raw.tenant.as_deref().and_then(|t| tenants.get(t)).cloned();
    match map_message(&raw, bound, tenants) {
        Ok((header, tenant, mapped)) => Processed {
            disposition: Disposition::Events(to_events(&raw, &header, &tenant, mapped)),
            key: Some(key(&tenant, &header)),
            tenant: Some(tenant.name.clone()),
            header: Some(header),
            resource_type: None,
            raw,
        },
        Err(stop) => {
            let stop = *stop;
            Processed {
                disposition: dead_letter(stop.rejection, stop.tenant.as_deref()),
                key: match (&stop.tenant, &stop.header) {
                    (Some(t), Some(h)) if stop.keyed => Some(key(t, h)),
                    _ => None,
                },
                tenant: stop.tenant.map(|t| t.name.clone()),
                header: stop.header,
                resource_type: None,
                raw,
            }
        }
    }
}

/// Why and where a message stopped short of events.
struct Stop {
    rejection: Rejection,
    /// The header, when the bytes got that far (for the ACK).
    header: Option<Header>,
    /// The tenant, when known (for its ACK policy).
    tenant: Option<Arc<Tenant>>,
    /// Whether the idempotency key (tenant, MSH-4, MSH-10) is known.
    keyed: bool,
}

fn map_message(
    raw: &RawMessage,
    bound: Option<Arc<Tenant>>,
    tenants: &Tenants,
) -> Result<(Header, Arc<Tenant>, Vec<crate::mapping::MappedEvent>), Box<Stop>> {
    let stop = |rejection, header, tenant: &Option<Arc<Tenant>>| {
        Box::new(Stop {
            rejection,
            header,
            tenant: tenant.clone(),
            keyed: false,
        })
    };
    let mut decoded = charset::decode(&raw.bytes).map_err(|e| {
        let reason = match e {
            charset::DecodeError::NotHl7 => Reason::NotHl7,
            charset::DecodeError::Empty => Reason::EmptyMessage,
            charset::DecodeError::BatchEnvelope => Reason::BatchEnvelope,
            charset::DecodeError::UnsupportedCharset => Reason::UnsupportedCharset,
        };
        let header = (reason == Reason::UnsupportedCharset)
            .then(|| crate::hl7::sniff_header_latin1(&raw.bytes));
        stop(Rejection::new(reason), header.flatten(), &bound)
    })?;
    crate::hl7::prepare(&mut decoded.text);
    let msg = Hl7Message::parse(&decoded.text)
        .map_err(|r| stop(r, crate::hl7::sniff_header(&raw.bytes), &bound))?;
    let header = msg.header_lenient();
    if let Err(r) = header.check() {
        return Err(stop(r, Some(header), &bound));
    }
    let tenant = match &raw.tenant {
        Some(_) => bound,
        None => tenants.route(&header).cloned(),
    };
    let Some(tenant) = tenant else {
        return Err(stop(
            Rejection::new(Reason::UnknownTenant),
            Some(header),
            &None,
        ));
    };
    match tenant.rules.apply(&msg, &header, tenant.timezone) {
        Ok(mapped) => Ok((header, tenant, mapped)),
        Err(rejection) => Err(Box::new(Stop {
            rejection,
            header: Some(header),
            tenant: Some(tenant),
            keyed: true,
        })),
    }
}

fn key(tenant: &Tenant, header: &Header) -> IdempotencyKey {
    IdempotencyKey {
        tenant: tenant.name.clone(),
        sending_facility: header.sending_facility.clone(),
        control_id: header.control_id.clone(),
    }
}

/// The dead-letter disposition with the ACK the rules give it: AR for bytes that are not
/// an HL7 message (the sender cannot correlate anything), else the tenant's policy.
pub(crate) fn dead_letter(rejection: Rejection, tenant: Option<&Tenant>) -> Disposition {
    let ack = match rejection.reason {
        Reason::NotHl7 | Reason::EmptyMessage | Reason::BatchEnvelope => AckCode::Reject,
        Reason::FhirMalformed
        | Reason::FhirInvalid
        | Reason::FhirUnsafeXml
        | Reason::FhirTooDeep => AckCode::Reject,
        _ => match tenant.map(|t| t.ack_on_dead_letter).unwrap_or_default() {
            DeadLetterAck::Accept => AckCode::Accept,
            DeadLetterAck::Error => AckCode::Error,
        },
    };
    Disposition::DeadLetter { rejection, ack }
}

fn to_events(
    raw: &RawMessage,
    header: &Header,
    tenant: &Arc<Tenant>,
    mapped: Vec<crate::mapping::MappedEvent>,
) -> Vec<NewEvent> {
    let source_key = format!("{}\u{0}{}", header.sending_facility, header.control_id);
    mapped
        .into_iter()
        .enumerate()
        .map(|(i, m)| NewEvent {
            event_id: event::event_id(m.time.unwrap_or(raw.received_at), &tenant.name, &source_key, i),
            stream_id: event::stream_id(&tenant.name, &m.stream_type, &m.stream_key),
            metadata: json!({
                "correlation_id": raw.id,
                "control_id": header.control_id,
                "sender": {"application": header.sending_application, "facility": header.sending_facility},
                "channel": raw.channel,
                "message_type": header.message_code(),
                "mapping": {"tenant": tenant.name, "file": m.file, "version": tenant.version},
                "received_at": raw.received_at.to_rfc3339_opts(SecondsFormat::Millis, true),
            }),
            stream_type: m.stream_type,
            stream_key: m.stream_key,
            event_type: m.event_type,
            tenant_id: tenant.name.clone(),
            data: m.data,
        })
        .collect()
}

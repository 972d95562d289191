//! FHIR R4 input: a resource or Bundle (JSON or XML) in, events or a dead letter out.
//!
//! The same pure function as HL7 v2 ([`crate::process`] dispatches here for channels named
//! `fhir...`): [`decode`] parses and validates the body, the tenant's FHIR rules
//! ([`crate::mapping`]) map it, and this module adds the idempotency key and event ids.
//!
//! Idempotency key: (tenant, `fhir:<ResourceType>`, `<id>/_history/<meta.versionId>`), or
//! `<id>#<content hash>` without a version id, or the content hash alone without an id.
//! Event ids come from each event's own source key (resource, event type, place in the
//! resource) and time, so a repost, or a later version with one more location, appends
//! only what is new.

pub mod decode;
pub mod path;
pub mod values;

pub use decode::Mode;
pub use path::looks_like_type;

use crate::event::{self, NewEvent};
use crate::mapping::{MappedEvent, Tenant, Tenants};
use crate::pipeline::{dead_letter, Disposition, IdempotencyKey, Processed, RawMessage};
use crate::reason::{Reason, Rejection};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// Channels whose messages are FHIR: `fhir` (HTTP push) and `fhir-pull:...` (polling).
pub fn is_fhir_channel(channel: &str) -> bool {
    channel == "fhir" || channel.starts_with("fhir-")
}

/// Decodes, maps and keys one FHIR message for the tenant it is bound to.
pub fn process(raw: RawMessage, tenants: &Tenants) -> Processed {
    let tenant = raw.tenant.as_deref().and_then(|t| tenants.get(t)).cloned();
    let Some(tenant) = tenant else {
        return stopped(raw, None, None, None, Rejection::new(Reason::UnknownTenant));
    };
    let resource = match decode::decode(&raw.bytes, tenant.fhir.mode) {
        Ok(r) => r,
        Err(rejection) => return stopped(raw, Some(&tenant), None, None, rejection),
    };
    let resource_type = resource
        .get("resourceType")
        .and_then(Value::as_str)
        .filter(|t| looks_like_type(t))
        .map(str::to_string);
    let key = key(&tenant.name, &resource);
    match tenant.fhir.rules.apply(&resource, tenant.timezone) {
        Ok(mapped) => Processed {
            disposition: Disposition::Events(to_events(&raw, &tenant, &key, mapped)),
            tenant: Some(tenant.name.clone()),
            key: Some(key),
            header: None,
            resource_type,
            raw,
        },
        Err(rejection) => stopped(raw, Some(&tenant), Some(key), resource_type, rejection),
    }
}

fn stopped(
    raw: RawMessage,
    tenant: Option<&Tenant>,
    key: Option<IdempotencyKey>,
    resource_type: Option<String>,
    rejection: Rejection,
) -> Processed {
    Processed {
        disposition: dead_letter(rejection, tenant),
        tenant: tenant.map(|t| t.name.clone()),
        key,
        header: None,
        resource_type,
        raw,
    }
}

/// The idempotency key of a decoded resource or Bundle.
pub fn key(tenant: &str, resource: &Value) -> IdempotencyKey {
    let text = |p: &[&str]| {
        let mut v = resource;
        for k in p {
            v = v.get(k)?;
        }
        v.as_str().filter(|s| !s.is_empty())
    };
    let resource_type = text(&["resourceType"])
        .filter(|t| looks_like_type(t))
        .unwrap_or("Resource");
    let control_id = match (text(&["id"]), text(&["meta", "versionId"])) {
        (Some(id), Some(version)) => format!("{id}/_history/{version}"),
        (Some(id), None) => format!("{id}#{}", content_hash(resource)),
        (None, _) => content_hash(resource),
    };
    IdempotencyKey {
        tenant: tenant.to_string(),
        sending_facility: format!("fhir:{resource_type}"),
        control_id,
    }
}

/// `sha256:` and the first 16 bytes of the hash of the resource's JSON form (the same for
/// a resource sent as JSON or as XML).
fn content_hash(resource: &Value) -> String {
    let digest = Sha256::digest(resource.to_string().as_bytes());
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// Events without a time of their own get this one in their id (not the receipt time),
/// so that every post of a resource gives them the same id.
const NO_TIME: DateTime<Utc> = DateTime::UNIX_EPOCH;

fn to_events(
    raw: &RawMessage,
    tenant: &Tenant,
    key: &IdempotencyKey,
    mapped: Vec<MappedEvent>,
) -> Vec<NewEvent> {
    let message_key = format!("{}\u{0}{}", key.sending_facility, key.control_id);
    let resource_type = key.sending_facility.trim_start_matches("fhir:");
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
            NewEvent {
                event_id,
                stream_id: event::stream_id(&tenant.name, &m.stream_type, &m.stream_key),
                metadata: json!({
                    "correlation_id": raw.id,
                    "control_id": key.control_id,
                    "source": m.source_key,
                    "channel": raw.channel,
                    "message_type": resource_type,
                    "mapping": {"tenant": tenant.name, "file": m.file, "version": tenant.version},
                    "received_at": raw.received_at.to_rfc3339_opts(SecondsFormat::Millis, true),
                }),
                stream_type: m.stream_type,
                stream_key: m.stream_key,
                event_type: m.event_type,
                tenant_id: tenant.name.clone(),
                data: m.data,
            }
        })
        .collect()
}

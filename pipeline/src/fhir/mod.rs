//! FHIR R4, the format: [`decode`] parses and validates a body (JSON or XML), [`path`] is
//! the FHIRPath subset mapping rules read it with, [`values`] types what they read, and
//! this module gives a resource's idempotency key.
//!
//! Idempotency key: (tenant, `fhir:<ResourceType>`, `<id>/_history/<meta.versionId>`), or
//! `<id>#<content hash>` without a version id, or the content hash alone without an id.
//! Events get their ids from their own source keys (resource, event type, place in the
//! resource; see the rules), so a repost, or a later version with one more location,
//! appends only what is new.

pub mod bindings;
pub mod decode;
pub mod path;
pub mod values;

pub use decode::Mode;
pub use path::looks_like_type;

use crate::message::IdempotencyKey;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The resource's `resourceType`, when it is shaped like one.
pub fn resource_type(resource: &Value) -> Option<&str> {
    resource
        .get("resourceType")
        .and_then(Value::as_str)
        .filter(|t| looks_like_type(t))
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
    format!("sha256:{}", crate::hex(&digest[..16]))
}

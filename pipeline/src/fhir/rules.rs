//! A tenant's FHIR mapping rules.
//!
//! TODO(fhir branch): FHIRPath subset, rule files, Bundles.

use crate::mapping::MappedEvent;
use crate::reason::{Reason, Rejection};
use serde_json::Value;

/// The compiled FHIR rules of one tenant.
#[derive(Debug, Clone, Default)]
pub struct FhirRules {}

impl FhirRules {
    /// Maps a resource or Bundle to events, or says precisely why it cannot be.
    pub fn apply(
        &self,
        resource: &Value,
        _tz: chrono_tz::Tz,
    ) -> Result<Vec<MappedEvent>, Rejection> {
        let t = resource
            .get("resourceType")
            .and_then(Value::as_str)
            .unwrap_or("");
        Err(Rejection::with_detail(
            Reason::UnmappedResourceType,
            t.to_string(),
        ))
    }
}

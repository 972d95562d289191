//! FHIR bodies to JSON values.
//!
//! TODO(fhir branch): fhirbolt validation, XML, safety checks.

use crate::reason::{Reason, Rejection};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How strictly a tenant's FHIR input is validated (fhirbolt's deserialization modes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Unknown elements and invalid values are refused (default).
    #[default]
    Strict,
    /// Tolerates what real servers commonly send wrong.
    Compatibility,
    /// Accepts anything that parses.
    Lax,
}

/// Parses a FHIR R4 resource or Bundle and returns it as FHIR JSON.
pub fn decode(bytes: &[u8], _mode: Mode) -> Result<Value, Rejection> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| {
        Rejection::with_detail(
            Reason::FhirMalformed,
            format!("line {} column {}", e.line(), e.column()),
        )
    })?;
    Ok(value)
}

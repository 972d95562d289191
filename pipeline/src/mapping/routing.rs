//! Routing: which tenant a message belongs to when its listener is not bound to one.
//!
//! A tenant claims facilities in its `tenant.yaml` (`routing.sending_facilities`, matched
//! on MSH-4, and `routing.receiving_facilities`, on MSH-6). A claim matches a field when it
//! equals the whole field or its first component. MSH-4 claims are tried first, across
//! all tenants, then MSH-6 claims.
//!
//! Two tenants must never be able to match the same message through the same field: that
//! would store one hospital's messages under another. [`overlaps`] finds such pairs, and
//! loading refuses them, so `intake check`, `intake serve` and hot reload all say no.

use super::{LoadError, Tenant, Tenants};
use crate::hl7::Header;
use std::sync::Arc;

/// Which header field a claim is matched on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Field {
    /// MSH-4, `routing.sending_facilities`.
    Sending,
    /// MSH-6, `routing.receiving_facilities`.
    Receiving,
}

impl Field {
    /// The key under `routing:` in `tenant.yaml`.
    pub fn key(self) -> &'static str {
        match self {
            Field::Sending => "sending_facilities",
            Field::Receiving => "receiving_facilities",
        }
    }
}

/// One routing claim as written in `tenant.yaml`, with where it was written.
#[derive(Debug, Clone)]
pub(super) struct Claim {
    /// The field it is matched on.
    pub field: Field,
    /// The facility code.
    pub value: String,
    /// Its location (the message is empty).
    pub site: LoadError,
}

/// The values of the claims on `field`, in the order written.
pub(super) fn values(claims: &[Claim], field: Field) -> Vec<String> {
    claims
        .iter()
        .filter(|c| c.field == field)
        .map(|c| c.value.clone())
        .collect()
}

/// The claim's first component, in the standard component separator.
fn first(claim: &str) -> &str {
    claim.split('^').next().unwrap_or(claim)
}

/// Whether some field value would match both claims: a value `v` matches a claim `c`
/// when `c == v` or `c == first(v)`, so two claims share a value exactly when they are
/// equal or one is the first component of the other (`NORTH` and `NORTH^1.2.3^ISO`).
pub(super) fn overlap(a: &str, b: &str) -> bool {
    a == b || first(a) == b || a == first(b)
}

/// Every claim of a tenant that overlaps an earlier tenant's claim on the same field,
/// reported at the later claim and naming the earlier one. `tenants` is in load order.
pub(super) fn overlaps<'a>(
    tenants: impl IntoIterator<Item = (&'a str, &'a [Claim])>,
) -> Vec<LoadError> {
    let mut seen: Vec<(&str, &Claim)> = Vec::new();
    let mut errors = Vec::new();
    for (tenant, claims) in tenants {
        for claim in claims {
            let earlier = seen.iter().find(|(other, c)| {
                *other != tenant && c.field == claim.field && overlap(&c.value, &claim.value)
            });
            if let Some((other, c)) = earlier {
                errors.push(LoadError {
                    message: format!(
                        "routing.{}: {:?} overlaps {:?}, claimed by tenant {other:?} at {}:{}:{}; \
                         a message could be stored under either tenant",
                        claim.field.key(),
                        claim.value,
                        c.value,
                        c.site.file.display(),
                        c.site.line,
                        c.site.column,
                    ),
                    ..claim.site.clone()
                });
            }
        }
        seen.extend(claims.iter().map(|c| (tenant, c)));
    }
    errors
}

impl Tenants {
    /// The tenant claiming the message's sending facility (MSH-4), else its receiving
    /// facility (MSH-6). Matches the whole field or its first component, in the message's
    /// own component separator. Loading guarantees at most one tenant per field matches.
    pub fn route(&self, h: &Header) -> Option<&Arc<Tenant>> {
        let component = h.encoding_chars.chars().next().unwrap_or('^');
        let claims = |list: &[String], value: &str| {
            let first = value.split(component).next().unwrap_or("");
            list.iter()
                .any(|c| c == value || (!first.is_empty() && c == first))
        };
        self.by_name
            .values()
            .find(|t| claims(&t.sending_facilities, &h.sending_facility))
            .or_else(|| {
                self.by_name
                    .values()
                    .find(|t| claims(&t.receiving_facilities, &h.receiving_facility))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::overlap;

    #[test]
    fn claims_overlap_when_equal_or_one_is_the_others_first_component() {
        assert!(overlap("NORTH", "NORTH"));
        assert!(overlap("NORTH", "NORTH^1.2.3^ISO"));
        assert!(overlap("NORTH^1.2.3^ISO", "NORTH"));
        assert!(!overlap("NORTH^1.2.3^ISO", "NORTH^4.5.6^ISO"));
        assert!(!overlap("NORTH", "NORTHEAST"));
        assert!(!overlap("NORTH", "north"));
    }
}

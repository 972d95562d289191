//! The audit trail of support work: every replay, discard, raw-message view, mapping
//! rollback, re-map and prune appends one event to its tenant's `Audit` stream, saying who did
//! what, when, to which ids, by which filter, with what result.
//!
//! The events hold no message content: ids, codes, counts, versions, the actor's name and
//! the reason the actor typed. Store operations that change dead letters write their audit
//! event in their own transaction, so an operation is never done without its record.

use crate::event::{event_id, stream_id, NewEvent};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};
use uuid::Uuid;

/// The stream type of audit events.
pub const AUDIT_STREAM_TYPE: &str = "Audit";

/// The natural key of a tenant's one audit stream: its id is
/// `stream_id(tenant, "Audit", "audit")` (README, "Audit").
pub const AUDIT_STREAM_KEY: &str = "audit";

/// The tenant under which work on letters that have no tenant (messages that could not be
/// routed) is audited.
pub const UNROUTED_TENANT: &str = "_unrouted";

/// Which component appends audit events (their `created_by`).
pub const AUDIT_CREATED_BY: &str = "intake/audit";

/// The longest reason kept; a longer one is refused, not cut.
pub const MAX_REASON_CHARS: usize = 500;

/// Who asks for a support operation, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// The token's name over HTTP (`alice`, `tenant:demo`), `cli:<user>` on the command line.
    pub name: String,
    /// The reason the actor gave, if any (required for discards).
    pub reason: Option<String>,
}

impl Actor {
    /// An actor with a reason (None: none given). Refuses a reason that is empty, longer
    /// than [`MAX_REASON_CHARS`] or has control characters.
    pub fn new(name: impl Into<String>, reason: Option<String>) -> Result<Self, &'static str> {
        if let Some(r) = &reason {
            if r.trim().is_empty()
                || r.chars().count() > MAX_REASON_CHARS
                || r.chars().any(char::is_control)
            {
                return Err("a reason is 1 to 500 characters of text, with no control characters");
            }
        }
        Ok(Actor {
            name: name.into(),
            reason,
        })
    }

    /// The operating-system user running a command: `cli:<user>`.
    pub fn from_cli(reason: Option<String>) -> Result<Self, &'static str> {
        let user = std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .unwrap_or_else(|_| "unknown".into());
        Actor::new(format!("cli:{user}"), reason)
    }
}

/// What was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditAction {
    /// Dead letters were replayed (some may still fail).
    DeadLettersReplayed,
    /// Dead letters were discarded.
    DeadLettersDiscarded,
    /// A raw message was shown to, or written out for, a person.
    RawMessageViewed,
    /// A tenant's mappings were rolled back to an earlier version.
    MappingRolledBack,
    /// Stored messages were re-mapped with another mapping version and correction events
    /// appended.
    MessagesRemapped,
    /// The raw bytes of old messages were emptied by the tenant's retention policy.
    RawMessagesPruned,
}

impl AuditAction {
    /// The event type, as stored.
    pub fn event_type(self) -> &'static str {
        match self {
            AuditAction::DeadLettersReplayed => "DeadLettersReplayed",
            AuditAction::DeadLettersDiscarded => "DeadLettersDiscarded",
            AuditAction::RawMessageViewed => "RawMessageViewed",
            AuditAction::MappingRolledBack => "MappingRolledBack",
            AuditAction::MessagesRemapped => "MessagesRemapped",
            AuditAction::RawMessagesPruned => "RawMessagesPruned",
        }
    }
}

/// The id of `tenant`'s audit stream.
pub fn audit_stream_id(tenant: &str) -> Uuid {
    stream_id(tenant, AUDIT_STREAM_TYPE, AUDIT_STREAM_KEY)
}

/// The audit event of `action` by `actor` on `tenant`'s data, at `at`. `details` holds
/// the filter, the counts and the ids (never content); the actor, reason and time are
/// added here. Each call gives a new event id: two identical operations are two entries.
pub fn audit_event(
    action: AuditAction,
    actor: &Actor,
    tenant: &str,
    details: Value,
    at: DateTime<Utc>,
) -> NewEvent {
    let mut data = json!({
        "actor": actor.name,
        "reason": actor.reason,
        "at": at.to_rfc3339_opts(SecondsFormat::Micros, true),
    });
    if let (Some(d), Value::Object(extra)) = (data.as_object_mut(), details) {
        d.extend(extra);
    }
    let unique = Uuid::now_v7();
    NewEvent {
        event_id: event_id(at, tenant, &format!("audit\u{0}{unique}"), 0),
        stream_id: audit_stream_id(tenant),
        stream_type: AUDIT_STREAM_TYPE.into(),
        stream_key: AUDIT_STREAM_KEY.into(),
        event_type: action.event_type().into(),
        tenant_id: tenant.into(),
        data,
        metadata: json!({ "actor": actor.name, "source": AUDIT_CREATED_BY }),
        message_id: None,
    }
}

/// The audit event of `actor` viewing the raw message of letter `id` of `tenant`, now,
/// through `via` (`http`, `console` or `cli`): to append before the bytes are shown.
pub fn raw_view(actor: &Actor, tenant: &str, id: Uuid, via: &str) -> NewEvent {
    let details = json!({"ids": [id], "via": via});
    audit_event(
        AuditAction::RawMessageViewed,
        actor,
        tenant,
        details,
        Utc::now(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_audit_event_names_the_actor_and_reason_and_lands_on_the_tenant_stream() {
        let actor = Actor::new("alice", Some("mapping fixed".into())).unwrap();
        let e = audit_event(
            AuditAction::DeadLettersDiscarded,
            &actor,
            "demo",
            json!({"ids": ["x"], "counts": {"discarded": 1}}),
            Utc::now(),
        );
        assert_eq!(e.stream_id, audit_stream_id("demo"));
        assert_eq!(e.event_type, "DeadLettersDiscarded");
        assert_eq!(e.data["actor"], "alice");
        assert_eq!(e.data["reason"], "mapping fixed");
        assert_eq!(e.data["counts"]["discarded"], 1);
        let again = audit_event(
            AuditAction::DeadLettersDiscarded,
            &actor,
            "demo",
            json!({}),
            Utc::now(),
        );
        assert_ne!(e.event_id, again.event_id, "two operations, two entries");
    }

    #[test]
    fn a_reason_must_be_short_plain_text() {
        assert!(Actor::new("a", Some(" ".into())).is_err());
        assert!(Actor::new("a", Some("x".repeat(501))).is_err());
        assert!(Actor::new("a", Some("two\nlines".into())).is_err());
        assert!(Actor::new("a", Some("x".repeat(500))).is_ok());
        assert!(Actor::new("a", None).is_ok());
    }
}

//! What became of one inbound message: the one answer the writer gives every adapter.
//!
//! The store builds an [`Outcome`] for each message of a committed batch (or the writer
//! does, when nothing could be stored); adapters turn it into their protocol's answer —
//! an HL7 ACK ([`Outcome::hl7_ack`]), an HTTP status, a FHIR OperationOutcome — without
//! parsing anything back.

use crate::hl7::ack::{build_ack, AckCode, AckError};
use crate::hl7::Header;
use crate::pipeline::{Disposition, Processed};
use crate::reason::Reason;
use serde::Serialize;
use std::collections::HashMap;
use uuid::Uuid;

/// What was stored for a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stored {
    /// Its events were appended.
    Events,
    /// It was kept as a dead letter.
    DeadLettered,
    /// An ignoring rule matched: the raw message was kept as `filtered`, nothing else.
    Filtered,
    /// Its idempotency key was already stored: nothing new was written.
    Duplicate,
}

impl Stored {
    /// The stable name used in metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Stored::Events => "events",
            Stored::DeadLettered => "dead_lettered",
            Stored::Filtered => "filtered",
            Stored::Duplicate => "duplicate",
        }
    }
}

/// The committed (or failed) result of one inbound message: everything an adapter needs
/// to answer, and nothing from the message's content beyond its header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The inbound message id.
    pub inbound_id: Uuid,
    /// The resolved tenant, when known.
    pub tenant: Option<String>,
    /// The HL7 v2 header, when the bytes got that far (for the ACK).
    pub header: Option<Header>,
    /// `ADT^A01`, or the FHIR resource type, when known.
    pub message_type: Option<String>,
    /// What was stored; `None` when nothing was (the store failed: the sender retries).
    pub stored: Option<Stored>,
    /// The acknowledgement class (for a duplicate: the first message's).
    pub ack: AckCode,
    /// Why the message was dead-lettered (for a duplicate: the first message's reason).
    pub reason: Option<Reason>,
    /// The dead-letter reason's PHI-free detail (field and path, FHIRPath expression), or
    /// a filtered message's rule reason (mapping text).
    pub detail: Option<String>,
    /// Global positions of the events this message appended.
    pub positions: Vec<i64>,
}

/// The code of an outcome whose message could not be stored.
pub const STORE_UNAVAILABLE: &str = "STORE_UNAVAILABLE";

impl Outcome {
    fn of(p: &Processed, stored: Option<Stored>, ack: AckCode, reason: Option<Reason>) -> Self {
        let detail = match &p.disposition {
            Disposition::DeadLetter { rejection, .. } if stored.is_some() => {
                rejection.detail.clone()
            }
            Disposition::Filtered(f) if stored.is_some() => Some(f.reason.clone()),
            _ => None,
        };
        Outcome {
            inbound_id: p.raw.id,
            tenant: p.tenant.clone(),
            header: p.header.clone(),
            message_type: p.message_type.clone(),
            stored,
            ack,
            reason,
            detail,
            positions: Vec::new(),
        }
    }

    /// A message whose rows this batch inserted; `positions` maps event ids to the global
    /// positions they were given (events stored before are absent from it), and `derived`
    /// holds the positions of the events plugins derived from it in the commit.
    pub fn inserted(p: &Processed, positions: &HashMap<Uuid, i64>, derived: &[i64]) -> Self {
        match &p.disposition {
            Disposition::Events(events) => Outcome {
                positions: events
                    .iter()
                    .filter_map(|e| positions.get(&e.event_id).copied())
                    .chain(derived.iter().copied())
                    .collect(),
                ..Outcome::of(p, Some(Stored::Events), AckCode::Accept, None)
            },
            Disposition::DeadLetter { rejection, ack } => {
                Outcome::of(p, Some(Stored::DeadLettered), *ack, Some(rejection.reason))
            }
            Disposition::Filtered(_) => {
                Outcome::of(p, Some(Stored::Filtered), AckCode::Accept, None)
            }
        }
    }

    /// A message whose idempotency key was stored before: it earns the first one's
    /// acknowledgement and reason.
    pub fn duplicate(p: &Processed, ack: AckCode, reason: Option<Reason>) -> Self {
        Outcome {
            detail: None,
            ..Outcome::of(p, Some(Stored::Duplicate), ack, reason)
        }
    }

    /// Nothing could be stored (the database failed): AR / CR, the sender retries.
    pub fn not_stored(p: &Processed) -> Self {
        Outcome::of(p, None, AckCode::Reject, None)
    }

    /// The stable code of a negative outcome: the dead-letter reason, or
    /// `STORE_UNAVAILABLE` when nothing was stored.
    pub fn code(&self) -> Option<&'static str> {
        match (self.stored, self.reason) {
            (None, _) => Some(STORE_UNAVAILABLE),
            (Some(_), reason) => reason.map(Reason::code),
        }
    }

    /// The HL7 v2 acknowledgement: in the message's own delimiters and version, MSA-2
    /// echoing MSH-10, and for AE/AR (CE/CR) an ERR segment with our code.
    pub fn hl7_ack(&self) -> String {
        let error = match (self.stored, self.reason) {
            _ if self.ack == AckCode::Accept => None,
            (None, _) => Some(AckError {
                code: STORE_UNAVAILABLE,
                hl7_code: "207",
                text: "Application internal error",
            }),
            (Some(_), Some(r)) => Some(AckError {
                code: r.code(),
                hl7_code: r.hl7_error_code(),
                text: r.text(),
            }),
            (Some(_), None) => None,
        };
        build_ack(
            self.header.as_ref(),
            self.ack,
            error.as_ref(),
            &ack_control_id(),
            chrono::Local::now().fixed_offset(),
        )
    }
}

/// A control id for an ACK: 20 hex characters (MSH-10 is 20 long in v2.5), unique within
/// the process and, with high probability, across processes. 8 characters of Unix seconds,
/// 4 of a random number drawn once per process, 8 of a counter: two ACKs of one process
/// share an id only if 2^32 were sent within one second. (A truncated UUIDv7 repeated:
/// its random bits were cut off.)
pub fn ack_control_id() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::LazyLock;
    // The random tail of a UUIDv7 (its last bytes are random).
    static PROCESS: LazyLock<u16> = LazyLock::new(|| {
        let b = Uuid::now_v7().into_bytes();
        u16::from_be_bytes([b[14], b[15]])
    });
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let seconds = chrono::Utc::now().timestamp() as u32;
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{seconds:08x}{:04x}{n:08x}", *PROCESS)
}

#[cfg(test)]
mod tests {
    use super::ack_control_id;
    use std::collections::HashSet;

    #[test]
    fn ack_control_ids_are_unique_across_threads_and_fit_msh_10() {
        let ids: Vec<String> = std::thread::scope(|s| {
            let workers: Vec<_> = (0..8)
                .map(|_| s.spawn(|| (0..20_000).map(|_| ack_control_id()).collect::<Vec<_>>()))
                .collect();
            workers
                .into_iter()
                .flat_map(|w| w.join().unwrap())
                .collect()
        });
        assert!(ids
            .iter()
            .all(|id| id.len() == 20 && id.bytes().all(|b| b.is_ascii_hexdigit())));
        let unique: HashSet<&String> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len(), "no id twice in 160,000");
    }
}

//! Per-input checkpoints: the offset after the last message that, with every message
//! before it, is committed. Messages commit out of order; the checkpoint advances only
//! over an unbroken run of stored ones, and stops for good at one that was not stored
//! (a re-run reads from there again; idempotency makes the overlap duplicates).

use std::collections::BTreeMap;

/// The checkpoint of one input.
#[derive(Debug, Default)]
pub struct Checkpoint {
    /// The offset safe to resume from.
    pub offset: u64,
    /// The next message number whose outcome is awaited.
    next: u64,
    /// Outcomes that arrived before an earlier message's: seq -> (end, stored).
    early: BTreeMap<u64, (u64, bool)>,
    /// A message was not stored: the checkpoint stays where it is.
    blocked: bool,
    /// How many messages were read, once the input has been read to its end.
    total: Option<u64>,
    /// Changed since last saved.
    pub dirty: bool,
}

impl Checkpoint {
    /// Starts at a saved offset.
    pub fn at(offset: u64) -> Self {
        Checkpoint {
            offset,
            ..Checkpoint::default()
        }
    }

    /// Message `seq`, ending at `end`, was committed (`stored`) or not.
    pub fn done(&mut self, seq: u64, end: u64, stored: bool) {
        self.early.insert(seq, (end, stored));
        while let Some((end, stored)) = self.early.remove(&self.next) {
            self.next += 1;
            self.blocked |= !stored;
            if !self.blocked {
                self.offset = end;
                self.dirty = true;
            }
        }
    }

    /// The input was read to its end after `messages` messages.
    pub fn read_all(&mut self, messages: u64) {
        self.total = Some(messages);
    }

    /// Whether every message read is accounted for and stored, and the input was read
    /// to its end: the checkpoint may then move to the end of the input.
    pub fn complete(&self) -> bool {
        self.total == Some(self.next) && !self.blocked
    }

    /// Marks the input finished at `size` if [`Checkpoint::complete`].
    pub fn finish(&mut self, size: u64) {
        if self.complete() && self.offset != size {
            self.offset = size;
            self.dirty = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advances_over_committed_runs_only() {
        let mut c = Checkpoint::at(10);
        c.done(1, 30, true);
        assert_eq!(c.offset, 10);
        c.done(0, 20, true);
        assert_eq!(c.offset, 30);
        c.done(3, 50, true);
        c.done(2, 40, false);
        assert_eq!(c.offset, 30);
        c.read_all(4);
        assert!(!c.complete());
        c.finish(60);
        assert_eq!(c.offset, 30);
    }

    #[test]
    fn finishes_at_the_size() {
        let mut c = Checkpoint::default();
        c.done(0, 20, true);
        c.read_all(1);
        c.finish(25);
        assert_eq!(c.offset, 25);
        assert!(c.dirty);
    }
}

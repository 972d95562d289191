-- Retention of raw messages (README "Retention"): a tenant's policy may empty the bytes of
-- old messages. The row stays (it holds the idempotency key and the stored ACK, so a
-- resend is still answered as the first time); pruned_at records when its bytes went.
ALTER TABLE inbound_messages ADD COLUMN pruned_at TEXT;     -- RFC 3339 UTC, NULL: kept
-- Raw bytes stay immutable but for one change: emptied, once, together with pruned_at,
-- and never while the message has an open dead letter (its raw is what replay maps; a
-- letter's id is its message's, so the primary key finds it).
DROP TRIGGER inbound_raw_is_immutable;
CREATE TRIGGER inbound_raw_is_immutable BEFORE UPDATE OF raw ON inbound_messages
WHEN NOT (length(NEW.raw) = 0 AND OLD.pruned_at IS NULL AND NEW.pruned_at IS NOT NULL)
BEGIN SELECT RAISE(ABORT, 'raw messages are immutable (they may only be pruned)'); END;
CREATE TRIGGER inbound_pruned_at_is_final BEFORE UPDATE OF pruned_at ON inbound_messages
WHEN OLD.pruned_at IS NOT NULL OR NEW.pruned_at IS NULL OR length(NEW.raw) <> 0
BEGIN SELECT RAISE(ABORT, 'pruned_at is set once, with the raw message emptied'); END;
CREATE TRIGGER inbound_raw_of_open_letter_is_kept BEFORE UPDATE OF raw ON inbound_messages
WHEN EXISTS (SELECT 1 FROM dead_letters WHERE id = OLD.id AND status = 'open')
BEGIN SELECT RAISE(ABORT, 'the raw message of an open dead letter is kept'); END;
-- The rows themselves are never deleted (PostgreSQL: no DELETE privilege, and a trigger).
CREATE TRIGGER inbound_messages_are_never_deleted BEFORE DELETE ON inbound_messages
BEGIN SELECT RAISE(ABORT, 'inbound messages are never deleted'); END;

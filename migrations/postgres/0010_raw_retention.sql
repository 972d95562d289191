-- Retention of raw messages (README "Retention"): a tenant's policy may empty the bytes of
-- old messages. The row stays (it holds the idempotency key and the stored ACK, so a
-- resend is still answered as the first time); pruned_at records when its bytes went.
ALTER TABLE inbound_messages ADD COLUMN pruned_at timestamptz;   -- NULL: kept

-- Inbound messages stay append-only but for one change: raw emptied, once, together with
-- pruned_at, every other column as it was, and never while the message has an open dead
-- letter (its raw is what replay maps; a letter's id is its message's, so the primary key
-- finds it). Row-level security applies inside the check: the
-- letter of a message is its tenant's, so it is in the scope of whoever may update it.
CREATE FUNCTION intake_inbound_prune_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE'
       AND OLD.pruned_at IS NULL AND NEW.pruned_at IS NOT NULL
       AND octet_length(NEW.raw) = 0
       AND (NEW.id, NEW.tenant_id, NEW.sending_facility, NEW.control_id, NEW.channel,
            NEW.message_type, NEW.received_at, NEW.outcome, NEW.ack_code, NEW.reason_code,
            NEW.event_count, NEW.format, NEW.detail)
           IS NOT DISTINCT FROM
           (OLD.id, OLD.tenant_id, OLD.sending_facility, OLD.control_id, OLD.channel,
            OLD.message_type, OLD.received_at, OLD.outcome, OLD.ack_code, OLD.reason_code,
            OLD.event_count, OLD.format, OLD.detail)
    THEN
        IF EXISTS (SELECT 1 FROM dead_letters WHERE id = OLD.id AND status = 'open') THEN
            RAISE EXCEPTION 'the raw message of an open dead letter is kept';
        END IF;
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'inbound_messages are append-only (raw messages may only be pruned)';
END
$$;
DROP TRIGGER inbound_messages_are_append_only ON inbound_messages;
CREATE TRIGGER inbound_messages_are_append_only BEFORE UPDATE OR DELETE ON inbound_messages
    FOR EACH ROW EXECUTE FUNCTION intake_inbound_prune_only();
CREATE TRIGGER inbound_messages_are_never_truncated BEFORE TRUNCATE ON inbound_messages
    FOR EACH STATEMENT EXECUTE FUNCTION intake_refuse_change();

-- The engine may change only these two columns (and the trigger only as above); no DELETE.
GRANT UPDATE (raw, pruned_at) ON inbound_messages TO intake_app;

-- Why a message was filtered: the reason its tenant's ignoring rule gives (mapping text,
-- never message content). Outcome `filtered` is new with this column; earlier rows keep NULL.
ALTER TABLE inbound_messages ADD COLUMN detail TEXT;

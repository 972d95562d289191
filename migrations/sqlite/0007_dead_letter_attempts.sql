-- How often a dead-lettered message was received: 1, plus one per resend of the same key
-- (a resend is stored as nothing new and answered as the first time).
ALTER TABLE dead_letters ADD COLUMN attempts INTEGER NOT NULL DEFAULT 1;

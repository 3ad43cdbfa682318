-- When a user's credentials were last ended (Unix microseconds): the TURN
-- server refuses credentials issued before it, whose HMAC alone would
-- stand until they expire.
ALTER TABLE users ADD COLUMN creds_ended_at INTEGER NOT NULL DEFAULT 0;

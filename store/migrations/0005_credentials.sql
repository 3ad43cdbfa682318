-- Ending credentials: a password change (CLI or API) bumps token_gen, which
-- every login token carries, and takes a new creds_serial from one counter
-- across users, so a running server finds changed users with one indexed
-- query however many other processes wrote them.
ALTER TABLE users ADD COLUMN token_gen INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN creds_serial INTEGER NOT NULL DEFAULT 0;
CREATE INDEX users_creds_serial ON users(creds_serial);

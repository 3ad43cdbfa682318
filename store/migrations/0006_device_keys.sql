-- Device ids compare case-insensitively, as usernames do: id keeps the
-- spelling of the latest enrolment (what the agent's config holds), id_key
-- is its lower-cased form and the one that must be unique. Ids are ASCII,
-- so lower() folds them the same on SQLite and PostgreSQL.
--
-- Ids that differ only in case may already exist, even across users. The
-- one enrolled first keeps its id; later ones are revoked, which is what
-- enrolling them now would answer (409). Their agents are told to log in
-- again and pick another --device.
CREATE TABLE devices_v6 (
    id          TEXT    PRIMARY KEY,
    id_key      TEXT    NOT NULL UNIQUE CHECK (id_key = lower(id)),
    user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    token_hash  TEXT    NOT NULL UNIQUE,        -- SHA-256 of the device token
    fingerprint TEXT    NOT NULL DEFAULT '',    -- sha256:… of its QUIC certificate
    created_at  INTEGER NOT NULL,
    last_seen   INTEGER NOT NULL
);
INSERT INTO devices_v6 (id, id_key, user_id, token_hash, fingerprint, created_at, last_seen)
SELECT id, lower(id), user_id, token_hash, fingerprint, created_at, last_seen
FROM devices d
WHERE NOT EXISTS (
    SELECT 1 FROM devices e
    WHERE lower(e.id) = lower(d.id)
      AND (e.created_at < d.created_at OR (e.created_at = d.created_at AND e.id < d.id))
);
DROP TABLE devices;
ALTER TABLE devices_v6 RENAME TO devices;
CREATE INDEX devices_user ON devices(user_id);

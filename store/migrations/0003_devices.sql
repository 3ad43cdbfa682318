-- Devices (agents), peer-to-peer session tokens and transfer reports.
CREATE TABLE devices (
    id          TEXT    PRIMARY KEY,            -- exactly the agent's --device
    user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    token_hash  TEXT    NOT NULL UNIQUE,        -- SHA-256 of the device token
    fingerprint TEXT    NOT NULL DEFAULT '',    -- sha256:… of its QUIC certificate
    created_at  INTEGER NOT NULL,
    last_seen   INTEGER NOT NULL
);
CREATE INDEX devices_user ON devices(user_id);

CREATE TABLE p2p_sessions (
    id               TEXT    PRIMARY KEY,
    token_hash       TEXT    NOT NULL,
    kind             TEXT    NOT NULL,
    user_id          INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    initiator_device TEXT    NOT NULL,
    target_device    TEXT    NOT NULL,
    created_at       INTEGER NOT NULL,
    expires_at       INTEGER NOT NULL
);

CREATE TABLE transfers (
    id          INTEGER PRIMARY KEY,
    user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    session_id  TEXT    NOT NULL,
    from_device TEXT    NOT NULL,
    to_device   TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    size        INTEGER NOT NULL,
    blake3      TEXT    NOT NULL,
    duration_ms INTEGER NOT NULL,
    outcome     TEXT    NOT NULL,
    direct      INTEGER NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE INDEX transfers_user ON transfers(user_id, id);

-- Rooms, their members and chat messages.
-- name_key is the lower-cased name of a kind 'room' room (NULL for direct rooms), so room
-- names compare case-insensitively through a plain unique column on every backend.
-- dm_key is "<lowUserId>:<highUserId>" of a direct room's two users (NULL for rooms).
-- last_seq is the seq of the room's newest message; each message takes the next one.
CREATE TABLE rooms (
    id         INTEGER PRIMARY KEY,
    name       TEXT    NOT NULL,
    name_key   TEXT    UNIQUE,
    visibility TEXT    NOT NULL CHECK (visibility IN ('public', 'private')),
    kind       TEXT    NOT NULL CHECK (kind IN ('room', 'direct')),
    dm_key     TEXT    UNIQUE,
    created_by INTEGER REFERENCES users(id) ON DELETE SET NULL,
    created_at INTEGER NOT NULL,
    last_seq   INTEGER NOT NULL DEFAULT 0,
    CHECK ((kind = 'room' AND name_key IS NOT NULL AND dm_key IS NULL)
        OR (kind = 'direct' AND name_key IS NULL AND dm_key IS NOT NULL))
);

CREATE TABLE room_members (
    room_id   INTEGER NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    user_id   INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    joined_at INTEGER NOT NULL,
    PRIMARY KEY (room_id, user_id)
);
CREATE INDEX room_members_user ON room_members (user_id);

-- UNIQUE (room_id, seq) also serves history pages in both directions.
CREATE TABLE messages (
    id            INTEGER PRIMARY KEY,
    room_id       INTEGER NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    seq           INTEGER NOT NULL,
    user_id       INTEGER NOT NULL REFERENCES users(id),
    text          TEXT    NOT NULL,
    client_msg_id TEXT,
    created_at    INTEGER NOT NULL,
    UNIQUE (room_id, seq)
);
-- A client's retry of a send is recognised by its client_msg_id.
CREATE UNIQUE INDEX messages_client_msg ON messages (room_id, user_id, client_msg_id)
    WHERE client_msg_id IS NOT NULL;

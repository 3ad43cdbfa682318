-- Push notifications: each user's Gotify target and preferences, rooms they
-- muted, and the outbox the push worker drains.
CREATE TABLE notify_settings (
    user_id       INTEGER PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    gotify_url    TEXT    NOT NULL DEFAULT '',
    gotify_token  TEXT    NOT NULL DEFAULT '',   -- an application token: Gotify needs it in clear
    kinds_off     TEXT    NOT NULL DEFAULT '',   -- comma-separated kinds the user turned off
    last_error    TEXT    NOT NULL DEFAULT '',
    last_error_at INTEGER NOT NULL DEFAULT 0,
    updated_at    INTEGER NOT NULL
);

CREATE TABLE notify_mutes (
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    room_id INTEGER NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, room_id)
);

CREATE TABLE notify_outbox (
    id         INTEGER PRIMARY KEY,
    idem_key   TEXT    NOT NULL UNIQUE,          -- one push per event and user
    user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    kind       TEXT    NOT NULL,                 -- dm | mention | call | file | test
    room_id    INTEGER NOT NULL DEFAULT 0,       -- for coalescing; 0 when none
    title      TEXT    NOT NULL,
    message    TEXT    NOT NULL,
    priority   INTEGER NOT NULL,
    click_url  TEXT    NOT NULL DEFAULT '',
    state      TEXT    NOT NULL DEFAULT 'pending', -- pending | sent | failed | merged
    attempts   INTEGER NOT NULL DEFAULT 0,
    next_at    INTEGER NOT NULL,
    last_error TEXT    NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL,
    sent_at    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX notify_outbox_due ON notify_outbox(state, next_at);

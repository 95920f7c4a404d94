-- The built-in notifier (src/alert/notify): silences, and the notification
-- log that keeps a restart from notifying again within repeat_interval.

CREATE TABLE notify_silences (
    id            TEXT PRIMARY KEY,
    -- API v2 matchers as JSON: [{"name","value","isRegex","isEqual"}].
    matchers      TEXT NOT NULL,
    starts_at_ms  INTEGER NOT NULL,
    ends_at_ms    INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    created_by    TEXT NOT NULL,
    comment       TEXT NOT NULL
);

-- Per aggregation group and integration, what was last notified: the
-- fingerprints (16 hex digits, comma-separated) of the firing and of the
-- resolved alerts, and when.
CREATE TABLE notify_log (
    group_key   TEXT NOT NULL,
    receiver    TEXT NOT NULL,
    integration TEXT NOT NULL,
    firing      TEXT NOT NULL,
    resolved    TEXT NOT NULL,
    sent_at_ms  INTEGER NOT NULL,
    PRIMARY KEY (group_key, receiver, integration)
);

-- Each rule group's alerts as of its last evaluation, so a restart keeps
-- pending, firing and resolved alerts where they were (src/alert/persist.rs).
-- `alerts` is a JSON array; `evaluated_at` in milliseconds since the epoch.
CREATE TABLE alert_group_state (
    file TEXT NOT NULL,
    name TEXT NOT NULL,
    evaluated_at INTEGER NOT NULL,
    alerts TEXT NOT NULL,
    PRIMARY KEY (file, name)
) WITHOUT ROWID;

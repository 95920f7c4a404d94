-- Store v0: one row per sample. The storage engine replaces this layout.
CREATE TABLE series (
    id     INTEGER PRIMARY KEY,
    name   TEXT NOT NULL,
    labels TEXT NOT NULL UNIQUE  -- JSON array of [name, value] pairs, sorted by name
);
CREATE INDEX series_by_name ON series (name);

CREATE TABLE samples (
    series_id INTEGER NOT NULL REFERENCES series (id),
    ts        INTEGER NOT NULL,  -- milliseconds since the Unix epoch
    value     REAL    NOT NULL,
    PRIMARY KEY (series_id, ts)
) WITHOUT ROWID;

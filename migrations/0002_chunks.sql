-- The storage engine: compressed chunks instead of one row per sample.
-- Invariants are documented in src/store/mod.rs.

-- v0 samples are moved into chunks by the store at its next start, then
-- this table is dropped (see Store::import_v0).
ALTER TABLE samples RENAME TO samples_v0;

-- Postings: for each label name and value, the series that carry it, so a
-- selector finds its series without reading every label set.
CREATE TABLE postings (
    name      TEXT    NOT NULL,
    value     TEXT    NOT NULL,
    series_id INTEGER NOT NULL REFERENCES series (id),
    PRIMARY KEY (name, value, series_id)
) WITHOUT ROWID;
INSERT INTO postings (name, value, series_id)
    SELECT json_extract(pair.value, '$[0]'), json_extract(pair.value, '$[1]'), series.id
    FROM series, json_each(series.labels) AS pair;

-- Full raw chunks: Prometheus XOR chunks of up to 120 samples.
-- Per series, chunks do not overlap: min_time > the previous chunk's max_time.
CREATE TABLE chunks (
    series_id INTEGER NOT NULL REFERENCES series (id),
    min_time  INTEGER NOT NULL,  -- first sample's timestamp, ms since the epoch
    max_time  INTEGER NOT NULL,  -- last sample's timestamp
    samples   INTEGER NOT NULL,
    data      BLOB    NOT NULL,
    PRIMARY KEY (series_id, min_time)
) WITHOUT ROWID;

-- Rollup chunks: per tier (1 = minute, 60 = hour) up to 120 buckets of
-- min, max, sum, count and last, as five length-prefixed XOR streams.
CREATE TABLE rollups (
    tier      INTEGER NOT NULL,
    series_id INTEGER NOT NULL REFERENCES series (id),
    min_time  INTEGER NOT NULL,  -- first bucket's start
    max_time  INTEGER NOT NULL,  -- last bucket's start
    data      BLOB    NOT NULL,
    PRIMARY KEY (tier, series_id, min_time)
) WITHOUT ROWID;

-- The head's state per active series (open chunks, open buckets), as of the
-- last checkpoint or the last chunk the series completed.
CREATE TABLE head (
    series_id INTEGER PRIMARY KEY REFERENCES series (id),
    state     BLOB NOT NULL
);

-- The ingest log: every stored sample since the last checkpoint, one row per
-- append, replayed into the head at start.
CREATE TABLE ingest_log (
    seq     INTEGER PRIMARY KEY,
    samples BLOB NOT NULL
);

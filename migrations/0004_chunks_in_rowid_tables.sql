-- Chunks and rollups move to rowid tables with an index on (series, time).
-- Chunks arrive interleaved across series (every series completes a chunk
-- at about the same round), so a table clustered on (series_id, min_time)
-- splits its pages on nearly every insert and keeps them half empty; rows
-- appended in rowid order fill their pages, and only the small index entries
-- land in the middle of a tree.
CREATE TABLE chunks_v3 (
    id        INTEGER PRIMARY KEY,
    series_id INTEGER NOT NULL REFERENCES series (id),
    min_time  INTEGER NOT NULL,  -- first sample's timestamp, ms since the epoch
    max_time  INTEGER NOT NULL,  -- last sample's timestamp
    samples   INTEGER NOT NULL,
    data      BLOB    NOT NULL
);
INSERT INTO chunks_v3 (series_id, min_time, max_time, samples, data)
    SELECT series_id, min_time, max_time, samples, data FROM chunks ORDER BY min_time;
DROP TABLE chunks;
ALTER TABLE chunks_v3 RENAME TO chunks;
CREATE UNIQUE INDEX chunks_by_series ON chunks (series_id, min_time);

CREATE TABLE rollups_v3 (
    id        INTEGER PRIMARY KEY,
    tier      INTEGER NOT NULL,  -- 1 = minute, 60 = hour
    series_id INTEGER NOT NULL REFERENCES series (id),
    min_time  INTEGER NOT NULL,  -- first bucket's start
    max_time  INTEGER NOT NULL,  -- last bucket's start
    data      BLOB    NOT NULL
);
INSERT INTO rollups_v3 (tier, series_id, min_time, max_time, data)
    SELECT tier, series_id, min_time, max_time, data FROM rollups ORDER BY min_time;
DROP TABLE rollups;
ALTER TABLE rollups_v3 RENAME TO rollups;
CREATE UNIQUE INDEX rollups_by_series ON rollups (tier, series_id, min_time);

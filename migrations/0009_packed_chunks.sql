-- Packed rows (see src/store/packed.rs): a chunks or rollups row with
-- packed = 1 holds values and a reference to the shared column of their
-- timestamps; rows written before (XOR chunks, runs of them, XOR rollup
-- streams) keep packed = 0 and are read as they are until retention deletes
-- them.
ALTER TABLE chunks ADD COLUMN packed INTEGER NOT NULL DEFAULT 0;
ALTER TABLE rollups ADD COLUMN packed INTEGER NOT NULL DEFAULT 0;

-- Timestamp columns (see src/store/timestamps.rs): each distinct sequence of
-- a chunk's instants, once, for every chunk that has exactly those instants.
CREATE TABLE timestamps (
    id       INTEGER PRIMARY KEY,
    tier     INTEGER NOT NULL,  -- 0 = raw chunks, else the rollups' tier
    min_time INTEGER NOT NULL,  -- first instant, ms since the epoch
    max_time INTEGER NOT NULL,  -- last instant
    data     BLOB    NOT NULL   -- see packed::encode_column
);

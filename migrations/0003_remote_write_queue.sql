-- The remote-write queue: every stored batch, in order, until each
-- [[remote_write]] destination has delivered (or given up on) it.
CREATE TABLE remote_write_queue (
    -- AUTOINCREMENT: a seq is never reused, so a position stays meaningful
    -- after the rows before it are deleted.
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    enqueued_ms INTEGER NOT NULL,  -- milliseconds since the Unix epoch
    samples     INTEGER NOT NULL,  -- samples in `request`
    request     BLOB    NOT NULL   -- snappy-compressed prometheus.WriteRequest
);

-- Per destination, the last seq delivered or given up on. Rows at or below
-- every destination's position are deleted.
CREATE TABLE remote_write_position (
    remote TEXT PRIMARY KEY,  -- the [[remote_write]] name
    seq    INTEGER NOT NULL
);

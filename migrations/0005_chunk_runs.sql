-- A chunks row may hold a run of consecutive XOR chunks of its series
-- instead of one (see src/store/mod.rs): `chunk_count` says how many, and
-- `samples` counts them all. A row of one chunk keeps the chunk itself as
-- `data`, so every row written before stays valid as it is.
ALTER TABLE chunks ADD COLUMN chunk_count INTEGER NOT NULL DEFAULT 1;

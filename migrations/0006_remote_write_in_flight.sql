-- Per destination, the last seq of the batch being sent (0: none beyond the
-- position). A restart sends exactly that batch first, alone: a receiver
-- that already took it and now refuses it refuses nothing newer with it.
ALTER TABLE remote_write_position ADD COLUMN in_flight INTEGER NOT NULL DEFAULT 0;

-- PruneEvents deletes events no longer pending whose at is before a
-- cutoff, in seq order, a batch at a time. Without this index each batch
-- reads the whole table when few events are old enough, which is the
-- steady state of a periodic prune; with it, only the old ones. (A large
-- backlog is read in seq order through the primary key instead, stopping
-- at the batch's limit.)
CREATE INDEX events_prunable ON events (at) WHERE state <> 'pending';

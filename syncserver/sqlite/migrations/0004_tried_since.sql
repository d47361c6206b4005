-- When an event's current series of delivery attempts began (Unix
-- milliseconds), which the webhook retry window counts from: set by the
-- claim that finds the event with no failed attempt (never tried, or
-- revived by RetryEvent). NULL until the first claim; a row with failed
-- attempts and no tried_since (written before this column) counts from its
-- at, as it did then.
ALTER TABLE events ADD COLUMN tried_since INTEGER;

-- The comment of sync_log.target_key described an object; the applier stores an array.
COMMENT ON COLUMN sync_log.target_key IS
    'Key values used to find the target row: a JSON array of text values (null for NULL) '
    'in the order of the target key columns. NULL for a table without a key, whose rows are matched by all their columns.';

-- The names of the target key columns, so that undo finds the row by the columns the
-- applier used, also when the target has another primary key.
ALTER TABLE sync_log ADD COLUMN target_key_columns text[];
COMMENT ON COLUMN sync_log.target_key_columns IS
    'Names of the target columns whose values target_key lists, in the same order. NULL for '
    'rows written before this column existed and for tables without a key.';

ALTER TABLE sync_log DROP COLUMN target_key_columns;

COMMENT ON COLUMN sync_log.target_key IS
    'Key values used to find the target row, as a JSON object of column name to text value.';

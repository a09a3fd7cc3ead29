-- old_data and new_data store a value longer than audit.max_value_bytes as its digest.
-- Only the column comments change.
COMMENT ON COLUMN change_events.old_data IS
    'Known old column values as a JSON object: text values as strings, NULL as null, and a '
    'value longer than audit.max_value_bytes as {"sha256": hex, "bytes": n} of its text form. '
    'Held and blocked changes store every value whole. NULL when the source sent no old tuple.';
COMMENT ON COLUMN change_events.new_data IS
    'Known new column values as a JSON object: text values as strings, NULL as null, and a '
    'value longer than audit.max_value_bytes as {"sha256": hex, "bytes": n} of its text form. '
    'Held and blocked changes store every value whole. Unchanged TOAST values are left out.';

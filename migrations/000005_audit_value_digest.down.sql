COMMENT ON COLUMN change_events.old_data IS
    'Known old column values as a JSON object of text values. '
    'NULL when the source sent no old tuple.';
COMMENT ON COLUMN change_events.new_data IS
    'Known new column values as a JSON object of text values. Unchanged TOAST values are left out.';

-- The metadata schema of changesync. Names are unqualified: Migrate runs this file with
-- search_path set to the metadata schema, so every object lands there.

CREATE TYPE change_type AS ENUM ('insert', 'update', 'delete', 'truncate');

CREATE TYPE change_status AS ENUM (
    'detected', 'approved', 'skipped', 'rejected', 'held', 'blocked', 'synced', 'undone', 'failed'
);

CREATE TYPE undo_status AS ENUM ('planned', 'applied', 'conflict', 'failed');

CREATE TABLE change_events (
    id              uuid PRIMARY KEY,
    pipeline        text NOT NULL,
    thread_id       uuid NOT NULL,
    seq             int NOT NULL,
    row_key         text NOT NULL,
    table_name      text NOT NULL,
    target_table    text,
    change_type     change_type NOT NULL,
    old_data        jsonb,
    new_data        jsonb,
    detected_at     timestamptz NOT NULL DEFAULT now(),
    status          change_status NOT NULL,
    validated       boolean NOT NULL GENERATED ALWAYS AS (status NOT IN ('detected')) STORED,
    synced          boolean NOT NULL GENERATED ALWAYS AS (status IN ('synced', 'undone')) STORED,
    undo_token      uuid NOT NULL DEFAULT gen_random_uuid() UNIQUE,
    decision_reason text,
    decided_by      text,
    actor           text,
    source_lsn      bigint NOT NULL,
    xid             bigint NOT NULL,
    commit_time     timestamptz NOT NULL,
    error           text
);

COMMENT ON COLUMN change_events.id IS
    'UUIDv5 of thread_id and seq, so a replay of the same source transaction yields the same id.';
COMMENT ON COLUMN change_events.pipeline IS 'Name of the pipeline that captured the change.';
COMMENT ON COLUMN change_events.thread_id IS
    'Same for every event of one source transaction: UUIDv5 of the slot name and the commit LSN.';
COMMENT ON COLUMN change_events.seq IS 'Position of the event in its source transaction, from 0.';
COMMENT ON COLUMN change_events.row_key IS
    'Key of the source row: the text of the value for a one-column key, otherwise a JSON array '
    'of the key values as text (null for NULL), in key column order.';
COMMENT ON COLUMN change_events.table_name IS 'Source table as schema.table, unquoted.';
COMMENT ON COLUMN change_events.target_table IS
    'Target table as schema.table, unquoted. NULL until the change is mapped to a target.';
COMMENT ON COLUMN change_events.old_data IS
    'Known old column values as a JSON object of text values. '
    'NULL when the source sent no old tuple.';
COMMENT ON COLUMN change_events.new_data IS
    'Known new column values as a JSON object of text values. Unchanged TOAST values are left out.';
COMMENT ON COLUMN change_events.validated IS
    'True once the status has left detected. Generated from status.';
COMMENT ON COLUMN change_events.synced IS
    'True when the status is synced or undone. Generated from status.';
COMMENT ON COLUMN change_events.undo_token IS
    'Opaque token an operator can pass to undo this change.';
COMMENT ON COLUMN change_events.decided_by IS
    'Who gave the decision: a rule name, llm:<model>, guard:bulk, or a user.';
COMMENT ON COLUMN change_events.actor IS
    'User the source application attached to its transaction, if any.';
COMMENT ON COLUMN change_events.source_lsn IS
    'Commit LSN of the source transaction as a byte position in the WAL (pg_lsn cast to bigint).';
COMMENT ON COLUMN change_events.xid IS 'Transaction id of the source transaction.';
COMMENT ON COLUMN change_events.commit_time IS 'Commit time of the source transaction.';
COMMENT ON COLUMN change_events.error IS 'Why applying the change failed, when status is failed.';

CREATE INDEX change_events_row_idx ON change_events (table_name, row_key, detected_at DESC);
CREATE INDEX change_events_thread_idx ON change_events (thread_id);
CREATE INDEX change_events_pending_idx ON change_events (status)
    WHERE status IN ('held', 'blocked');
CREATE INDEX change_events_detected_idx ON change_events (detected_at DESC, id DESC);
CREATE INDEX change_events_source_lsn_idx ON change_events (source_lsn);

CREATE TABLE sync_log (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    change_event_id uuid NOT NULL REFERENCES change_events (id),
    source_table    text NOT NULL,
    target_table    text NOT NULL,
    source_id       text NOT NULL,
    target_key      jsonb,
    diff            jsonb NOT NULL,
    synced_at       timestamptz NOT NULL DEFAULT now(),
    performed_by    text NOT NULL,
    undo_status     text NOT NULL DEFAULT 'none' CHECK (undo_status IN ('none', 'undone')),
    op              change_type NOT NULL
);

COMMENT ON COLUMN sync_log.source_table IS 'Source table as schema.table, unquoted.';
COMMENT ON COLUMN sync_log.target_table IS 'Target table as schema.table, unquoted.';
COMMENT ON COLUMN sync_log.source_id IS
    'Row key of the source row, in the format of change_events.row_key.';
COMMENT ON COLUMN sync_log.target_key IS
    'Key values used to find the target row, as a JSON object of column name to text value.';
COMMENT ON COLUMN sync_log.diff IS
    'Exactly the target columns this write changed: {"column": {"old": value, "new": value}}.';
COMMENT ON COLUMN sync_log.performed_by IS
    'Who caused the write: a decider or the user who approved it.';
COMMENT ON COLUMN sync_log.undo_status IS
    'none, or undone once an undo request restored the old values.';

CREATE INDEX sync_log_change_event_idx ON sync_log (change_event_id);
CREATE INDEX sync_log_target_row_idx ON sync_log (target_table, source_id, synced_at DESC);

CREATE TABLE undo_requests (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    request_id   uuid NOT NULL,
    change_event uuid NOT NULL REFERENCES change_events (id),
    requestor    text NOT NULL,
    reason       text NOT NULL DEFAULT '',
    created_at   timestamptz DEFAULT now(),
    undone_at    timestamptz,
    status       undo_status NOT NULL,
    forced       boolean NOT NULL DEFAULT false,
    conflicts    jsonb
);

COMMENT ON COLUMN undo_requests.request_id IS
    'Groups the rows of the changes one undo request covers.';
COMMENT ON COLUMN undo_requests.requestor IS 'Subject of the token that made the request.';
COMMENT ON COLUMN undo_requests.forced IS
    'True when the request overwrote conflicting target values.';
COMMENT ON COLUMN undo_requests.conflicts IS
    'Target columns changed since the sync: [{"table", "row_key", "column", "expected", "found"}].';

-- A change can be undone once: at most one applied request per change.
CREATE UNIQUE INDEX undo_requests_applied_once_idx ON undo_requests (change_event)
    WHERE status = 'applied';
CREATE INDEX undo_requests_request_idx ON undo_requests (request_id);

CREATE TABLE checkpoints (
    pipeline   text PRIMARY KEY,
    slot       text NOT NULL,
    commit_lsn bigint NOT NULL,
    end_lsn    bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

COMMENT ON COLUMN checkpoints.commit_lsn IS
    'Commit LSN of the last source transaction whose effects are durable in the target, as a '
    'byte position in the WAL. Transactions at or below it are skipped on restart.';
COMMENT ON COLUMN checkpoints.end_lsn IS
    'End LSN of that transaction''s commit record, the position confirmed to the slot.';

CREATE TABLE snapshots (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    pipeline       text,
    source_table   text,
    target_table   text,
    rows_copied    bigint,
    snapshot_name  text,
    consistent_lsn bigint,
    started_at     timestamptz,
    finished_at    timestamptz
);

COMMENT ON TABLE snapshots IS 'One row per table copied by an initial snapshot.';
COMMENT ON COLUMN snapshots.snapshot_name IS 'Name of the snapshot the slot exported for the copy.';
COMMENT ON COLUMN snapshots.consistent_lsn IS
    'Consistent point of the slot as a byte position in the WAL. '
    'The stream starts right after the copy.';

CREATE INDEX snapshots_pipeline_idx ON snapshots (pipeline);

CREATE TABLE outbox (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    event_type      text NOT NULL,
    payload         jsonb NOT NULL,
    created_at      timestamptz DEFAULT now(),
    attempts        int DEFAULT 0,
    next_attempt_at timestamptz DEFAULT now(),
    delivered_at    timestamptz,
    failed_at       timestamptz,
    last_error      text
);

COMMENT ON COLUMN outbox.event_type IS 'Kind of notification, which dispatchers route on.';
COMMENT ON COLUMN outbox.failed_at IS
    'Set when the dispatcher gave up on the row after its last attempt.';

CREATE INDEX outbox_pending_idx ON outbox (next_attempt_at)
    WHERE delivered_at IS NULL AND failed_at IS NULL;

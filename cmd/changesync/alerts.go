package main

import (
	"context"
	"log/slog"

	"github.com/google/uuid"

	"github.com/datasense/changesync/pkg/notify"
	"github.com/datasense/changesync/pkg/pipeline"
	"github.com/datasense/changesync/pkg/validate"
)

// alertSink logs the validation agent's alerts and hands them to the pipeline, which
// writes them to the outbox with the batch that raised them.
type alertSink struct {
	log      *slog.Logger
	pipeline *pipeline.Pipeline // set once the pipeline exists
	name     string
	wants    pipeline.Wants
}

// Alert logs a and queues its notification.
func (s *alertSink) Alert(_ context.Context, a validate.Alert) {
	s.log.Warn("validation alert", "pipeline", s.name, "alert", string(a.Kind), "table", a.Table.String(),
		"thread_id", a.ThreadID.String(), "count", a.Count, "limit", a.Limit, "message", a.Message)
	typ := notify.EventBurst
	if a.Kind == validate.AlertBulk {
		typ = notify.EventBulkGuard
	}
	ev := notify.Event{
		// One alert per kind, transaction and table, so a replayed batch adds no copy.
		ID:   uuid.NewSHA1(a.ThreadID, []byte("alert/"+string(a.Kind)+"/"+a.Table.String())),
		Type: typ, OccurredAt: a.Time, Pipeline: s.name, Table: a.Table.String(),
		ThreadID: a.ThreadID, Message: a.Message,
		Volume: &notify.Volume{Rows: int64(a.Count), Limit: int64(a.Limit)},
	}
	if typ == notify.EventBurst {
		ev.Volume.Window = "1m0s"
	}
	if s.pipeline != nil && s.wants(typ, ev.Table) {
		s.pipeline.Notify(ev)
	}
}

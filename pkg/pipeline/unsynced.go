package pipeline

import (
	"context"
	"log/slog"

	"github.com/google/uuid"

	"github.com/datasense/changesync/pkg/store/dbgen"
)

// unsyncedShown is the number of changes per thread, status and reason that get a log
// line of their own. One more line counts the rest, so that a held bulk transaction of
// 200,000 changes logs a few lines, not 200,000.
const unsyncedShown = 10

// unsyncedLog collects the changes of a committed batch that did not reach the target,
// for the log. It keeps the first unsyncedShown changes of each group and counts the rest.
type unsyncedLog struct {
	shown  []dbgen.InsertChangeEventsParams
	groups map[unsyncedGroup]*unsyncedCount
	order  []unsyncedGroup // groups in the order of their first change
}

// unsyncedGroup is the changes of one thread that share a status and a reason.
type unsyncedGroup struct {
	thread    uuid.UUID
	status    dbgen.ChangeStatus
	reason    string
	decidedBy string
}

// unsyncedCount is the number of changes of a group and the table of its first change.
type unsyncedCount struct {
	changes int
	table   string
}

// add records one change, keeping only what the log needs of it.
func (u *unsyncedLog) add(ev *dbgen.InsertChangeEventsParams) {
	if u.groups == nil {
		u.groups = map[unsyncedGroup]*unsyncedCount{}
	}
	g := unsyncedGroup{
		thread: ev.ThreadID, status: ev.Status, reason: unsyncedReason(ev), decidedBy: ev.DecidedBy.String,
	}
	count := u.groups[g]
	if count == nil {
		count = &unsyncedCount{table: ev.TableName}
		u.groups[g] = count
		u.order = append(u.order, g)
	}
	count.changes++
	if count.changes <= unsyncedShown {
		shown := *ev
		shown.OldData, shown.NewData = nil, nil // large, and not logged
		u.shown = append(u.shown, shown)
	}
}

// merge adds the changes of o, the log of a later part of the same batch.
func (u *unsyncedLog) merge(o *unsyncedLog) {
	for i := range o.shown {
		u.add(&o.shown[i])
	}
	for _, g := range o.order {
		if hidden := o.groups[g].changes - unsyncedShown; hidden > 0 {
			u.groups[g].changes += hidden // the group exists: its shown changes were added
		}
	}
}

// unsyncedReason returns the reason a change is not synced: the target's error of a
// failed change, else the decision's reason.
func unsyncedReason(ev *dbgen.InsertChangeEventsParams) string {
	if ev.Error.Valid {
		return ev.Error.String
	}
	return ev.DecisionReason.String
}

// logUnsynced logs the changes of a committed batch that did not reach the target: one
// line for each of the first changes of a group, and one line with the count of the rest.
// A failed or held change logs at warning level, because the target differs from the
// source until someone acts. A skipped or rejected one logs at info level.
func (p *Pipeline) logUnsynced(ctx context.Context, u *unsyncedLog) {
	for i := range u.shown {
		ev := &u.shown[i]
		p.log.Log(ctx, unsyncedLevel(ev.Status), "change not synced", "pipeline", p.cfg.Name,
			"status", string(ev.Status), "change_id", ev.ID.String(), "table", ev.TableName,
			"row_key", ev.RowKey, "change_type", string(ev.ChangeType), "reason", unsyncedReason(ev),
			"decided_by", ev.DecidedBy.String)
	}
	for _, g := range u.order {
		count := u.groups[g]
		more := count.changes - unsyncedShown
		if more <= 0 {
			continue
		}
		p.log.Log(ctx, unsyncedLevel(g.status), "more changes of the thread not synced for the same reason",
			"pipeline", p.cfg.Name, "thread_id", g.thread.String(), "status", string(g.status),
			"count", more, "total", count.changes, "table", count.table, "reason", g.reason,
			"decided_by", g.decidedBy)
	}
}

func unsyncedLevel(status dbgen.ChangeStatus) slog.Level {
	if status == dbgen.ChangeStatusFailed || status == dbgen.ChangeStatusHeld {
		return slog.LevelWarn
	}
	return slog.LevelInfo
}

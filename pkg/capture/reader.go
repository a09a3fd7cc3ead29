// Package capture reads committed row changes of the configured tables from a PostgreSQL
// logical replication slot with the pgoutput plugin. It manages the publication and the
// slot, decodes the stream into change.Tx values, replies to keepalives, and reports to
// the server as flushed only the positions the pipeline confirmed.
package capture

import (
	"fmt"
	"log/slog"
	"regexp"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/datasense/changesync/pkg/change"
)

// Defaults of the optional Config fields.
const (
	DefaultStatusInterval = 10 * time.Second
	DefaultSlotTimeout    = time.Minute
	DefaultPartEvents     = 500
)

// Config sets up a Reader.
type Config struct {
	// URL is the source database URL. The Reader adds replication=database itself for
	// the replication connection.
	URL         string
	Publication string
	Slot        string
	// Tables are the published tables. Stream drops the events of other tables that the
	// publication may contain; when Tables is empty, it keeps every table.
	Tables []change.TableName
	// StatusInterval is the maximum time between standby status updates. Default 10s.
	StatusInterval time.Duration
	// Heartbeat, when positive, lets the Reader confirm WAL that holds nothing for it at
	// each status update while no transaction waits, and is the idle time after which it
	// writes a heartbeat message to produce traffic. 0 turns both off.
	Heartbeat time.Duration
	// SlotTimeout bounds the wait of slot creation, which waits for every open
	// transaction that has an xid. Default 1m.
	SlotTimeout time.Duration
	// PartEvents is the number of events after which a transaction is sent on in parts
	// before its commit arrives, which bounds the memory a large transaction takes.
	// Default 500, so that the pipeline's queue of 256 holds at most 128,000 events of one
	// transaction; negative sends every transaction whole.
	PartEvents int
	// DisableStreaming keeps pgoutput protocol version 1, under which the server holds a
	// large transaction until it commits. By default a server of version 14 or later
	// sends it while in progress, and the Reader keeps it in a spill file until it ends.
	DisableStreaming bool
	// SpillDir is the directory of the spill files; empty means the system's temporary
	// directory. A spill file is unlinked when created, so nothing remains after a crash.
	SpillDir string
}

// Option sets an optional part of a Reader.
type Option func(*Reader)

// WithLogger sets the logger. Without it, or with nil, the Reader logs nothing.
func WithLogger(l *slog.Logger) Option {
	return func(r *Reader) {
		if l != nil {
			r.log = l
		}
	}
}

// Reader streams committed transactions from one slot. Its methods may be called from
// any goroutine, but only one Stream may run at a time.
type Reader struct {
	cfg        Config
	log        *slog.Logger
	connCfg    *pgx.ConnConfig // normal connection
	replCfg    *pgconn.Config  // replication connection
	tables     map[change.TableName]bool
	confirmed  atomic.Uint64 // highest LSN confirmed durable in the target
	received   atomic.Uint64 // highest WAL position received from the server
	reconnects atomic.Int64  // sessions started again after a lost connection
	connected  atomic.Bool   // a replication session is streaming
	walEnd     atomic.Uint64 // server WAL end from the last keepalive or XLogData

	malformedContext atomic.Int64 // count of malformed context messages
	spill            spillUsage   // spill files of streamed transactions
}

// Stats are positions of the stream for metrics and logs.
type Stats struct {
	Received     change.LSN // last WAL position received from the server
	Confirmed    change.LSN // last position confirmed durable in the target
	ServerWALEnd change.LSN // end of the server's WAL as of the last message
	Reconnects   int64      // reconnects after a lost connection since New
	Connected    bool       // a replication session is streaming now
	// StreamedOpen is the number of transactions streamed while in progress that wait in
	// spill files for their commit or abort, and SpillBytes the bytes in those files.
	StreamedOpen int64
	SpillBytes   int64
}

// slotNamePattern is the rule PostgreSQL applies to replication slot names. The
// replication commands take the name unquoted, so it must be checked before use.
var slotNamePattern = regexp.MustCompile(`^[a-z0-9_]{1,63}$`)

// New checks the configuration and returns a Reader. It does not connect.
func New(cfg Config, opts ...Option) (*Reader, error) {
	if err := checkConfig(cfg); err != nil {
		return nil, err
	}
	if cfg.StatusInterval <= 0 {
		cfg.StatusInterval = DefaultStatusInterval
	}
	if cfg.PartEvents == 0 {
		cfg.PartEvents = DefaultPartEvents
	}
	if cfg.SlotTimeout <= 0 {
		cfg.SlotTimeout = DefaultSlotTimeout
	}

	connCfg, err := pgx.ParseConfig(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("parse source url: %w", err)
	}
	r := &Reader{
		cfg:     cfg,
		log:     slog.New(slog.DiscardHandler),
		connCfg: connCfg,
		replCfg: replicationConfig(&connCfg.Config),
		tables:  make(map[change.TableName]bool, len(cfg.Tables)),
	}
	for _, t := range cfg.Tables {
		r.tables[t] = true
	}
	for _, opt := range opts {
		opt(r)
	}
	return r, nil
}

func checkConfig(cfg Config) error {
	if cfg.URL == "" {
		return fmt.Errorf("source url is empty: set the source database URL")
	}
	if !slotNamePattern.MatchString(cfg.Slot) {
		return fmt.Errorf("invalid slot name %q: use 1 to 63 lowercase letters, digits or underscores",
			cfg.Slot)
	}
	if cfg.Publication == "" || len(cfg.Publication) > 63 {
		return fmt.Errorf("invalid publication name %q: use 1 to 63 bytes", cfg.Publication)
	}
	for _, t := range cfg.Tables {
		if t.Schema == "" || t.Name == "" {
			return fmt.Errorf("invalid table %q: give it as schema.name", t.String())
		}
	}
	return nil
}

// Confirm records that everything up to lsn, a Tx.EndLSN, is durable in the target. The
// next standby status update reports it as flushed and applied. A position below the
// current one is ignored.
func (r *Reader) Confirm(lsn change.LSN) {
	storeMax(&r.confirmed, uint64(lsn))
}

// Stats returns the current positions of the stream.
func (r *Reader) Stats() Stats {
	return Stats{
		Received:     change.LSN(r.received.Load()),
		Reconnects:   r.reconnects.Load(),
		Connected:    r.connected.Load(),
		Confirmed:    change.LSN(r.confirmed.Load()),
		ServerWALEnd: change.LSN(r.walEnd.Load()),
		StreamedOpen: r.spill.files.Load(),
		SpillBytes:   r.spill.bytes.Load(),
	}
}

// storeMax raises v to n unless it is already higher.
func storeMax(v *atomic.Uint64, n uint64) {
	for {
		old := v.Load()
		if n <= old || v.CompareAndSwap(old, n) {
			return
		}
	}
}

// quotedPublication returns the publication name as pgoutput's publication_names option
// takes it: an identifier list inside a string literal.
func (r *Reader) quotedPublication() string {
	return quoteLiteral(pgx.Identifier{r.cfg.Publication}.Sanitize())
}

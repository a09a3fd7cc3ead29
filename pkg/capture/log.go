package capture

// Log field names. Values of LSN fields are in PostgreSQL's text form, such as 16/B374D848.
const (
	logSlot        = "slot"
	logPublication = "publication"
	logTables      = "tables"
	logLSN         = "lsn"
	logXid         = "xid"
	logAttempt     = "attempt"
	logDelay       = "delay"
	logError       = "error"
	logCount       = "count"
)

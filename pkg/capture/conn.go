package capture

import (
	"context"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// sessionSettings pin the text output format of the walsender's output functions. They
// go in the startup packet, which takes precedence over ALTER DATABASE and ALTER ROLE
// settings, so a database default cannot change the text form of tuple values.
var sessionSettings = map[string]string{
	"DateStyle":          "ISO, MDY",
	"TimeZone":           "UTC",
	"IntervalStyle":      "postgres",
	"extra_float_digits": "3",
	"bytea_output":       "hex",
}

// applicationName is reported in pg_stat_activity and pg_stat_replication unless the
// source URL sets application_name.
const applicationName = "changesync"

// replicationConfig derives the replication connection's configuration from the normal
// one: replication=database plus the pinned session settings.
func replicationConfig(base *pgconn.Config) *pgconn.Config {
	c := base.Copy()
	params := map[string]string{"replication": "database"}
	for k, v := range sessionSettings {
		params[k] = v
	}

	for key := range c.RuntimeParams {
		for name := range params {
			if strings.EqualFold(key, name) {
				delete(c.RuntimeParams, key)
			}
		}
	}
	for k, v := range params {
		c.RuntimeParams[k] = v
	}
	if c.RuntimeParams["application_name"] == "" {
		c.RuntimeParams["application_name"] = applicationName
	}
	return c
}

// connectReplication opens a replication connection. It speaks only the simple query
// protocol, which is all a walsender accepts.
func (r *Reader) connectReplication(ctx context.Context) (*pgconn.PgConn, error) {
	conn, err := pgconn.ConnectConfig(ctx, r.replCfg)
	if err != nil {
		return nil, r.classify("open replication connection", err)
	}
	return conn, nil
}

// connect opens a normal connection for catalog queries, publication management and
// heartbeats.
func (r *Reader) connect(ctx context.Context) (*pgx.Conn, error) {
	conn, err := pgx.ConnectConfig(ctx, r.connCfg)
	if err != nil {
		return nil, r.classify("connect to source", err)
	}
	return conn, nil
}

// closeConn closes a connection with a short timeout of its own, because the caller's
// context may already be done.
func closeConn(conn interface{ Close(context.Context) error }) {
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	_ = conn.Close(ctx) // the connection is discarded either way
}

// quoteLiteral quotes s as an SQL string literal with standard_conforming_strings on,
// which is also how the replication command parser reads literals.
func quoteLiteral(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

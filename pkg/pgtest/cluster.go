// Package pgtest starts throwaway PostgreSQL clusters with wal_level=logical for the tests
// and the demo, from the server binaries installed on the machine. PostgreSQL refuses to
// run as root, so when the process runs as root the server runs as the postgres OS user.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvURL names the environment variable that points the harness at an existing server
// instead of starting one. It must be a superuser URL of a server with wal_level=logical.
const EnvURL = "CHANGESYNC_TEST_DATABASE_URL"

// dirPrefix starts the name of every cluster directory, so that a later start can find
// and remove the directories of a test process that was killed.
const dirPrefix = "cspg-"

// serverSettings are the settings every throwaway cluster runs with. fsync is off to make
// commits cheap; synchronous_commit stays on because logical decoding reads only flushed
// WAL, and with it off changes reach the stream late. logical_decoding_work_mem is at its
// minimum, so that every transaction above 64kB is streamed while in progress.
var serverSettings = []string{
	"listen_addresses=",
	"wal_level=logical",
	"fsync=off",
	"full_page_writes=off",
	"max_replication_slots=64",
	"max_wal_senders=64",
	"max_connections=200",
	"wal_sender_timeout=60s",
	"shared_buffers=64MB",
	"logical_decoding_work_mem=64kB",
}

// Cluster is a running PostgreSQL server: one this package started, or an external one.
type Cluster struct {
	// BinDir is the folder of the PostgreSQL binaries (initdb, postgres, pgbench, psql).
	BinDir string

	dir      string // data directory parent and unix socket directory; empty if external
	cmd      *exec.Cmd
	base     *url.URL // superuser URL without a database name
	external bool
}

// BinDir finds the folder of the PostgreSQL server binaries: `pg_config --bindir` when it
// holds initdb, otherwise the folder of the initdb found on the PATH.
func BinDir() (string, error) {
	if out, err := exec.CommandContext(context.Background(), "pg_config", "--bindir").Output(); err == nil {
		dir := strings.TrimSpace(string(out))
		if _, err := os.Stat(filepath.Join(dir, "initdb")); err == nil {
			return dir, nil
		}
	}
	initdb, err := exec.LookPath("initdb")
	if err != nil {
		return "", errors.New("find postgresql server binaries: neither `pg_config --bindir` " +
			"nor the PATH has initdb; install the PostgreSQL server (Debian: apt-get install " +
			"postgresql-15) or set " + EnvURL + " to a server with wal_level=logical")
	}
	return filepath.Dir(initdb), nil
}

// Start returns the server named by CHANGESYNC_TEST_DATABASE_URL, or starts a new
// cluster in a temporary directory. The caller must call Stop.
func Start(ctx context.Context) (*Cluster, error) {
	if raw := os.Getenv(EnvURL); raw != "" {
		return external(raw)
	}
	removeStaleClusters()

	bin, err := BinDir()
	if err != nil {
		return nil, err
	}
	c := &Cluster{BinDir: bin}
	if err := c.init(ctx); err != nil {
		c.Stop()
		return nil, err
	}
	if err := c.start(ctx); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

func external(raw string) (*Cluster, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", EnvURL, err)
	}
	u.Path = ""
	bin, _ := BinDir() // pgbench may still be needed; tests that need it report the error
	return &Cluster{BinDir: bin, base: u, external: true}, nil
}

// init creates the directory and runs initdb in it.
func (c *Cluster) init(ctx context.Context) error {
	dir, err := os.MkdirTemp("", dirPrefix)
	if err != nil {
		return fmt.Errorf("create cluster directory: %w", err)
	}
	c.dir = dir
	owner := strconv.Itoa(os.Getpid())
	if err := os.WriteFile(filepath.Join(dir, "owner.pid"), []byte(owner), 0o600); err != nil {
		return fmt.Errorf("write owner pid: %w", err)
	}
	// The server runs as the postgres user, which must enter the directory.
	if err := os.Chmod(dir, 0o755); err != nil { //nolint:gosec // holds a throwaway test cluster
		return fmt.Errorf("chmod cluster directory: %w", err)
	}
	cred, err := serverCredential()
	if err != nil {
		return err
	}
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return fmt.Errorf("chown cluster directory to the postgres user: %w", err)
		}
	}

	cmd := exec.CommandContext(ctx, filepath.Join(c.BinDir, "initdb"),
		"-D", c.dataDir(), "-U", "postgres", "--auth=trust", "--encoding=UTF8",
		"--locale=C", "--no-sync")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("initdb in %s: %w\n%s", c.dataDir(), err, out)
	}
	return nil
}

// start runs the postmaster and waits until it accepts connections. The server receives
// SIGQUIT when the process that started it dies, so a killed test leaves no server behind.
func (c *Cluster) start(ctx context.Context) error {
	args := []string{"-D", c.dataDir(), "-k", c.dir}
	for _, s := range serverSettings {
		args = append(args, "-c", s)
	}
	cred, err := serverCredential()
	if err != nil {
		return err
	}
	logFile, err := os.Create(filepath.Join(c.dir, "server.log"))
	if err != nil {
		return fmt.Errorf("create server log: %w", err)
	}
	defer logFile.Close()

	// The server outlives ctx, which only bounds the start; Stop ends it.
	c.cmd = exec.CommandContext(context.WithoutCancel(ctx), filepath.Join(c.BinDir, "postgres"), args...)
	c.cmd.Stdout, c.cmd.Stderr = logFile, logFile
	c.cmd.Dir = c.dir
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGQUIT, Setpgid: true}
	if err := c.cmd.Start(); err != nil {
		return fmt.Errorf("start postgres: %w", err)
	}

	c.base = &url.URL{
		Scheme:   "postgres",
		User:     url.User("postgres"),
		Host:     "localhost",
		RawQuery: url.Values{"host": {c.dir}, "sslmode": {"disable"}}.Encode(),
	}
	return c.waitReady(ctx)
}

func (c *Cluster) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		conn, err := pgx.Connect(ctx, c.URL("postgres"))
		if err == nil {
			return conn.Close(ctx)
		}
		if time.Now().After(deadline) {
			logText, _ := os.ReadFile(filepath.Join(c.dir, "server.log"))
			return fmt.Errorf("postgres in %s did not accept connections within 30s: %w\n%s",
				c.dir, err, logText)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (c *Cluster) dataDir() string { return filepath.Join(c.dir, "data") }

// URL returns a superuser connection URL for the named database.
func (c *Cluster) URL(database string) string {
	u := *c.base
	u.Path = "/" + database
	return u.String()
}

// Stop shuts the server down and removes its directory. An external server is left alone.
func (c *Cluster) Stop() {
	if c == nil || c.external {
		return
	}
	if c.cmd != nil && c.cmd.Process != nil {
		_ = c.cmd.Process.Signal(syscall.SIGINT) // fast shutdown
		done := make(chan struct{})
		go func() { _ = c.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = c.cmd.Process.Kill()
			<-done
		}
	}
	if c.dir != "" {
		_ = os.RemoveAll(c.dir)
	}
}

// serverCredential returns the postgres OS user's credential when running as root, and
// nil otherwise (the server then runs as the current user).
func serverCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root, PostgreSQL must run as another user: "+
			"look up the postgres OS user: %w; create it (useradd postgres) or run as non-root", err)
	}
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	gid, _ := strconv.ParseUint(u.Gid, 10, 32)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// removeStaleClusters deletes the directories of clusters whose owning process has died,
// and stops any server still running in them.
func removeStaleClusters() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), dirPrefix+"*"))
	for _, dir := range dirs {
		raw, err := os.ReadFile(filepath.Join(dir, "owner.pid")) //nolint:gosec // dir comes from our own glob
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
		if err != nil || processAlive(pid) {
			continue
		}
		pidFile := filepath.Join(dir, "data", "postmaster.pid")
		if raw, err := os.ReadFile(pidFile); err == nil { //nolint:gosec // dir comes from our own glob
			first, _, _ := strings.Cut(string(raw), "\n")
			if spid, err := strconv.Atoi(strings.TrimSpace(first)); err == nil && processAlive(spid) {
				_ = syscall.Kill(spid, syscall.SIGQUIT)
			}
		}
		_ = os.RemoveAll(dir)
	}
}

func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

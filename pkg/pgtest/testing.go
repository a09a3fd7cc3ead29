package pgtest

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var (
	shared    *Cluster
	errShared error
	startOnce sync.Once
	dbCounter atomic.Int64
)

// Main runs a package's tests against one cluster that is started on first use and
// stopped after the tests, before the process exits. Use it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
func Main(m *testing.M) int {
	code := m.Run()
	if shared != nil {
		shared.Stop()
	}
	return code
}

// Server returns the package's shared cluster, starting it on first use. It fails the
// test when no server can be started.
func Server(t testing.TB) *Cluster {
	t.Helper()
	startOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		shared, errShared = Start(ctx)
	})
	if errShared != nil {
		t.Fatalf("start test postgres: %v", errShared)
	}
	return shared
}

// NewDB creates a fresh database for the test on the shared cluster and returns its
// superuser URL. The database and its replication slots are dropped when the test ends.
func NewDB(t testing.TB) string {
	t.Helper()
	c := Server(t)
	name := DatabaseName(t.Name())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.CreateDatabase(ctx, name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := c.DropDatabase(ctx, name); err != nil {
			t.Errorf("clean up: %v", err)
		}
	})
	return c.URL(name)
}

var unsafeChars = regexp.MustCompile(`[^a-z0-9_]+`)

// DatabaseName turns a test name into a unique database name of at most 63 bytes.
func DatabaseName(testName string) string {
	name := unsafeChars.ReplaceAllString(strings.ToLower(testName), "_")
	suffix := fmt.Sprintf("_%d_%d", os.Getpid()%100000, dbCounter.Add(1))
	if len(name) > 63-len(suffix) {
		name = name[:63-len(suffix)]
	}
	return name + suffix
}

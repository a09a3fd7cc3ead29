package metrics

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestLagIsZeroWhileCaughtUp(t *testing.T) {
	m, err := NewPipeline(prometheus.NewRegistry(), "p")
	if err != nil {
		t.Fatal(err)
	}
	m.Batch(1, time.Millisecond, time.Now().Add(-90*time.Second))
	if got := testutil.ToFloat64(m.lagSeconds); got < 90 || got > 100 {
		t.Errorf("lag = %.1f, want about 90 after a transaction committed 90s ago", got)
	}

	caughtUp := true
	m.SetCaughtUp(func() bool { return caughtUp })
	if got := testutil.ToFloat64(m.lagSeconds); got != 0 {
		t.Errorf("lag while caught up = %.1f, want 0", got)
	}
	caughtUp = false
	if got := testutil.ToFloat64(m.lagSeconds); got < 90 {
		t.Errorf("lag while behind = %.1f, want the last transaction's 90s", got)
	}
}

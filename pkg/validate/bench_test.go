package validate

import (
	"context"
	"testing"

	"github.com/datasense/changesync/pkg/change"
	"github.com/datasense/changesync/pkg/config"
)

// tenRules are ten typical rules. The benchmark's change matches none of them, so every
// rule is evaluated.
func tenRules() []config.Rule {
	rules := typicalRules()
	return append(rules,
		config.Rule{
			Name: "name-not-empty", Table: "crm.customers", Action: "reject",
			When: "op == 'insert' && (!has(new.name) || new.name == null || new.name == '')",
		},
		config.Rule{
			Name: "notes-length", Table: "crm.customers", Action: "hold",
			When: "has(new.notes) && new.notes != null && size(new.notes) > 2000",
		},
		config.Rule{
			Name: "keep-active-customers", Table: "crm.customers", Action: "hold",
			When: "op == 'delete' && old.active == true",
		},
		config.Rule{
			Name: "no-key-change", Action: "hold",
			When: "op == 'update' && 'id' in changed && has(old.id)",
		},
		config.Rule{Name: "skip-migrations", Action: "skip", When: "actor.startsWith('migration-')"},
		config.Rule{Name: "large-order", Table: "crm.orders", Action: "hold", When: "new.customer_id > 1000000"},
	)
}

// BenchmarkTenRules measures Validate on a one-row transaction (the scenario's address
// and zip change) through the bulk guard, the burst detector and ten rules that all run.
func BenchmarkTenRules(b *testing.B) {
	cfg := baseConfig(tenRules()...)
	cfg.Guard.MaxRowsPerTx = 1000
	cfg.Guard.Burst = config.Burst{Factor: 10, Window: config.DefaultBurstWindow, MinChanges: 1000}
	a := newAgent(b, cfg)
	ev := update(alice(), row("2", "Alice", "9 New Street", "54321", "10.50", "likes email", "crm-app", "t"))
	ctx := context.Background()

	tx := newTx(1, ev)
	if got := a.Validate(ctx, tx, &tx.Events[0]); got.DecidedBy != DefaultDecider {
		b.Fatalf("decision = %+v, want no rule to match", got)
	}

	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		// A new transaction each time, because the Agent keeps the last one's decisions.
		tx := &change.Tx{
			Xid: uint32(i + 2), CommitLSN: change.LSN(i+2) << 8, CommitTime: tx.CommitTime,
			Events: []change.Event{ev},
		}
		a.Validate(ctx, tx, &tx.Events[0])
	}
}

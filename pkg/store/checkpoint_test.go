package store

import (
	"math"
	"testing"

	"github.com/datasense/changesync/pkg/change"
	"github.com/datasense/changesync/pkg/pgtest"
)

func TestCheckpointOnlyMovesForward(t *testing.T) {
	ctx := testContext(t)
	s := openStore(t, ctx)

	_, _, found, err := s.Checkpoint(ctx, "crm")
	if err != nil {
		t.Fatalf("Checkpoint before any save: %v", err)
	}
	if found {
		t.Fatal("Checkpoint found a checkpoint before any save")
	}

	steps := []struct {
		name       string
		commit     change.LSN
		end        change.LSN
		wantCommit change.LSN
		wantEnd    change.LSN
	}{
		{"first", 0x100, 0x128, 0x100, 0x128},
		{"forward", 0x200, 0x228, 0x200, 0x228},
		{"backward", 0x150, 0x178, 0x200, 0x228},
		{"same commit", 0x200, 0x300, 0x200, 0x228},
		{"past 4 GiB", 0x1_0000_0000, 0x1_0000_0028, 0x1_0000_0000, 0x1_0000_0028},
	}
	for _, step := range steps {
		if err := SaveCheckpoint(ctx, s.Pool, "crm", "changesync", step.commit, step.end); err != nil {
			t.Fatalf("%s: SaveCheckpoint: %v", step.name, err)
		}
		commit, end, found, err := s.Checkpoint(ctx, "crm")
		if err != nil {
			t.Fatalf("%s: Checkpoint: %v", step.name, err)
		}
		if !found {
			t.Fatalf("%s: Checkpoint found nothing", step.name)
		}
		if commit != step.wantCommit {
			t.Errorf("%s: commit LSN = %s, want %s", step.name, commit, step.wantCommit)
		}
		if end != step.wantEnd {
			t.Errorf("%s: end LSN = %s, want %s", step.name, end, step.wantEnd)
		}
	}

	_, _, found, err = s.Checkpoint(ctx, "erp")
	if err != nil {
		t.Fatalf("Checkpoint of another pipeline: %v", err)
	}
	if found {
		t.Error("Checkpoint of another pipeline found a checkpoint, want none")
	}
}

func TestDeleteCheckpoint(t *testing.T) {
	ctx := testContext(t)
	s := openStore(t, ctx)

	if err := SaveCheckpoint(ctx, s.Pool, "crm", "changesync", 0x200, 0x228); err != nil {
		t.Fatalf("SaveCheckpoint: %v", err)
	}
	deleted, err := s.Queries(s.Pool).DeleteCheckpoint(ctx, "crm")
	if err != nil {
		t.Fatalf("DeleteCheckpoint: %v", err)
	}
	if deleted != 1 {
		t.Errorf("DeleteCheckpoint deleted %d rows, want 1", deleted)
	}
	_, _, found, err := s.Checkpoint(ctx, "crm")
	if err != nil {
		t.Fatalf("Checkpoint: %v", err)
	}
	if found {
		t.Error("checkpoint still found after DeleteCheckpoint")
	}

	// After a delete, an older position can be stored again: that is how a pipeline
	// starts over from a new slot.
	if err := SaveCheckpoint(ctx, s.Pool, "crm", "changesync", 0x100, 0x128); err != nil {
		t.Fatalf("SaveCheckpoint after delete: %v", err)
	}
	commit, _, _, err := s.Checkpoint(ctx, "crm")
	if err != nil {
		t.Fatalf("Checkpoint: %v", err)
	}
	if commit != 0x100 {
		t.Errorf("commit LSN after delete and save = %s, want 0/100", commit)
	}
}

func TestCheckpointStoresSlot(t *testing.T) {
	ctx := testContext(t)
	s := openStore(t, ctx)

	if err := SaveCheckpoint(ctx, s.Pool, "crm", "slot_a", 0x100, 0x128); err != nil {
		t.Fatalf("SaveCheckpoint: %v", err)
	}
	cp, err := s.Queries(s.Pool).GetCheckpoint(ctx, "crm")
	if err != nil {
		t.Fatalf("GetCheckpoint: %v", err)
	}
	if cp.Slot != "slot_a" {
		t.Errorf("slot = %q, want slot_a", cp.Slot)
	}
	if cp.CommitLSN != 0x100 {
		t.Errorf("commit_lsn = %#x, want 0x100", cp.CommitLSN)
	}
	if cp.EndLSN != 0x128 {
		t.Errorf("end_lsn = %#x, want 0x128", cp.EndLSN)
	}
	if cp.UpdatedAt.IsZero() {
		t.Error("updated_at is zero, want the time of the save")
	}
}

func TestLSNToBigint(t *testing.T) {
	tests := []struct {
		name    string
		lsn     change.LSN
		want    int64
		wantErr bool
	}{
		{"zero", 0, 0, false},
		{"typical", 0x16B374D848, 0x16B374D848, false},
		{"largest bigint", math.MaxInt64, math.MaxInt64, false},
		{"past bigint", math.MaxInt64 + 1, 0, true},
		{"largest lsn", math.MaxUint64, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := LSNToBigint(tt.lsn)
			if (err != nil) != tt.wantErr {
				t.Fatalf("LSNToBigint(%s) error = %v, want error %v", tt.lsn, err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("LSNToBigint(%s) = %d, want %d", tt.lsn, got, tt.want)
			}
			if !tt.wantErr && LSNFromBigint(got) != tt.lsn {
				t.Errorf("LSNFromBigint(%d) = %s, want %s", got, LSNFromBigint(got), tt.lsn)
			}
		})
	}
}

func TestForgetCheckpoint(t *testing.T) {
	ctx := testContext(t)

	// A target whose metadata schema was never migrated has no checkpoint to delete.
	bare := pgtest.NewDB(t)
	deleted, err := ForgetCheckpoint(ctx, bare, DefaultSchema, "crm")
	if err != nil || deleted {
		t.Errorf("ForgetCheckpoint on an unmigrated target = %t, %v; want false, nil", deleted, err)
	}
	if _, err := connect(t, ctx, bare).Exec(ctx, "CREATE SCHEMA changesync"); err != nil {
		t.Fatal(err)
	}
	deleted, err = ForgetCheckpoint(ctx, bare, DefaultSchema, "crm")
	if err != nil || deleted {
		t.Errorf("ForgetCheckpoint on an empty schema = %t, %v; want false, nil", deleted, err)
	}

	s := openStore(t, ctx)
	if err := SaveCheckpoint(ctx, s.Pool, "crm", "changesync", 0x200, 0x228); err != nil {
		t.Fatalf("SaveCheckpoint: %v", err)
	}
	url := s.Pool.Config().ConnConfig.ConnString()
	deleted, err = ForgetCheckpoint(ctx, url, DefaultSchema, "crm")
	if err != nil || !deleted {
		t.Errorf("ForgetCheckpoint = %t, %v; want true, nil", deleted, err)
	}
	if _, _, found, err := s.Checkpoint(ctx, "crm"); err != nil || found {
		t.Errorf("checkpoint found = %t (%v) after ForgetCheckpoint, want none", found, err)
	}
}

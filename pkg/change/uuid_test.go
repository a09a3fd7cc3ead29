package change

import (
	"strings"
	"testing"

	"github.com/google/uuid"
)

func TestNameUUIDMatchesNewSHA1(t *testing.T) {
	space := uuid.MustParse("6f1b3c1e-6a0e-4c47-9f6e-2b7c0d5a9e11")
	names := []string{"", "sync_log", "notify/sync", strings.Repeat("x", 48), strings.Repeat("y", 49), strings.Repeat("z", 300)}
	for _, name := range names {
		want := uuid.NewSHA1(space, []byte(name))
		if got := NameUUID(space, []byte(name)); got != want {
			t.Errorf("NameUUID(%s, %q) = %s, want %s", space, name, got, want)
		}
	}
}

func TestNameUUIDShortNameAllocatesNothing(t *testing.T) {
	space := uuid.MustParse("6f1b3c1e-6a0e-4c47-9f6e-2b7c0d5a9e11")
	name := []byte("sync_log")
	if n := testing.AllocsPerRun(100, func() { NameUUID(space, name) }); n != 0 {
		t.Errorf("NameUUID allocates %v times per call, want 0", n)
	}
}

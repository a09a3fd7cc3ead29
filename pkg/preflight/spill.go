package preflight

import (
	"errors"
	"fmt"
	"os"
)

// checkSpillDir checks that changesync can create and remove a file in source.spill_dir,
// where it keeps the transactions that a source streams while they are in progress. An
// unwritable directory, such as a read-only mount, would otherwise fail every reconnect
// at the first large transaction.
func (c *checker) checkSpillDir() {
	const name = "spill directory"
	if !c.cfg.Source.Streaming {
		return
	}
	dir, setting := c.cfg.Source.SpillDir, "source.spill_dir"
	if dir == "" {
		dir, setting = os.TempDir(), "the system's temporary directory (source.spill_dir is not set)"
	}

	file, err := os.CreateTemp(dir, "changesync-check-*")
	if err != nil {
		c.report.fail(name, fmt.Sprintf("cannot create a file in %s, %s: %v", dir, setting, err),
			fmt.Sprintf("make %s writable for this user, or set source.spill_dir to a writable "+
				"directory with room for the source's largest transaction", dir))
		return
	}
	if err := errors.Join(file.Close(), os.Remove(file.Name())); err != nil {
		c.report.fail(name, fmt.Sprintf("created %s but cannot close or remove it: %v", file.Name(), err),
			fmt.Sprintf("remove %s, and make %s writable for this user", file.Name(), dir))
		return
	}
	c.report.pass(name, dir+" is writable")
}

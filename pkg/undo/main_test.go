package undo_test

import (
	"os"
	"testing"

	"github.com/datasense/changesync/pkg/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

package capture

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"syscall"
)

// maxSpilledMessage bounds the length field of a spilled message, so that a damaged
// spill file gives an error instead of a huge allocation. PostgreSQL caps a value at
// 1 GB, and a message contains an old and a new tuple.
const maxSpilledMessage = 3 << 30

// spill contains the pgoutput messages of one transaction that the server streams while it
// is in progress, from its first StreamStart until its StreamCommit or StreamAbort. The
// messages go to a temporary file, so a transaction of any size takes a fixed amount of
// memory. The file is unlinked as soon as it is created: it disappears when closed, and
// also when the process dies.
type spill struct {
	xid      uint32
	file     *os.File
	buf      *bufio.Writer
	messages int
	bytes    int64
	usage    *spillUsage
	// aborted contains the subtransactions rolled back inside the transaction. Their
	// changes are in the file, because the server streamed them before the rollback,
	// and are passed over when the file is read.
	aborted map[uint32]bool
}

// spillUsage counts the open spill files of a Reader and the bytes in them, for metrics.
type spillUsage struct {
	files atomic.Int64
	bytes atomic.Int64
}

// newSpill creates the file of the streamed transaction xid in dir; an empty dir means
// the system's temporary directory. usage counts the file and its bytes until it closes.
func newSpill(dir string, xid uint32, usage *spillUsage) (*spill, error) {
	file, err := os.CreateTemp(dir, "changesync-stream-*")
	if err != nil {
		return nil, fmt.Errorf("create the spill file of streamed transaction %d: %w "+
			"(set source.spill_dir to a writable directory)", xid, err)
	}
	if err := os.Remove(file.Name()); err != nil {
		_ = file.Close()
		return nil, fmt.Errorf("unlink the spill file of streamed transaction %d: %w", xid, err)
	}
	s := &spill{
		xid:     xid,
		file:    file,
		buf:     bufio.NewWriterSize(file, 64<<10),
		usage:   usage,
		aborted: map[uint32]bool{},
	}
	usage.files.Add(1)
	return s, nil
}

// write appends one message.
func (s *spill) write(data []byte) error {
	var length [4]byte
	binary.BigEndian.PutUint32(length[:], uint32(len(data)))
	if _, err := s.buf.Write(length[:]); err != nil {
		return s.writeError(err)
	}
	if _, err := s.buf.Write(data); err != nil {
		return s.writeError(err)
	}
	s.messages++
	s.bytes += int64(len(data)) + 4
	s.usage.bytes.Add(int64(len(data)) + 4)
	return nil
}

func (s *spill) writeError(err error) error {
	hint := ""
	if errors.Is(err, syscall.ENOSPC) {
		hint = ": free space in source.spill_dir, or set it to a directory with room for the " +
			"source's largest transaction; changesync retries from the transaction's start"
	}
	return fmt.Errorf("write the spill file of streamed transaction %d after %d bytes: %w%s",
		s.xid, s.bytes, err, hint)
}

// each calls fn with every message in the order written. The slice passed to fn is fresh
// for each message, so fn may keep it.
func (s *spill) each(fn func(data []byte) error) error {
	if err := s.buf.Flush(); err != nil {
		return s.writeError(err)
	}
	if _, err := s.file.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("rewind the spill file of streamed transaction %d: %w", s.xid, err)
	}
	in := bufio.NewReaderSize(s.file, 64<<10)
	var length [4]byte
	for n := range s.messages {
		if _, err := io.ReadFull(in, length[:]); err != nil {
			return s.readError(n, err)
		}
		size := binary.BigEndian.Uint32(length[:])
		if size == 0 || size > maxSpilledMessage {
			return s.readError(n, fmt.Errorf("invalid message length %d", size))
		}
		data := make([]byte, size)
		if _, err := io.ReadFull(in, data); err != nil {
			return s.readError(n, err)
		}
		if err := fn(data); err != nil {
			return err
		}
	}
	return nil
}

func (s *spill) readError(n int, err error) error {
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("read message %d of %d from the spill file of streamed transaction %d: %w",
		n+1, s.messages, s.xid, err)
}

// close closes the file, which frees its disk space.
func (s *spill) close() {
	_ = s.file.Close()
	s.usage.files.Add(-1)
	s.usage.bytes.Add(-s.bytes)
}

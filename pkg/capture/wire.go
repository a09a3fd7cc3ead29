package capture

import (
	"errors"
	"fmt"

	"github.com/jackc/pglogrepl"
)

// errTruncated is returned for a pgoutput message shorter than its length fields require.
var errTruncated = errors.New("message ends early")

// reader walks the bytes of one pgoutput message.
type reader struct{ buf []byte }

func (r *reader) skip(n uint64) error {
	if n > uint64(len(r.buf)) {
		return errTruncated
	}
	r.buf = r.buf[n:]
	return nil
}

func (r *reader) byte() (byte, error) {
	if len(r.buf) < 1 {
		return 0, errTruncated
	}
	b := r.buf[0]
	r.buf = r.buf[1:]
	return b, nil
}

func (r *reader) uint16() (uint16, error) {
	if len(r.buf) < 2 {
		return 0, errTruncated
	}
	v := uint16(r.buf[0])<<8 | uint16(r.buf[1])
	r.buf = r.buf[2:]
	return v, nil
}

func (r *reader) uint32() (uint32, error) {
	if len(r.buf) < 4 {
		return 0, errTruncated
	}
	v := uint32(r.buf[0])<<24 | uint32(r.buf[1])<<16 | uint32(r.buf[2])<<8 | uint32(r.buf[3])
	r.buf = r.buf[4:]
	return v, nil
}

// checkLengths checks the length fields of tuple data and of a Truncate's relation list,
// because pglogrepl allocates the size a length field gives before it reads the bytes. A
// corrupt length then gives an error, not a huge allocation. Inside a streamed
// transaction, each of these messages starts with the xid of its (sub)transaction.
func checkLengths(data []byte, inStream bool) error {
	r := &reader{buf: data[1:]}
	typ := pglogrepl.MessageType(data[0])
	if inStream && isRowOrTruncate(typ) {
		if err := r.skip(4); err != nil {
			return fmt.Errorf("%s message: %w", typ, err)
		}
	}
	var err error
	switch typ {
	case pglogrepl.MessageTypeInsert:
		err = r.checkRowMessage(false)
	case pglogrepl.MessageTypeUpdate:
		err = r.checkRowMessage(true)
	case pglogrepl.MessageTypeDelete:
		err = r.checkRowMessage(false)
	case pglogrepl.MessageTypeTruncate:
		err = r.checkTruncate()
	}
	if err != nil {
		return fmt.Errorf("%s message: %w", pglogrepl.MessageType(data[0]), err)
	}
	return nil
}

func isRowOrTruncate(typ pglogrepl.MessageType) bool {
	switch typ {
	case pglogrepl.MessageTypeInsert, pglogrepl.MessageTypeUpdate,
		pglogrepl.MessageTypeDelete, pglogrepl.MessageTypeTruncate:
		return true
	}
	return false
}

// checkRowMessage checks an Insert, Update or Delete: a relation OID, then one tuple
// after a 'K', 'O' or 'N' marker, and for an Update with an old tuple a second, new one.
func (r *reader) checkRowMessage(update bool) error {
	if err := r.skip(4); err != nil {
		return err
	}
	marker, err := r.byte()
	if err != nil {
		return err
	}
	if err := r.checkTuple(); err != nil {
		return err
	}
	if !update || marker == pglogrepl.UpdateMessageTupleTypeNew {
		return nil
	}
	if err := r.skip(1); err != nil {
		return err
	}
	return r.checkTuple()
}

// checkTuple checks one TupleData: a column count, then per column a kind byte and, for
// text and binary values, a length and that many bytes.
func (r *reader) checkTuple() error {
	n, err := r.uint16()
	if err != nil {
		return err
	}
	for range n {
		kind, err := r.byte()
		if err != nil {
			return err
		}
		if kind != pglogrepl.TupleDataTypeText && kind != pglogrepl.TupleDataTypeBinary {
			continue
		}
		length, err := r.uint32()
		if err != nil {
			return err
		}
		if err := r.skip(uint64(length)); err != nil {
			return err
		}
	}
	return nil
}

// checkTruncate checks a relation count, an options byte and that many relation OIDs.
func (r *reader) checkTruncate() error {
	n, err := r.uint32()
	if err != nil {
		return err
	}
	if err := r.skip(1); err != nil {
		return err
	}
	return r.skip(4 * uint64(n))
}

// parseMessage decodes one pgoutput message with pglogrepl. pglogrepl indexes the input
// without bounds checks, so a message shorter than its fields require panics inside it.
// parseMessage turns that panic into an error, and runs checkLengths first for the
// messages that would allocate from a corrupt length. inStream is set for a message of a
// transaction streamed while in progress, whose messages carry an xid.
func parseMessage(data []byte, inStream bool) (msg pglogrepl.Message, err error) {
	if len(data) == 0 {
		return nil, errors.New("decode pgoutput message: empty message")
	}
	if err := checkLengths(data, inStream); err != nil {
		return nil, fmt.Errorf("decode pgoutput message: %w", err)
	}

	defer func() {
		if p := recover(); p != nil {
			msg, err = nil, fmt.Errorf("decode pgoutput %s message: malformed: %v",
				pglogrepl.MessageType(data[0]), p)
		}
	}()
	msg, err = pglogrepl.ParseV2(data, inStream)
	if err != nil {
		return nil, fmt.Errorf("decode pgoutput %s message: %w", pglogrepl.MessageType(data[0]), err)
	}
	return msg, nil
}

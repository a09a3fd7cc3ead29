package api

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
)

func FuzzListParams(f *testing.F) {
	f.Add("table=public.customers&row_key=1&limit=10")
	f.Add("status=held&change_type=update&since=2024-05-01T00:00:00Z&until=2024-05-02T00:00:00Z")
	f.Add("cursor=" + encodeCursor(pagePosition{DetectedAt: time.Now(), SourceLSN: 1, ID: uuid.New()}) +
		"&thread_id=" + uuid.NewString())
	f.Add("limit=-1&status=%00")
	e := echo.New()
	f.Fuzz(func(t *testing.T, query string) {
		req := httptest.NewRequest(http.MethodGet, "/change-events/", nil)
		req.URL.RawQuery = query
		p, err := listParams(e.NewContext(req, httptest.NewRecorder()))
		if err != nil {
			var apiErr *Error
			if !errors.As(err, &apiErr) || apiErr.Status != http.StatusBadRequest || apiErr.Message == "" {
				t.Fatalf("listParams(%q) error = %v, want a 400 Error with a message", query, err)
			}
			return
		}
		if p.PageSize < 1 || p.PageSize > maxLimit {
			t.Errorf("listParams(%q) page size = %d, want 1 to %d", query, p.PageSize, maxLimit)
		}
		if p.Status.Valid && !p.Status.ChangeStatus.Valid() {
			t.Errorf("listParams(%q) accepted status %q", query, p.Status.ChangeStatus)
		}
	})
}

func FuzzDecodeBody(f *testing.F) {
	f.Add(`{"change_id": "0190a8e2-7c1d-7b3e-9f00-4a5b6c7d8e9f", "reason": "r", "dry_run": true}`)
	f.Add(`{"since": "2024-05-01T00:00:00Z", "tables": ["a.b"], "force": true}`)
	f.Add(`{"table": 1}`)
	f.Add(`[]`)
	f.Add(`{"reason": "a"} x`)
	e := echo.New()
	f.Fuzz(func(t *testing.T, body string) {
		req := httptest.NewRequest(http.MethodPost, "/undo-request/", strings.NewReader(body))
		req.Header.Set(echo.HeaderContentType, echo.MIMEApplicationJSON)
		var v UndoRequest
		err := decodeBody(e.NewContext(req, httptest.NewRecorder()), &v)
		if err == nil {
			return
		}
		var apiErr *Error
		if !errors.As(err, &apiErr) || apiErr.Status != http.StatusBadRequest || apiErr.Message == "" {
			t.Fatalf("decodeBody(%q) error = %v, want a 400 Error with a message", body, err)
		}
	})
}

func FuzzCursor(f *testing.F) {
	f.Add(int64(1714564800123456789), int64(23456789), int32(3), "0190a8e2-7c1d-7b3e-9f00-4a5b6c7d8e9f")
	f.Fuzz(func(t *testing.T, nanos, lsn int64, seq int32, id string) {
		u, err := uuid.Parse(id)
		if err != nil {
			return
		}
		want := pagePosition{DetectedAt: time.Unix(0, nanos).UTC(), SourceLSN: lsn, Seq: seq, ID: u}
		got, ok := decodeCursor(encodeCursor(want))
		if !ok || !got.DetectedAt.Equal(want.DetectedAt) || got.SourceLSN != lsn || got.Seq != seq || got.ID != u {
			t.Errorf("cursor of %+v decodes to %+v, %v", want, got, ok)
		}
	})
}

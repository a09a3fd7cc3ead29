package api_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/datasense/changesync/pkg/api"
	"github.com/datasense/changesync/pkg/config"
	"github.com/datasense/changesync/pkg/store"
)

func TestNewChecksListenAddress(t *testing.T) {
	t.Setenv(secretEnv, secret)
	t.Setenv("CHANGESYNC_API_TEST_EMPTY", "")
	st := &store.Store{} // New does not use the store
	tests := []struct {
		name    string
		listen  string
		auth    config.APIAuth
		wantErr string
	}{
		{"loopback v4", "127.0.0.1:8080", config.APIAuth{}, ""},
		{"loopback v6", "[::1]:8080", config.APIAuth{}, ""},
		{"localhost", "localhost:8080", config.APIAuth{}, ""},
		{"all interfaces", ":8080", config.APIAuth{}, "jwt_secret_env"},
		{"public address", "0.0.0.0:8080", config.APIAuth{}, "not loopback"},
		{"host name", "changesync:8080", config.APIAuth{}, "not loopback"},
		{"no port", "127.0.0.1", config.APIAuth{}, "host:port"},
		{"public with auth", "0.0.0.0:8080", config.APIAuth{JWTSecretEnv: secretEnv}, ""},
		{"secret unset", "127.0.0.1:8080", config.APIAuth{JWTSecretEnv: "CHANGESYNC_API_TEST_UNSET"}, "unset"},
		{"secret empty", "127.0.0.1:8080", config.APIAuth{JWTSecretEnv: "CHANGESYNC_API_TEST_EMPTY"}, "empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := &config.Config{API: config.API{Listen: tt.listen, Auth: tt.auth}}
			srv, err := api.New(api.Config{Cfg: cfg, Store: st})
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				srv.Close()
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("New error = %v, want one mentioning %q", err, tt.wantErr)
			}
		})
	}
}

func TestServeAndShutdown(t *testing.T) {
	t.Setenv(secretEnv, secret)
	st := newEnv(t).st
	reg := prometheus.NewRegistry()
	counter := prometheus.NewCounter(prometheus.CounterOpts{Name: "changesync_api_test_total", Help: "Test."})
	reg.MustRegister(counter)
	counter.Inc()

	srv, err := api.New(api.Config{Cfg: &config.Config{}, Store: st, Gatherer: reg})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := (&net.ListenConfig{}).Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()

	base := "http://" + ln.Addr().String()
	body := httpGet(t, base+"/metrics")
	if !strings.Contains(body, "changesync_api_test_total 1") {
		t.Errorf("/metrics does not serve the gatherer's metrics:\n%s", body)
	}
	if body := httpGet(t, base+"/healthz"); !strings.Contains(body, "ok") {
		t.Errorf("/healthz = %s", body)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve after cancel = %v, want nil", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Serve did not return after its context ended")
	}
}

func TestRunReportsListenError(t *testing.T) {
	ln, err := (&net.ListenConfig{}).Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ln.Close() }()
	cfg := &config.Config{API: config.API{Listen: ln.Addr().String()}}
	srv, err := api.New(api.Config{Cfg: cfg, Store: &store.Store{}})
	if err != nil {
		t.Fatal(err)
	}
	err = srv.Run(t.Context())
	if err == nil || !strings.Contains(err.Error(), "listen on "+ln.Addr().String()) {
		t.Errorf("Run on a used port = %v, want a listen error naming the address", err)
	}
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = res.Body.Close() }()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK {
		t.Errorf("GET %s = %d: %s", url, res.StatusCode, raw)
	}
	return string(raw)
}

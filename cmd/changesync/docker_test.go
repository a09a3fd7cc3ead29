package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"

	"github.com/datasense/changesync/pkg/config"
	"github.com/datasense/changesync/pkg/metrics"
)

// dockerDir is the repository's docker folder, seen from this package.
const dockerDir = "../../docker"

type composeFile struct {
	Services map[string]struct {
		Image   string   `yaml:"image"`
		Command []string `yaml:"command"`
		Build   *struct{ Context, Dockerfile string }
		Env     map[string]string `yaml:"environment"`
		Volumes []string          `yaml:"volumes"`
	} `yaml:"services"`
}

// No Docker engine runs where the tests run, so this test checks the files instead:
// every service and mounted file exists, the sidecar's configuration loads with the
// compose environment, and the dashboard queries only metrics that changesync registers.
func TestDockerFilesAreConsistent(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(dockerDir, "compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var compose composeFile
	if err := yaml.Unmarshal(raw, &compose); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	for _, name := range []string{"source", "target", "changesync", "prometheus", "grafana"} {
		if _, ok := compose.Services[name]; !ok {
			t.Errorf("compose.yaml has no service %s", name)
		}
	}
	if !strings.Contains(strings.Join(compose.Services["source"].Command, " "), "wal_level=logical") {
		t.Error("the source service does not run with wal_level=logical")
	}
	for name, svc := range compose.Services {
		for _, v := range svc.Volumes {
			host := strings.SplitN(v, ":", 2)[0]
			if _, err := os.Stat(filepath.Join(dockerDir, host)); err != nil {
				t.Errorf("service %s mounts %s: %v", name, host, err)
			}
		}
	}
	sidecar := compose.Services["changesync"]
	if sidecar.Build == nil {
		t.Fatal("the changesync service has no build section")
	}
	dockerfile, err := os.ReadFile(filepath.Join(dockerDir, sidecar.Build.Context, sidecar.Build.Dockerfile))
	if err != nil {
		t.Fatalf("the changesync service builds from a missing Dockerfile: %v", err)
	}
	checkDockerfile(t, string(dockerfile))

	cfgRaw, err := os.ReadFile(filepath.Join(dockerDir, "changesync.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse(cfgRaw, func(name string) (string, bool) {
		v, ok := sidecar.Env[name]
		return v, ok
	})
	if err != nil {
		t.Fatalf("docker/changesync.yaml does not load with the compose environment: %v", err)
	}
	port := cfg.API.Listen[strings.LastIndex(cfg.API.Listen, ":")+1:]
	prom, err := os.ReadFile(filepath.Join(dockerDir, "prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(prom), "changesync:"+port) {
		t.Errorf("prometheus.yml does not scrape changesync:%s, the API port", port)
	}
	checkDashboard(t)
}

func checkDockerfile(t *testing.T, dockerfile string) {
	t.Helper()
	if n := strings.Count(dockerfile, "\nFROM "); n < 2 {
		t.Errorf("the Dockerfile has %d FROM lines, want a build stage and a runtime stage", n)
	}
	user := regexp.MustCompile(`(?m)^USER (\S+)`).FindStringSubmatch(dockerfile)
	if user == nil || user[1] == "root" || user[1] == "0" {
		t.Error("the Dockerfile's runtime stage does not switch to a user other than root")
	}
	if !strings.Contains(dockerfile, "./cmd/changesync") {
		t.Error("the Dockerfile does not build ./cmd/changesync")
	}
}

// checkDashboard checks that every metric in the dashboard's queries is one that
// changesync registers.
func checkDashboard(t *testing.T) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dockerDir, "grafana/dashboards/changesync.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dashboard struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(raw, &dashboard); err != nil {
		t.Fatalf("dashboard: %v", err)
	}
	known := map[string]bool{}
	reg := prometheus.NewRegistry()
	m, err := metrics.NewPipeline(reg, "p")
	if err != nil {
		t.Fatal(err)
	}
	m.Change("t", "synced", 0) // a vector shows in Gather once it has a series
	descs := make(chan *prometheus.Desc, 64)
	metrics.NewCollector("p", "s", nil, nil, nil, nil).Describe(descs)
	close(descs)
	name := regexp.MustCompile(`fqName: "([a-z_]+)"`)
	for d := range descs {
		if m := name.FindStringSubmatch(d.String()); m != nil {
			known[m[1]] = true
		}
	}
	families, _ := reg.Gather()
	for _, f := range families {
		known[f.GetName()] = true
	}
	notifySource, err := os.ReadFile("../../pkg/notify/metrics.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`"(changesync_notify_[a-z_]+)"`).FindAllStringSubmatch(string(notifySource), -1) {
		known[m[1]] = true
	}
	used := regexp.MustCompile(`changesync_[a-z_]+`)
	for _, p := range dashboard.Panels {
		for _, target := range p.Targets {
			for _, m := range used.FindAllString(target.Expr, -1) {
				base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(m, "_bucket"), "_sum"), "_count")
				if !known[base] {
					t.Errorf("panel %q queries %s, which changesync does not register", p.Title, m)
				}
			}
		}
	}
}

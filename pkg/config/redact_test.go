package config

import (
	"strings"
	"testing"
)

func TestRedactURL(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  string
	}{
		{"no password", "postgres://crm@db:5432/crm", "postgres://crm@db:5432/crm"},
		{"user password", "postgres://crm:s3cret@db:5432/crm", "postgres://crm:xxxxx@db:5432/crm"},
		{
			"query password", "postgres://crm@db/crm?password=s3cret&sslmode=disable",
			"postgres://crm@db/crm?password=xxxxx&sslmode=disable",
		},
		{"sslpassword", "postgresql://db/crm?sslpassword=s3cret", "postgresql://db/crm?sslpassword=xxxxx"},
		{"keywords", "host=db password=s3cret dbname=crm", "host=db password=xxxxx dbname=crm"},
		{"quoted keyword", "host=db password='s3 cret' dbname=crm", "host=db password=xxxxx dbname=crm"},
		{"spaces around =", "host=db password = s3cret", "host=db password = xxxxx"},
		{"unparsable URL", "postgres://crm:s3cret@db:port/crm%zz", "postgres://(unparsable URL not shown)"},
		{"empty", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := RedactURL(tt.input); got != tt.want {
				t.Errorf("RedactURL(%q) = %q, want %q", tt.input, got, tt.want)
			}
		})
	}
}

// TestErrorsHideSourcePassword checks that no message about a bad connection string
// shows its password, however the string is broken.
func TestErrorsHideSourcePassword(t *testing.T) {
	const secret = "Sup3rS3cret"
	for _, url := range []string{
		"postgres://crm:" + secret + "@db:port/crm",
		"postgres://crm:" + secret + "@db/crm?sslmode=sometimes",
		"postgres://crm:" + secret + "@db/crm%zz",
		"postgres://crm:" + secret + "@[::1/crm",
		"postgres://crm@db/crm?password=" + secret + "&sslmode=sometimes",
		"host=db password=" + secret + " sslmode=sometimes",
		"host=db password='" + secret + "' sslmode=sometimes",
		"host=db password='" + secret,
		"postgres://crm:" + secret + "@db/crm?connect_timeout=x",
	} {
		_, err := Parse([]byte("source: {url: \""+url+"\"}\ntarget: {url: 'postgres://b@db/b'}\n"+
			"tables: [{source: a}]\n"), noEnv)
		if err == nil {
			t.Errorf("Parse accepted %q", url)
			continue
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error for %q shows the password: %v", url, err)
		}
	}
}

func TestStringHidesSecrets(t *testing.T) {
	input := `
source: {url: "postgres://crm:s3cret@db/crm"}
target: {url: "host=db password=t0psecret dbname=billing"}
tables: [{source: crm.customers, target: '"Billing".customers', exclude: [password_hash]}]
notify: {slack: {webhook_url: "https://hooks.example/T0K3N"}, email: {password: m4il}}
`
	cfg, err := Parse([]byte(input), noEnv)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}

	out := cfg.String()
	for _, secret := range []string{"s3cret", "t0psecret", "T0K3N", "m4il"} {
		if strings.Contains(out, secret) {
			t.Errorf("String() shows %q:\n%s", secret, out)
		}
	}
	for _, want := range []string{
		"postgres://crm:xxxxx@db/crm", "slack: (hidden)",
		`target: '"Billing".customers'`, "password_hash",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("String() lacks %q:\n%s", want, out)
		}
	}
	if cfg.Source.URL != "postgres://crm:s3cret@db/crm" {
		t.Errorf("String() changed the configuration: source url = %q", cfg.Source.URL)
	}
}

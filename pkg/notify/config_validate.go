package notify

import (
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"net"
	"net/mail"
	"net/url"
	"os"
	"path"
	"regexp"
	"strings"
	"time"

	"github.com/datasense/changesync/pkg/config"
)

var (
	envNamePattern         = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	destinationNamePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,62}$`)
)

// webhookSecretPrefix marks a Standard Webhooks secret whose rest is base64.
const webhookSecretPrefix = "whsec_"

// maxTimeout caps the timeout of one send, so that a delivery row is not locked for long.
const maxTimeout = 5 * time.Minute

// resolveEnv reads the secrets and URLs of every destination from the environment
// variables the file names. Nothing is read from the environment later.
func (c *Config) resolveEnv(p *problems, lookupEnv config.LookupEnv) {
	for i := range c.Slack {
		s := &c.Slack[i]
		field := p.destinationPath("slack", i)
		s.WebhookURL = resolveSecret(p, lookupEnv, field+".webhook_url_env", s.WebhookURLEnv, "the incoming webhook URL")
		s.Token = resolveSecret(p, lookupEnv, field+".token_env", s.TokenEnv, "the bot token (xoxb-...)")
	}
	for i := range c.Email {
		e := &c.Email[i]
		field := p.destinationPath("email", i)
		e.Password = resolveSecret(p, lookupEnv, field+".password_env", e.PasswordEnv, "the SMTP password")
	}
	for i := range c.Webhooks {
		w := &c.Webhooks[i]
		field := p.destinationPath("webhooks", i)
		w.ResolvedURL = Secret(w.URL)
		if w.URLEnv != "" {
			w.ResolvedURL = resolveSecret(p, lookupEnv, field+".url_env", w.URLEnv, "the receiver's URL")
		}
		w.Secret = resolveSecret(p, lookupEnv, field+".secret_env", w.SecretEnv, "the signing secret")
	}
}

// resolveSecret returns the value of the environment variable name, reporting a name
// that is invalid or not set. An empty name returns an empty secret.
func resolveSecret(p *problems, lookupEnv config.LookupEnv, field, name, what string) Secret {
	if name == "" {
		return ""
	}
	if !envNamePattern.MatchString(name) {
		p.add(field, "invalid environment variable name %q: use letters, digits and _", name)
		return ""
	}
	v, ok := lookupEnv(name)
	if !ok || v == "" {
		p.add(field, "environment variable %s is not set: set it to %s", name, what)
		return ""
	}
	return Secret(v)
}

func (c *Config) validate(p *problems) {
	c.validateDispatch(p)

	seen := map[string]string{}
	for i := range c.Slack {
		field := p.destinationPath("slack", i)
		c.Slack[i].validateDestination(p, field, seen)
		c.Slack[i].validate(p, field)
	}
	for i := range c.Email {
		field := p.destinationPath("email", i)
		c.Email[i].validateDestination(p, field, seen)
		c.Email[i].validate(p, field)
	}
	for i := range c.Webhooks {
		field := p.destinationPath("webhooks", i)
		c.Webhooks[i].validateDestination(p, field, seen)
		c.Webhooks[i].validate(p, field)
	}
}

func (c *Config) validateDispatch(p *problems) {
	if c.PollInterval < 10*time.Millisecond {
		p.add("notify.poll_interval", "invalid value %s: use 10ms or more, such as 1s", c.PollInterval)
	}
	if c.BatchSize < 1 || c.BatchSize > 10000 {
		p.add("notify.batch_size", "invalid value %d: use 1 to 10000", c.BatchSize)
	}

	r := c.Retry
	if r.MaxAttempts < 1 || r.MaxAttempts > 100 {
		p.add("notify.retry.max_attempts", "invalid value %d: use 1 to 100", r.MaxAttempts)
	}
	if r.InitialInterval <= 0 {
		p.add("notify.retry.initial_interval", "invalid value %s: use a positive duration such as 1s",
			r.InitialInterval)
	}
	if r.MaxInterval < r.InitialInterval {
		p.add("notify.retry.max_interval", "invalid value %s: use at least initial_interval (%s)",
			r.MaxInterval, r.InitialInterval)
	}
	if r.Multiplier < 1 {
		p.add("notify.retry.multiplier", "invalid value %g: use 1 or more, such as 2", r.Multiplier)
	}
	if r.Jitter < 0 || r.Jitter >= 1 {
		p.add("notify.retry.jitter", "invalid value %g: use 0 (no jitter) up to but not including 1",
			r.Jitter)
	}
}

// validateDestination checks the settings every destination has. seen maps the names
// used so far to their fields, to report duplicates.
func (d *Destination) validateDestination(p *problems, field string, seen map[string]string) {
	switch {
	case d.Name == "":
		p.add(field+".name", "missing: name each destination when a kind has more than one, such as ops-alerts")
	case !destinationNamePattern.MatchString(d.Name):
		p.add(field+".name", "invalid name %q: use up to 63 lower-case letters, digits, _, . and -", d.Name)
	case seen[d.Name] != "":
		p.add(field+".name", "duplicate name %q, also used by %s: give each destination its own name",
			d.Name, seen[d.Name])
	default:
		seen[d.Name] = field
	}

	d.validateEvents(p, field+".events")
	for i, pattern := range d.Tables {
		if _, err := path.Match(pattern, ""); err != nil || pattern == "" {
			p.add(fmt.Sprintf("%s.tables[%d]", field, i), "invalid table pattern %q: use schema.table, "+
				"where * matches any run of characters, such as crm.*", pattern)
		}
	}

	if d.Timeout <= 0 || d.Timeout > maxTimeout {
		p.add(field+".timeout", "invalid value %s: use more than 0 and at most %s", d.Timeout, maxTimeout)
	}
	if d.Digest != nil {
		d.Digest.validate(p, field+".digest")
	}
}

func (d *Destination) validateEvents(p *problems, field string) {
	if len(d.Events) == 0 {
		p.add(field, "missing: list the event types to send, such as [hold, reject, undo], or [\"*\"] for all")
	}
	for i, t := range d.Events {
		if t != "*" && !t.Valid() {
			p.add(fmt.Sprintf("%s[%d]", field, i), "unknown event type %q: use %s, or * for all",
				t, eventTypeList())
		}
	}
}

func (d *DigestConfig) validate(p *problems, field string) {
	if d.Interval < minDigestInterval {
		p.add(field+".interval", "invalid value %s: use %s or more, such as 10m", d.Interval, minDigestInterval)
	}
	if d.Sample < 1 || d.Sample > maxDigestSample {
		p.add(field+".sample", "invalid value %d: use 1 to %d", d.Sample, maxDigestSample)
	}
}

func (s *Slack) validate(p *problems, field string) {
	switch {
	case s.WebhookURLEnv == "" && s.TokenEnv == "":
		p.add(field, "no way to post: set webhook_url_env, or token_env and channel")
	case s.WebhookURLEnv != "" && s.TokenEnv != "":
		p.add(field, "both webhook_url_env and token_env are set: use one of them")
	case s.TokenEnv != "" && s.Channel == "":
		p.add(field+".channel", "missing: a bot token posts to a channel, such as #changesync or C0123456789")
	case s.WebhookURLEnv != "" && s.Channel != "":
		p.add(field+".channel", "set with webhook_url_env, which always posts to its own channel: remove it")
	}

	if s.WebhookURL != "" {
		checkURL(p, field+".webhook_url_env", s.WebhookURL.Value(), true)
	}
	if s.TokenEnv != "" {
		checkURL(p, field+".api_url", s.APIURL, false)
	}
}

func (e *Email) validate(p *problems, field string) {
	if e.Host == "" {
		p.add(field+".host", "missing: set the SMTP server's host name")
	}
	if e.Port < 1 || e.Port > 65535 {
		p.add(field+".port", "invalid port %d: use 1 to 65535", e.Port)
	}
	switch e.TLS {
	case TLSStartTLS, TLSImplicit, TLSNone:
	default:
		p.add(field+".tls", "invalid value %q: use starttls, tls or none", e.TLS)
	}
	if e.CAFile != "" {
		checkCAFile(p, field+".ca_file", e.CAFile)
	}

	e.validateAuth(p, field)
	if _, err := mail.ParseAddress(e.From); err != nil {
		p.add(field+".from", "invalid address %q: use an address such as changesync@example.com", e.From)
	}
	if len(e.To) == 0 {
		p.add(field+".to", "missing: list at least one recipient address")
	}
	for i, to := range e.To {
		if _, err := mail.ParseAddress(to); err != nil {
			p.add(fmt.Sprintf("%s.to[%d]", field, i), "invalid address %q: use an address such as "+
				"oncall@example.com", to)
		}
	}
}

func (e *Email) validateAuth(p *problems, field string) {
	switch {
	case e.Username != "" && e.PasswordEnv == "":
		p.add(field+".password_env", "missing: username is set, so name the variable that contains the password")
	case e.Username == "" && e.PasswordEnv != "":
		p.add(field+".username", "missing: password_env is set, so set the user name as well")
	case e.Username != "" && e.TLS == TLSNone && !isLoopbackHost(e.Host):
		p.add(field+".tls", "none with a username would send the password unencrypted to %s: "+
			"use starttls or tls", e.Host)
	}
}

func checkCAFile(p *problems, field, file string) {
	pem, err := os.ReadFile(file) //nolint:gosec // G304: the operator names the CA file
	if err != nil {
		p.add(field, "cannot read %q: %v; name a readable PEM file", file, err)
		return
	}
	if !x509.NewCertPool().AppendCertsFromPEM(pem) {
		p.add(field, "no PEM certificate in %q: name a file with BEGIN CERTIFICATE blocks", file)
	}
}

func (w *Webhook) validate(p *problems, field string) {
	switch {
	case w.URL == "" && w.URLEnv == "":
		p.add(field+".url", "missing: set url or url_env to the receiver's URL")
	case w.URL != "" && w.URLEnv != "":
		p.add(field+".url_env", "both url and url_env are set: use one of them")
	case w.ResolvedURL != "":
		urlField := field + ".url"
		if w.URLEnv != "" {
			urlField = field + ".url_env"
		}
		checkURL(p, urlField, w.ResolvedURL.Value(), w.URLEnv != "")
	}

	if w.SecretEnv == "" {
		p.add(field+".secret_env", "missing: name the environment variable that contains the signing "+
			"secret, such as whsec_ followed by base64 of 32 random bytes")
		return
	}
	if w.Secret != "" {
		if _, err := webhookKey(w.Secret); err != nil {
			p.add(field+".secret_env", "invalid secret in %s: %v", w.SecretEnv, err)
		}
	}
}

// webhookKey returns the HMAC key of a signing secret: the base64-decoded rest of a
// whsec_ secret, or the bytes of any other secret.
func webhookKey(secret Secret) ([]byte, error) {
	key := []byte(secret.Value())
	if rest, ok := strings.CutPrefix(secret.Value(), webhookSecretPrefix); ok {
		decoded, err := base64.StdEncoding.DecodeString(rest)
		if err != nil {
			return nil, fmt.Errorf("the part after %s is not base64: %w", webhookSecretPrefix, err)
		}
		key = decoded
	}
	if len(key) < minSecretBytes {
		return nil, fmt.Errorf("the key is %d bytes: use at least %d random bytes", len(key), minSecretBytes)
	}
	return key, nil
}

// checkURL reports a URL that is not https, or http to a loopback host. A secret URL is
// not shown in the message.
func checkURL(p *problems, field, raw string, secret bool) {
	shown := fmt.Sprintf("%q", raw)
	if secret {
		shown = "(hidden)"
	}

	u, err := url.Parse(raw)
	switch {
	case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http"):
		p.add(field, "invalid URL %s: use an https URL such as https://example.com/hook", shown)
	case u.Scheme == "http" && !isLoopbackHost(u.Hostname()):
		p.add(field, "URL %s is plain http to a host that is not loopback: use https", shown)
	}
}

func isLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func eventTypeList() string {
	names := make([]string, len(EventTypes))
	for i, t := range EventTypes {
		names[i] = string(t)
	}
	return strings.Join(names, ", ")
}

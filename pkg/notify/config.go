package notify

import (
	"time"
)

// Config is the notify section of the changesync configuration: how the dispatcher
// reads the outbox and retries, and the destinations it delivers to. Build it with
// ParseConfig, which resolves the environment variables and validates every field.
type Config struct {
	// PollInterval is how often the outbox is read for new and due rows. Default 1s.
	PollInterval time.Duration `yaml:"poll_interval"`
	// BatchSize is the maximum number of events routed in one transaction. Default 100.
	BatchSize int   `yaml:"batch_size"`
	Retry     Retry `yaml:"retry"`
	// Slack, Email and Webhooks are the destinations. In YAML, slack and email may be one
	// mapping or a list of them.
	Slack    []Slack   `yaml:"slack"`
	Email    []Email   `yaml:"email"`
	Webhooks []Webhook `yaml:"webhooks"`
}

// Retry is the schedule of attempts of one delivery: exponential backoff with jitter.
type Retry struct {
	// MaxAttempts is the number of sends before a delivery is marked failed. Default 10.
	MaxAttempts int `yaml:"max_attempts"`
	// InitialInterval is the delay after the first failed send. Default 1s.
	InitialInterval time.Duration `yaml:"initial_interval"`
	// MaxInterval caps the delay between two sends. Default 5m.
	MaxInterval time.Duration `yaml:"max_interval"`
	// Multiplier grows the delay after each failed send. Default 2.
	Multiplier float64 `yaml:"multiplier"`
	// Jitter is the randomization factor: each delay is drawn from
	// [delay*(1-jitter), delay*(1+jitter)]. Default 0.5.
	Jitter float64 `yaml:"jitter"`
}

// Destination holds the settings every kind of destination has.
type Destination struct {
	// Name identifies the destination in the outbox, logs and metrics. It may be left out
	// when it is the only destination of its kind, and then is slack, email or webhook.
	// Renaming a destination gives up on its pending deliveries.
	Name string `yaml:"name"`
	// Events lists the event types the destination receives, and "*" means all of them.
	Events []EventType `yaml:"events"`
	// Tables limits the destination to events of these tables, as schema.table patterns
	// of path.Match such as crm.* . Empty means every table. An event matches by its
	// source or its target table. Events without a table, such as an undo of a time
	// window, always match.
	Tables []string `yaml:"tables"`
	// Digest, when set, sends one summary per interval instead of one message per event.
	Digest *DigestConfig `yaml:"digest"`
	// Timeout bounds one send. Default 10s (30s for email).
	Timeout time.Duration `yaml:"timeout"`
}

// DigestConfig turns a destination into digest mode.
type DigestConfig struct {
	// Interval is the time between two digests. At least 1s.
	Interval time.Duration `yaml:"interval"`
	// Sample is the number of events shown in full in a digest. Default 5, at most 50.
	Sample int `yaml:"sample"`
}

// Slack is a Slack destination: an incoming webhook, or a bot token and a channel.
type Slack struct {
	Destination `yaml:",inline"`
	// WebhookURLEnv names the environment variable that contains the incoming webhook
	// URL, which is a secret.
	WebhookURLEnv string `yaml:"webhook_url_env"`
	// TokenEnv names the environment variable that contains a bot token (xoxb-...),
	// used with Channel.
	TokenEnv string `yaml:"token_env"`
	Channel  string `yaml:"channel"`
	// APIURL is the Web API base URL for the bot token. Default https://slack.com/api/.
	APIURL string `yaml:"api_url"`

	WebhookURL Secret `yaml:"-"` // resolved from WebhookURLEnv
	Token      Secret `yaml:"-"` // resolved from TokenEnv
}

// Email is an SMTP destination that sends plain-text mail.
type Email struct {
	Destination `yaml:",inline"`
	Host        string `yaml:"host"`
	// Port defaults to 587 for starttls, 465 for tls and 25 for none.
	Port int `yaml:"port"`
	// TLS is starttls (default: upgrade with STARTTLS and reject a server without it),
	// tls (implicit TLS from the first byte) or none.
	TLS string `yaml:"tls"`
	// CAFile is a PEM file of certificate authorities to trust instead of the system's.
	CAFile string `yaml:"ca_file"`
	// ServerName is the name the server's certificate must have. Default: Host.
	ServerName string `yaml:"server_name"`
	// Username enables SMTP authentication, with the password from PasswordEnv.
	Username      string   `yaml:"username"`
	PasswordEnv   string   `yaml:"password_env"`
	From          string   `yaml:"from"`
	To            []string `yaml:"to"`
	SubjectPrefix string   `yaml:"subject_prefix"` // default "[changesync]"

	Password Secret `yaml:"-"` // resolved from PasswordEnv
}

// Webhook is an HTTP destination that receives signed JSON.
type Webhook struct {
	Destination `yaml:",inline"`
	// URL is the receiver's URL, or URLEnv names the environment variable that contains
	// it. It must be https unless the host is a loopback address.
	URL    string `yaml:"url"`
	URLEnv string `yaml:"url_env"`
	// SecretEnv names the environment variable that contains the signing secret: whsec_
	// followed by base64, or the raw secret. At least 16 bytes.
	SecretEnv string `yaml:"secret_env"`

	ResolvedURL Secret `yaml:"-"` // URL or the value of URLEnv
	Secret      Secret `yaml:"-"` // resolved from SecretEnv
}

// The TLS modes of an email destination.
const (
	TLSStartTLS = "starttls"
	TLSImplicit = "tls"
	TLSNone     = "none"
)

// Defaults of the fields that are not set.
const (
	DefaultPollInterval    = time.Second
	DefaultBatchSize       = 100
	DefaultMaxAttempts     = 10
	DefaultInitialInterval = time.Second
	DefaultMaxInterval     = 5 * time.Minute
	DefaultMultiplier      = 2.0
	DefaultJitter          = 0.5
	DefaultTimeout         = 10 * time.Second
	DefaultEmailTimeout    = 30 * time.Second
	DefaultDigestSample    = 5
	DefaultSlackAPIURL     = "https://slack.com/api/"
	DefaultSubjectPrefix   = "[changesync]"
	maxDigestSample        = 50
	minSecretBytes         = 16
	minDigestInterval      = time.Second
)

// fillDefaults sets the defaults of the fields left empty. Jitter keeps 0 when the file
// sets it, so it is defaulted in ParseConfig before decoding instead.
func (c *Config) fillDefaults() {
	setDefault(&c.PollInterval, DefaultPollInterval)
	setDefault(&c.BatchSize, DefaultBatchSize)
	setDefault(&c.Retry.MaxAttempts, DefaultMaxAttempts)
	setDefault(&c.Retry.InitialInterval, DefaultInitialInterval)
	setDefault(&c.Retry.MaxInterval, DefaultMaxInterval)
	setDefault(&c.Retry.Multiplier, DefaultMultiplier)

	for i := range c.Slack {
		c.Slack[i].fillDefaults("slack", len(c.Slack), DefaultTimeout)
		setDefault(&c.Slack[i].APIURL, DefaultSlackAPIURL)
	}
	for i := range c.Email {
		e := &c.Email[i]
		e.fillDefaults("email", len(c.Email), DefaultEmailTimeout)
		setDefault(&e.TLS, TLSStartTLS)
		setDefault(&e.Port, defaultSMTPPort(e.TLS))
		setDefault(&e.ServerName, e.Host)
		setDefault(&e.SubjectPrefix, DefaultSubjectPrefix)
	}
	for i := range c.Webhooks {
		c.Webhooks[i].fillDefaults("webhook", len(c.Webhooks), DefaultTimeout)
	}
}

func (d *Destination) fillDefaults(kind string, count int, timeout time.Duration) {
	if count == 1 {
		setDefault(&d.Name, kind)
	}
	setDefault(&d.Timeout, timeout)
	if d.Digest != nil {
		setDefault(&d.Digest.Sample, DefaultDigestSample)
	}
}

func defaultSMTPPort(mode string) int {
	switch mode {
	case TLSImplicit:
		return 465
	case TLSNone:
		return 25
	default:
		return 587
	}
}

func setDefault[T comparable](field *T, value T) {
	var zero T
	if *field == zero {
		*field = value
	}
}

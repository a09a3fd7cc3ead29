package notify

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strings"

	"github.com/wneessen/go-mail"
)

// emailSender sends a plain-text mail through one SMTP server.
type emailSender struct {
	cfg     *Email
	options []mail.Option
}

func newEmailSender(e *Email) (*emailSender, error) {
	tlsConfig := &tls.Config{ServerName: e.ServerName, MinVersion: tls.VersionTLS12}
	if e.CAFile != "" {
		pem, err := os.ReadFile(e.CAFile)
		if err != nil {
			return nil, fmt.Errorf("email %s: read ca_file: %w", e.Name, err)
		}
		tlsConfig.RootCAs = x509.NewCertPool()
		if !tlsConfig.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("email %s: ca_file %s has no PEM certificate", e.Name, e.CAFile)
		}
	}

	options := []mail.Option{mail.WithPort(e.Port), mail.WithTimeout(e.Timeout), mail.WithTLSConfig(tlsConfig)}
	switch e.TLS {
	case TLSImplicit:
		options = append(options, mail.WithSSL())
	case TLSNone:
		options = append(options, mail.WithTLSPolicy(mail.NoTLS))
	default:
		options = append(options, mail.WithTLSPolicy(mail.TLSMandatory))
	}
	if e.Username != "" {
		options = append(options, mail.WithSMTPAuth(mail.SMTPAuthAutoDiscover),
			mail.WithUsername(e.Username), mail.WithPassword(e.Password.Value()))
	}
	return &emailSender{cfg: e, options: options}, nil
}

func (s *emailSender) sendEvent(ctx context.Context, ev *Event) error {
	return s.send(ctx, ev.ID.String(), eventTitle(ev), eventLines(ev))
}

func (s *emailSender) sendDigest(ctx context.Context, d *Digest) error {
	return s.send(ctx, d.ID.String(), digestTitle(d), digestLines(d))
}

// send mails one message. The Message-ID is derived from the event or digest id, so the
// copies a retry may produce share it.
func (s *emailSender) send(ctx context.Context, id, title string, lines []string) error {
	msg := mail.NewMsg()
	if err := msg.From(s.cfg.From); err != nil {
		return fmt.Errorf("set sender %q: %w", s.cfg.From, err)
	}
	if err := msg.To(s.cfg.To...); err != nil {
		return fmt.Errorf("set recipients: %w", err)
	}
	msg.Subject(s.cfg.SubjectPrefix + " " + title)
	msg.SetMessageIDWithValue(id + "@changesync")
	msg.SetDate()
	msg.SetBodyString(mail.TypeTextPlain, strings.Join(lines, "\n")+"\n")

	client, err := mail.NewClient(s.cfg.Host, s.options...)
	if err != nil {
		return scrub(err, s.cfg.Password)
	}
	if err := client.DialAndSendWithContext(ctx, msg); err != nil {
		return scrub(err, s.cfg.Password)
	}
	return nil
}

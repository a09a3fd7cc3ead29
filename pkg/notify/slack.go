package notify

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/slack-go/slack"
)

// slackSender posts a readable text message through an incoming webhook or, with a bot
// token, chat.postMessage.
type slackSender struct {
	webhookURL Secret
	token      Secret
	channel    string
	api        *slack.Client // nil for a webhook
	http       *http.Client
}

func newSlackSender(s *Slack, client *http.Client) *slackSender {
	sender := &slackSender{webhookURL: s.WebhookURL, token: s.Token, channel: s.Channel, http: client}
	if s.Token != "" {
		apiURL := s.APIURL
		if !strings.HasSuffix(apiURL, "/") {
			apiURL += "/"
		}
		sender.api = slack.New(s.Token.Value(), slack.OptionAPIURL(apiURL), slack.OptionHTTPClient(client))
	}
	return sender
}

func (s *slackSender) sendEvent(ctx context.Context, ev *Event) error {
	return s.post(ctx, slackText(eventTitle(ev), eventLines(ev)))
}

func (s *slackSender) sendDigest(ctx context.Context, d *Digest) error {
	return s.post(ctx, slackText(digestTitle(d), digestLines(d)))
}

func (s *slackSender) post(ctx context.Context, text string) error {
	var err error
	if s.api != nil {
		_, _, err = s.api.PostMessageContext(ctx, s.channel, slack.MsgOptionText(text, false))
	} else {
		err = slack.PostWebhookCustomHTTPContext(ctx, s.webhookURL.Value(), s.http,
			&slack.WebhookMessage{Text: text})
	}
	if err == nil {
		return nil
	}

	sendErr := scrub(err, s.webhookURL, s.token)
	var rateLimited *slack.RateLimitedError
	if errors.As(err, &rateLimited) {
		sendErr.RetryAfter = min(rateLimited.RetryAfter, maxRetryAfter)
	}
	return sendErr
}

// slackText renders a bold title and the lines in Slack's mrkdwn, with the characters
// Slack reserves escaped.
func slackText(title string, lines []string) string {
	var b strings.Builder
	b.WriteString("*" + slackEscape(title) + "*")
	for _, line := range lines {
		b.WriteString("\n" + slackEscape(line))
	}
	return b.String()
}

var slackEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

func slackEscape(s string) string { return slackEscaper.Replace(s) }

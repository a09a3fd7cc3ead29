package config

import (
	"maps"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

const mask = "xxxxx"

// passwordKeyword matches a password or sslpassword setting of a keyword/value
// connection string, quoted or not.
var passwordKeyword = regexp.MustCompile(`(?i)(password\s*=\s*)('(?:[^'\\]|\\.)*'?|\S*)`)

// RedactURL returns a connection string or URL with its passwords replaced by xxxxx: the
// password of the user information and the password and sslpassword query parameters of
// a URL, or the password settings of a keyword/value string. A URL that does not parse
// is hidden whole, because where its password ends cannot be known.
func RedactURL(s string) string {
	if !strings.Contains(s, "://") {
		return passwordKeyword.ReplaceAllString(s, "${1}"+mask)
	}

	u, err := url.Parse(s)
	if err != nil {
		scheme, _, _ := strings.Cut(s, "://")
		return scheme + "://(unparsable URL not shown)"
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), mask)
	}
	if u.RawQuery != "" {
		q := u.Query()
		for key := range q {
			if strings.Contains(strings.ToLower(key), "password") {
				q.Set(key, mask)
			}
		}
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// String renders the configuration as YAML for logs and the check command, with the
// passwords of the URLs replaced and the values of the notify settings hidden, because
// they may contain webhook secrets and mail passwords.
func (c Config) String() string {
	c.Source.URL = RedactURL(c.Source.URL)
	c.Target.URL = RedactURL(c.Target.URL)
	c.LLM.BaseURL = RedactURL(c.LLM.BaseURL)
	c.API.Auth.JWKSURL = RedactURL(c.API.Auth.JWKSURL)
	c.Notify = hideValues(&c.Notify)

	out, err := yaml.Marshal(c)
	if err != nil {
		return "(configuration cannot be shown: " + err.Error() + ")"
	}
	return string(out)
}

// hideValues returns a mapping with the keys of n and every value replaced by a mask.
func hideValues(n *yaml.Node) yaml.Node {
	if n.Kind != yaml.MappingNode {
		if n.IsZero() {
			return yaml.Node{}
		}
		return yaml.Node{Kind: yaml.ScalarNode, Value: "(hidden)"}
	}
	hidden := yaml.Node{Kind: yaml.MappingNode}
	for i := 0; i+1 < len(n.Content); i += 2 {
		hidden.Content = append(hidden.Content,
			&yaml.Node{Kind: yaml.ScalarNode, Value: n.Content[i].Value},
			&yaml.Node{Kind: yaml.ScalarNode, Value: "(hidden)"})
	}
	return hidden
}

func sortedStrings(m map[string]string) []string {
	return slices.Sorted(maps.Keys(m))
}

package syncserver

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"path"
	"strings"
)

// An origin is compared whole: scheme, host and port. The websocket
// library's own check (AcceptOptions.OriginPatterns) looks at the host
// alone, so an http:// page would pass where only https:// is allowed.

// origin is a parsed, canonical origin: lower-case scheme and host, the
// port always explicit.
type origin struct{ scheme, host, port string }

func (o origin) String() string { return o.scheme + "://" + net.JoinHostPort(o.host, o.port) }

// parseOrigin parses "scheme://host[:port]" (a trailing slash allowed). The
// host may start with "*." to stand for any subdomain when wild is set.
func parseOrigin(s string, wild bool) (origin, error) {
	u, err := url.Parse(strings.TrimSuffix(s, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" ||
		u.User != nil || u.Path != "" || u.RawQuery != "" || u.Fragment != "" {
		return origin{}, fmt.Errorf("origin %q: want scheme://host[:port] with scheme http or https", s)
	}
	o := origin{scheme: strings.ToLower(u.Scheme), host: strings.ToLower(u.Hostname()), port: u.Port()}
	if o.port == "" {
		o.port = map[string]string{"http": "80", "https": "443"}[o.scheme]
	}
	if strings.Contains(strings.TrimPrefix(o.host, "*."), "*") || (!wild && strings.HasPrefix(o.host, "*.")) {
		return origin{}, fmt.Errorf("origin %q: a wildcard may only be a leading \"*.\"", s)
	}
	return o, nil
}

// matches reports whether the browser origin b is allowed by the pattern o.
func (o origin) matches(b origin) bool {
	if o.scheme != b.scheme || o.port != b.port {
		return false
	}
	if rest, ok := strings.CutPrefix(o.host, "*."); ok {
		return strings.HasSuffix(b.host, "."+rest)
	}
	return o.host == b.host
}

// parseOrigins parses the configured allowed origins.
func parseOrigins(list []string) ([]origin, error) {
	out := make([]origin, 0, len(list))
	for _, s := range list {
		o, err := parseOrigin(strings.TrimSpace(s), true)
		if err != nil {
			return nil, err
		}
		out = append(out, o)
	}
	return out, nil
}

// originAllowed reports whether r may open the websocket. A request
// without an Origin header is not from a browser page (native apps) and
// is allowed. The server's own pages (same host and port) are allowed
// with either scheme, since a TLS-terminating proxy hides the scheme the
// page had. Any other origin must be one of AllowedOrigins, scheme and
// port included, or match a legacy host pattern in OriginPatterns.
func (s *Server) originAllowed(r *http.Request) bool {
	h := r.Header.Get("Origin")
	if h == "" {
		return true
	}
	b, err := parseOrigin(h, false)
	if err != nil {
		return false
	}
	if u, err := url.Parse(h); err == nil && strings.EqualFold(u.Host, r.Host) {
		return true
	}
	for _, o := range s.origins {
		if o.matches(b) {
			return true
		}
	}
	for _, p := range s.cfg.OriginPatterns {
		host := b.host
		if strings.Contains(p, ":") {
			host = net.JoinHostPort(b.host, b.port)
		}
		if ok, _ := path.Match(strings.ToLower(p), host); ok {
			return true
		}
	}
	return false
}

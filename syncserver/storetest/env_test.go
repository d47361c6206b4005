package storetest

import (
	"regexp"
	"strings"
	"testing"
)

func TestLookupService(t *testing.T) {
	const env = EnvPostgresURL
	tests := []struct {
		name         string
		vars         map[string]string
		wantURL      string
		wantRequired bool
		wantInMsg    string
	}{
		{"set", map[string]string{env: "postgres://x"}, "postgres://x", false, ""},
		{"set under CI", map[string]string{env: "postgres://x", "CI": "true"}, "postgres://x", false, ""},
		{"unset skips", nil, "", false, env},
		{"unset under CI fails", map[string]string{"CI": "true"}, "", true, env},
		{"unset with require fails", map[string]string{EnvRequireServices: "1"}, "", true, EnvRequireServices},
		{"require other than 1 skips", map[string]string{EnvRequireServices: "0"}, "", false, env},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			getenv := func(k string) string { return tt.vars[k] }
			url, required, msg := lookupService(getenv, env, "Postgres")
			if url != tt.wantURL || required != tt.wantRequired {
				t.Errorf("lookupService = %q, required %v; want %q, required %v", url, required, tt.wantURL, tt.wantRequired)
			}
			if !strings.Contains(msg, tt.wantInMsg) {
				t.Errorf("message %q does not name %q", msg, tt.wantInMsg)
			}
			if url == "" && !strings.Contains(msg, env) {
				t.Errorf("message %q does not name the variable %s", msg, env)
			}
		})
	}
}

func TestServiceURLFromEnv(t *testing.T) {
	t.Setenv(EnvRedisURL, "redis://127.0.0.1:1/0")
	if got := RedisURL(t); got != "redis://127.0.0.1:1/0" {
		t.Errorf("RedisURL = %q, want the variable's value", got)
	}
}

var identifier = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)

func TestUniqueName(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		n := UniqueName(t)
		if !identifier.MatchString(n) {
			t.Fatalf("UniqueName = %q, not a lower-case SQL identifier of at most 63 bytes", n)
		}
		if seen[n] {
			t.Fatalf("UniqueName returned %q twice", n)
		}
		seen[n] = true
	}
	t.Run("a very long subtest name with Ünïcode and/slashes "+strings.Repeat("x", 80), func(t *testing.T) {
		if n := UniqueName(t); !identifier.MatchString(n) {
			t.Errorf("UniqueName = %q (%d bytes), not a valid identifier", n, len(n))
		}
	})
}

func TestKeyPrefix(t *testing.T) {
	a, b := KeyPrefix(t), KeyPrefix(t)
	if a == b {
		t.Errorf("KeyPrefix returned %q twice", a)
	}
	if !strings.HasPrefix(a, "cartsync-test:") || !strings.HasSuffix(a, ":") {
		t.Errorf("KeyPrefix = %q, want cartsync-test:<name>:", a)
	}
}

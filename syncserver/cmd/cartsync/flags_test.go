package main

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// Every flag's environment variable goes through the flag's own parser: a
// value it refuses stops the start naming the variable; a good one is the
// default; the command line wins over it.
func TestFlagsFromEnvironment(t *testing.T) {
	envOf := func(kv ...string) func(string) string {
		env := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			env[kv[i]] = kv[i+1]
		}
		return func(k string) string { return env[k] }
	}
	for _, tc := range []struct{ name, value string }{
		{"CARTSYNC_CACHE_TTL", "24"},
		{"CARTSYNC_POSTGRES_MAX_CONNS", "sixteen"},
		{"CARTSYNC_CATALOG_ONLY", "yes please"},
		{"CARTSYNC_RATE_PER_IP", "fast"},
		{"CARTSYNC_GUEST_RETENTION", "30 days"},
	} {
		err := NewMain().ParseFlags(nil, envOf(tc.name, tc.value))
		if err == nil || !strings.Contains(err.Error(), tc.name) || !strings.Contains(err.Error(), tc.value) {
			t.Errorf("%s=%q: error %v, want one naming the variable and its value", tc.name, tc.value, err)
		}
	}
	// Two bad variables: both named.
	err := NewMain().ParseFlags(nil, envOf("CARTSYNC_CACHE_TTL", "24", "CARTSYNC_MAX_HELLOS", "many"))
	if err == nil || !strings.Contains(err.Error(), "CARTSYNC_CACHE_TTL") || !strings.Contains(err.Error(), "CARTSYNC_MAX_HELLOS") {
		t.Errorf("two bad variables: %v, want both named", err)
	}

	m := NewMain()
	if err := m.ParseFlags([]string{"-max-hellos", "7"}, envOf(
		"CARTSYNC_CACHE_TTL", "24h", "CARTSYNC_MAX_HELLOS", "99", "CARTSYNC_CATALOG_ONLY", "true",
		"CARTSYNC_ALLOWED_ORIGINS", "https://a.example, https://b.example")); err != nil {
		t.Fatal(err)
	}
	if m.CacheTTL != 24*time.Hour || !m.CatalogOnly || m.MaxHellos != 7 || len(m.AllowedOrigins) != 2 {
		t.Errorf("cache TTL %v, catalog only %v, max hellos %d, origins %v; want 24h, true, 7 (the flag wins), 2 origins",
			m.CacheTTL, m.CatalogOnly, m.MaxHellos, m.AllowedOrigins)
	}
}

// Values a flag's parser takes but the server cannot work with stop the
// start with an error naming the flag; the values with a documented meaning
// (0 for a default, negative for no limit) are taken.
func TestFlagValuesTheServerCannotUseAreRefused(t *testing.T) {
	for _, args := range [][]string{
		{"-rate-per-ip", "NaN"},
		{"-devices-per-ip", "+Inf"},
		{"-postgres-max-conns", "0"},
		{"-committers", "-5"},
		{"-max-hellos", "-1"},
		{"-cache-ttl", "0s"},
		{"-user-retention", "-1h"},
		{"-purge-interval", "-1m"},
		{"-checkout-ttl", "0s"},
		{"-webhook-retry-window", "-1s"},
		{"-body-timeout", "-1s"},
		{"-redis-prefix", " "},
	} {
		err := NewMain().ParseFlags(args, func(string) string { return "" })
		if err == nil || !strings.Contains(err.Error(), args[0]) {
			t.Errorf("%v: error %v, want one naming %s", args, err, args[0])
		}
	}
	m := NewMain()
	ok := []string{"-rate-per-ip", "-1", "-devices-per-ip", "0", "-committers", "-1", "-max-hellos", "0",
		"-user-retention", "0s", "-purge-interval", "0s", "-body-timeout", "0s",
		"-guest-retention", "0s"} // 30 days, as documented and as before the check
	for _, env := range []string{"0", "-1h"} {
		if err := NewMain().ParseFlags(nil, func(k string) string {
			if k == "CARTSYNC_GUEST_RETENTION" {
				return env
			}
			return ""
		}); err != nil {
			t.Errorf("CARTSYNC_GUEST_RETENTION=%s: %v, want it taken as 30 days", env, err)
		}
	}
	if err := m.ParseFlags(ok, func(string) string { return "" }); err != nil {
		t.Errorf("%v: %v, want the documented meanings taken", ok, err)
	}
}

// The widget page asks for a process of its own unless the operator turns
// it off.
func TestOriginAgentClusterByDefault(t *testing.T) {
	web := repoWeb(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "?1"},
		{[]string{"-origin-agent-cluster=false"}, ""},
	} {
		m := startMain(t, append([]string{"-web", web, "-data", t.TempDir()}, tc.args...)...)
		resp, err := http.Get(m.URL() + "/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("Origin-Agent-Cluster"); resp.StatusCode != http.StatusOK || got != tc.want {
			t.Errorf("%v: GET / = %d, Origin-Agent-Cluster %q; want 200 and %q", tc.args, resp.StatusCode, got, tc.want)
		}
	}
}

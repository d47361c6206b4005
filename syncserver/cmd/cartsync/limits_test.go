package main

import (
	"net/netip"
	"testing"
	"time"
)

func TestLimitFlagsAndEnv(t *testing.T) {
	env := map[string]string{
		"CARTSYNC_MAX_CONNS_PER_IP":    "50",
		"CARTSYNC_RATE_PER_IP":         "2.5",
		"CARTSYNC_DEVICES_PER_IP":      "0.1",
		"CARTSYNC_DEVICE_BURST_PER_IP": "7",
		"CARTSYNC_TRUSTED_PROXIES":     "10.0.0.0/8, 192.0.2.1",
	}
	m := NewMain()
	if err := m.ParseFlags([]string{"-burst-per-ip", "30", "-max-conns-per-ip", "60", "-body-timeout", "5s"}, func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	l := m.IPLimits
	if l.MaxConns != 60 || l.Rate != 2.5 || l.Burst != 30 || l.DeviceRate != 0.1 || l.DeviceBurst != 7 || l.BodyTimeout != 5*time.Second {
		t.Fatalf("IPLimits = %+v", l)
	}
	want := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.1/32")}
	if len(l.TrustedProxies) != 2 || l.TrustedProxies[0] != want[0] || l.TrustedProxies[1] != want[1] {
		t.Fatalf("TrustedProxies = %v, want %v", l.TrustedProxies, want)
	}
	if err := NewMain().ParseFlags([]string{"-trusted-proxies", "proxy.example"}, func(string) string { return "" }); err == nil {
		t.Fatal("a host name was taken as a trusted proxy")
	}
}

// TestHTTPServerTimeouts: headers, bodies and idle keep-alive connections
// are bounded (a body sent a byte every few seconds used to stay open for
// minutes).
func TestHTTPServerTimeouts(t *testing.T) {
	s := newHTTPServer(nil)
	if s.ReadHeaderTimeout <= 0 || s.ReadTimeout <= 0 || s.IdleTimeout <= 0 {
		t.Fatalf("timeouts: header %s, read %s, idle %s; want all set", s.ReadHeaderTimeout, s.ReadTimeout, s.IdleTimeout)
	}
}

package syncserver

import (
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cartsync/cartsync/shared/protocol"
)

func TestClientAddr(t *testing.T) {
	proxies := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}
	tests := []struct {
		name    string
		remote  string
		xff     []string
		trusted []netip.Prefix
		want    string
	}{
		{"remote address", "192.0.2.7:4711", nil, nil, "192.0.2.7"},
		{"header ignored without trusted proxies", "192.0.2.7:4711", []string{"198.51.100.1"}, nil, "192.0.2.7"},
		{"header ignored from an untrusted peer", "192.0.2.7:4711", []string{"198.51.100.1"}, proxies, "192.0.2.7"},
		{"trusted proxy", "10.1.2.3:4711", []string{"198.51.100.1"}, proxies, "198.51.100.1"},
		{"spoofed entries left of the real one", "10.1.2.3:4711", []string{"203.0.113.9, 198.51.100.1"}, proxies, "198.51.100.1"},
		{"chain of trusted proxies", "10.1.2.3:4711", []string{"198.51.100.1, 10.9.9.9", "10.8.8.8"}, proxies, "198.51.100.1"},
		{"only proxies", "10.1.2.3:4711", []string{"10.9.9.9"}, proxies, "10.1.2.3"},
		{"garbage hop", "10.1.2.3:4711", []string{"198.51.100.1, nonsense"}, proxies, "10.1.2.3"},
		{"ipv6", "[2001:db8::1]:4711", nil, nil, "2001:db8::1"},
		{"ipv4 in ipv6", "[::ffff:192.0.2.7]:4711", nil, nil, "192.0.2.7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &http.Request{RemoteAddr: tt.remote, Header: http.Header{}}
			for _, v := range tt.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := clientAddr(r, tt.trusted); got != netip.MustParseAddr(tt.want) {
				t.Fatalf("clientAddr = %v, want %s", got, tt.want)
			}
		})
	}
}

func TestLimitKeyGroupsIPv6By64(t *testing.T) {
	a, b := netip.MustParseAddr("2001:db8:1:2::1"), netip.MustParseAddr("2001:db8:1:2:ffff::9")
	if limitKey(a) != limitKey(b) {
		t.Fatalf("%v and %v in one /64 have keys %v and %v", a, b, limitKey(a), limitKey(b))
	}
	if c := netip.MustParseAddr("2001:db8:1:3::1"); limitKey(a) == limitKey(c) {
		t.Fatalf("%v and %v share a key", a, c)
	}
	if v4 := netip.MustParseAddr("192.0.2.7"); limitKey(v4) != v4 {
		t.Fatalf("limitKey(%v) = %v", v4, limitKey(v4))
	}
}

// TestLimiterBucketsAndSweep: token buckets per address on an injected
// clock; addresses at rest are forgotten, ones with connections kept.
func TestLimiterBucketsAndSweep(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	l, err := newIPLimiter(IPLimits{Rate: 10, Burst: 5, MaxConns: 1}, func() time.Time { return now }, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	for i := range 5 {
		if e := l.allowRequest(a); e != nil {
			t.Fatalf("request %d: %v", i, e)
		}
	}
	e := l.allowRequest(a)
	if e == nil || e.Code != protocol.ErrRateLimited || e.RetryAfterMS != 100 {
		t.Fatalf("sixth request: %+v, want rate_limited after 100 ms", e)
	}
	if e := l.allowRequest(b); e != nil {
		t.Fatalf("another address: %v", e)
	}
	now = now.Add(250 * time.Millisecond) // 2.5 tokens
	for i := range 2 {
		if e := l.allowRequest(a); e != nil {
			t.Fatalf("after refill, request %d: %v", i, e)
		}
	}
	if e := l.allowRequest(a); e == nil || e.RetryAfterMS != 50 {
		t.Fatalf("refill overdrawn: %+v, want retry after 50 ms", e)
	}
	release, e := l.acquireConn(b)
	if e != nil {
		t.Fatal(e)
	}
	if _, e := l.acquireConn(b); e == nil || e.Code != protocol.ErrRateLimited {
		t.Fatalf("second connection: %v, want rate_limited", e)
	}
	now = now.Add(time.Hour)
	l.allowRequest(netip.MustParseAddr("192.0.2.3")) // sweeps
	l.mu.Lock()
	_, hasA := l.addrs[a]
	_, hasB := l.addrs[b]
	l.mu.Unlock()
	if hasA || !hasB {
		t.Fatalf("after the sweep: a kept %v (want false), b kept %v (want true, it has a connection)", hasA, hasB)
	}
	release()
	release() // idempotent
	if _, e := l.acquireConn(b); e != nil {
		t.Fatalf("connection after release: %v", e)
	}
}

// BenchmarkAllowEdits is what the edit limit adds to each push and sync:
// one address's bucket (the worst case, every client behind one address)
// or an address per client, taken from both cores at once; and off.
func BenchmarkAllowEdits(b *testing.B) {
	for _, tt := range []struct {
		name  string
		rate  float64
		addrs int
	}{{"one-address", 1e12, 1}, {"1000-addresses", 1e12, 1000}, {"off", -1, 1}} {
		b.Run(tt.name, func(b *testing.B) {
			l, err := newIPLimiter(IPLimits{EditRate: tt.rate, EditBurst: 1 << 30}, time.Now, prometheus.NewRegistry())
			if err != nil {
				b.Fatal(err)
			}
			addrs := make([]netip.Addr, tt.addrs)
			for i := range addrs {
				addrs[i] = netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})
			}
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					if perr := l.allowEdits(addrs[i%len(addrs)], 1); perr != nil {
						b.Fatal(perr)
					}
					i++
				}
			})
		})
	}
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/shared/protocol"
	"github.com/cartsync/cartsync/shared/syncclient"
	"github.com/cartsync/cartsync/syncserver"
	"github.com/cartsync/cartsync/syncserver/storetest"
)

// startMain runs the real program in-process on a free port.
func startMain(t *testing.T, args ...string) *Main {
	t.Helper()
	m := NewMain()
	if err := m.ParseFlags(append([]string{"-addr", "127.0.0.1:0", "-log-level", "error"}, args...), func(string) string { return "" }); err != nil {
		t.Fatal(err)
	}
	runMain(t, m)
	return m
}

// runMain runs m and closes it when the test ends.
func runMain(t testing.TB, m *Main) {
	t.Helper()
	if err := m.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		m.Close(ctx)
	})
}

func wsURL(base string) string { return "ws" + strings.TrimPrefix(base, "http") + "/v1/sync" }

// engine starts a client engine on base with the given device token.
func engine(t *testing.T, base, token string) *syncclient.Engine {
	t.Helper()
	st := syncclient.NewMemStorage()
	if token != "" {
		if _, err := st.SwapDeviceToken(context.Background(), "", token); err != nil {
			t.Fatal(err)
		}
	}
	e, err := syncclient.New(syncclient.Config{Storage: st, Dial: syncclient.WebsocketDialer(wsURL(base)), BackoffBase: 10 * time.Millisecond, BackoffCap: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); e.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return e
}

// waitFor polls the engine until ok holds or 10 s pass.
func waitFor(t *testing.T, e *syncclient.Engine, what string, ok func(syncclient.State) bool) syncclient.State {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s := e.Snapshot()
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; state: status %v pending %d confirmed %d", what, s.Status, s.Pending, s.Confirmed)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func quantity(c *cart.Cart, sku string) int {
	if l := c.Line(cart.LineKey(sku, nil)); l != nil {
		return l.Quantity
	}
	return 0
}

func newDevice(t *testing.T, base string) string {
	t.Helper()
	resp, err := http.Post(base+"/v1/devices", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var d syncserver.DeviceResponse
	if err := json.NewDecoder(resp.Body).Decode(&d); err != nil || d.DeviceToken == "" {
		t.Fatalf("POST /v1/devices: %v", err)
	}
	return d.DeviceToken
}

func TestEmbeddedDefaultKeepsCartsAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	m := startMain(t, "-data", dir)
	tok := newDevice(t, m.URL())
	e := engine(t, m.URL(), tok)
	ctx := context.Background()
	if err := e.Add(ctx, "MUG", nil, 2, &cart.Details{Name: "Mug", Price: 900, Currency: "EUR"}); err != nil {
		t.Fatal(err)
	}
	fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := e.Flush(fctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "cartsync.db")); err != nil {
		t.Fatalf("no SQLite file in the data folder: %v", err)
	}
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		resp, err := http.Get(m.URL() + path)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET %s = %v %v", path, resp, err)
		}
		resp.Body.Close()
	}
	sctx, scancel := context.WithTimeout(ctx, 5*time.Second)
	defer scancel()
	if err := m.Close(sctx); err != nil {
		t.Fatalf("Close: %v", err)
	}

	m2 := startMain(t, "-data", dir)
	e2 := engine(t, m2.URL(), tok)
	waitFor(t, e2, "the cart after restart", func(s syncclient.State) bool { return quantity(s.Cart, "MUG") == 2 })
}

func TestTwoInstancesBehaveAsOne(t *testing.T) {
	pg := storetest.SchemaURL(t)
	rd := storetest.RedisURL(t)
	prefix := storetest.KeyPrefix(t)
	a := startMain(t, "-postgres-url", pg, "-redis-url", rd, "-redis-prefix", prefix)
	b := startMain(t, "-postgres-url", pg, "-redis-url", rd, "-redis-prefix", prefix)

	// A device token issued by one instance is good on the other: they
	// share the signing secret through the store.
	tok := newDevice(t, a.URL())
	onA := engine(t, a.URL(), tok)
	onB := engine(t, b.URL(), tok)
	waitFor(t, onB, "B connected", func(s syncclient.State) bool { return s.Status == syncclient.Synced })

	ctx := context.Background()
	if err := onA.Add(ctx, "TEA", nil, 3, nil); err != nil {
		t.Fatal(err)
	}
	s := waitFor(t, onB, "A's edit pushed to B", func(s syncclient.State) bool { return quantity(s.Cart, "TEA") == 3 })
	if s.Confirmed != 1 {
		t.Fatalf("B confirmed version %d, want 1", s.Confirmed)
	}
	if err := onB.Remove(ctx, "TEA", nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, onA, "B's remove pushed to A", func(s syncclient.State) bool { return quantity(s.Cart, "TEA") == 0 && s.Confirmed == 2 })
}

// TestAcknowledgedSurvivesSIGKILL kills the server process the moment an
// operation is acknowledged; after a restart it is there, exactly once.
func TestAcknowledgedSurvivesSIGKILL(t *testing.T) {
	bin := buildServer(t)
	for name, args := range serverBackends(t) {
		t.Run(name, func(t *testing.T) {
			addr := freeAddr(t)
			base := "http://" + addr
			proc := startProcess(t, bin, addr, args)
			tok := newDevice(t, base)
			op := cart.Op{Client: "native-1", Seq: 1, Kind: cart.KindAdd, SKU: "JAM", Quantity: 4}
			res := postOps(t, base, tok, op)
			if res.Results[0].Status != protocol.StatusApplied {
				t.Fatalf("first delivery: %+v", res.Results[0])
			}
			proc.Process.Signal(syscall.SIGKILL) // no chance to flush anything
			proc.Wait()

			startProcess(t, bin, addr, args)
			e := engine(t, base, tok)
			waitFor(t, e, "the acknowledged op after SIGKILL", func(s syncclient.State) bool {
				return quantity(s.Cart, "JAM") == 4 && s.Confirmed == 1
			})
			again := postOps(t, base, tok, op)
			if again.Results[0].Status != protocol.StatusDuplicate || quantity(again.Cart, "JAM") != 4 {
				t.Fatalf("replay after restart: %+v, cart %+v", again.Results[0], again.Cart)
			}
		})
	}
}

// serverBackends returns the store arguments of the program for each
// store under test: the embedded SQLite file, and Postgres when it is there
// (always under CI).
func serverBackends(t *testing.T) map[string][]string {
	backends := map[string][]string{"sqlite": {"-data", t.TempDir()}}
	if os.Getenv("CARTSYNC_TEST_POSTGRES_URL") != "" || os.Getenv("CI") != "" || os.Getenv("CARTSYNC_REQUIRE_SERVICES") == "1" {
		backends["postgres"] = []string{"-postgres-url", storetest.SchemaURL(t)}
	}
	return backends
}

// built is the program, built once for the tests that run it as a
// process (TestMain removes it).
var built struct {
	once     sync.Once
	dir, bin string
	err      error
}

// buildServer builds the program once and returns its path.
func buildServer(t *testing.T) string {
	t.Helper()
	built.once.Do(func() {
		built.dir, built.err = os.MkdirTemp("", "cartsync-test-bin")
		if built.err != nil {
			return
		}
		built.bin = filepath.Join(built.dir, "cartsync")
		if out, err := exec.Command("go", "build", "-o", built.bin, ".").CombinedOutput(); err != nil {
			built.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.bin
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func startProcess(t *testing.T, bin, addr string, args []string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"-addr", addr, "-log-level", "error"}, args...)...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return cmd
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("server on %s not ready: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func postOps(t *testing.T, base, tok string, ops ...cart.Op) syncserver.OpsResponse {
	t.Helper()
	body, _ := json.Marshal(syncserver.OpsRequest{Ops: ops})
	req, _ := http.NewRequest("POST", base+"/v1/cart/ops", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out syncserver.OpsResponse
	if resp.StatusCode != 200 || json.Unmarshal(b, &out) != nil || len(out.Results) != len(ops) {
		t.Fatalf("POST /v1/cart/ops = %d %s", resp.StatusCode, b)
	}
	return out
}

// The demo storefront hands anyone a token for any user: it refuses to
// start beside a real user-token key, whichever kind.
func TestDemoRefusesRealUserTokenKeys(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "keys.pem")
	if err := os.WriteFile(keyFile, []byte("not read: the demo check comes first"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, args := range map[string][]string{
		"hs256":   {"-auth-hs256-secret", strings.Repeat("k", 32)},
		"keyfile": {"-auth-public-key-file", keyFile},
		"jwks":    {"-auth-jwks-url", "http://127.0.0.1:1/jwks.json"},
	} {
		t.Run(name, func(t *testing.T) {
			m := NewMain()
			args = append([]string{"-addr", "127.0.0.1:0", "-log-level", "error", "-data", t.TempDir(), "-demo-addr", "127.0.0.1:0"}, args...)
			if err := m.ParseFlags(args, func(string) string { return "" }); err != nil {
				t.Fatal(err)
			}
			err := m.Run(context.Background())
			if err == nil {
				m.Close(context.Background())
				t.Fatal("the demo started beside a real user-token key")
			}
			if !strings.Contains(err.Error(), "demo storefront") {
				t.Errorf("error = %v, want the demo's refusal", err)
			}
		})
	}
}

// readiness returns /readyz's status code and "status" field.
func readiness(t *testing.T, base string) (int, string) {
	t.Helper()
	resp, err := http.Get(base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
	}
	json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body.Status
}

// Redis is a cache and a bus, not a dependency: the server starts while it
// is down, is ready (and says it is degraded) while edits are acknowledged,
// and attaches when Redis comes.
func TestStartsWithoutRedisAndAttaches(t *testing.T) {
	rp := storetest.StartRedis(t)
	rp.Stop()
	m := startMain(t, "-data", t.TempDir(), "-redis-url", rp.URL())
	base := m.URL()
	e := engine(t, base, "")
	if err := e.Add(t.Context(), "mug", nil, 1, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, e, "the edit acknowledged without Redis", func(s syncclient.State) bool {
		return s.Pending == 0 && s.Confirmed > 0
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		code, status := readiness(t, base)
		if code == http.StatusOK && status == "degraded" {
			break
		}
		if code != http.StatusOK || time.Now().After(deadline) {
			t.Fatalf("/readyz with Redis down = %d %q, want 200 degraded", code, status)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Anyone may ask: the answer names the parts, not their errors
	// (which carry addresses); the log has those.
	resp, err := http.Get(base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	_, port, _ := strings.Cut(rp.Addr, ":")
	if !strings.Contains(string(body), `"redis cache"`) || strings.Contains(string(body), port) {
		t.Errorf("/readyz with Redis down: %s; want the Redis cache named, without Redis's address", body)
	}

	rp.Start()
	if err := e.Add(t.Context(), "tea", nil, 1, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, e, "an edit acknowledged with Redis back", func(s syncclient.State) bool {
		return s.Pending == 0 && quantity(s.Cart, "tea") == 1
	})
	for deadline := time.Now().Add(20 * time.Second); ; {
		if code, status := readiness(t, base); code == http.StatusOK && status == "ok" {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("/readyz after Redis came back = %d %q, want 200 ok", code, status)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A store that cannot be opened fails the start with its error, and the
// program cleans up without a panic.
func TestUnreachablePostgresFailsCleanly(t *testing.T) {
	m := NewMain()
	args := []string{"-addr", "127.0.0.1:0", "-log-level", "error", "-postgres-url", "postgres://nobody@127.0.0.1:1/none?connect_timeout=1"}
	if err := m.ParseFlags(args, func(string) string { return "" }); err != nil {
		t.Fatal(err)
	}
	err := m.Run(context.Background())
	if err == nil {
		m.Close(context.Background())
		t.Fatal("started on an unreachable Postgres")
	}
	if !strings.Contains(err.Error(), "open postgres") {
		t.Errorf("error = %v, want open postgres", err)
	}
	m.Close(context.Background())
}

// A Redis that hangs (SIGSTOP) is off the critical path: edits are
// acknowledged and new devices say hello while it hangs, each within a
// bound far below the Redis timeouts that used to add up on the ack path
// (about 5 s per ack); after Redis resumes, reads show every edit. The
// bound is generous: this checks that nothing waits for Redis, not speed.
func TestRedisHangIsOffTheCriticalPath(t *testing.T) {
	rp := storetest.StartRedis(t)
	m := startMain(t, "-data", t.TempDir(), "-redis-url", rp.URL())
	base := m.URL()
	e := engine(t, base, "")
	if err := e.Add(t.Context(), "mug", nil, 1, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, e, "the first edit acknowledged", func(s syncclient.State) bool { return s.Pending == 0 && s.Confirmed > 0 })

	rp.Pause()
	defer rp.Resume()
	const bound = 3 * time.Second
	for i := range 3 {
		start := time.Now()
		if err := e.Add(t.Context(), "tea", nil, 1, nil); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		err := e.Flush(ctx)
		cancel()
		if err != nil {
			t.Fatalf("edit %d while Redis hangs: %v", i, err)
		}
		if d := time.Since(start); d > bound {
			t.Errorf("edit %d acknowledged %v after it was made while Redis hangs, want under %v", i, d, bound)
		}
	}
	start := time.Now()
	e2 := engine(t, base, "")
	waitFor(t, e2, "a new device's hello answered while Redis hangs", func(s syncclient.State) bool { return s.Status == syncclient.Synced })
	if d := time.Since(start); d > bound {
		t.Errorf("a new device was answered %v after it dialled while Redis hangs, want under %v", d, bound)
	}
	rp.Resume()
	waitFor(t, e, "every edit shown after the resume", func(s syncclient.State) bool { return quantity(s.Cart, "tea") == 3 })
}

// TestUncleanAPIPathsTyped: through the program's own routes, a /v1/ path
// with an empty or dot segment gets the typed 404, not a redirect that
// keeps the method and body and lands on another path (another user's
// cart for the second).
func TestUncleanAPIPathsTyped(t *testing.T) {
	key := strings.Repeat("k", 40)
	m := startMain(t, "-data", t.TempDir(), "-api-keys", key)
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, path := range []string{"/v1/backend/users//cart/ops", "/v1/backend/users/alice/../bob/cart/ops", "/v1/cart/./changes"} {
		req, err := http.NewRequest("POST", m.URL()+path, strings.NewReader(`{"ops":[{"client":"c","seq":1,"kind":"clear"}]}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := noFollow.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body syncserver.ErrorResponse
		derr := json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound || derr != nil || body.Error == nil || body.Error.Code != protocol.ErrInvalid {
			t.Errorf("POST %s: %d %+v (%v), want 404 with a typed invalid error", path, resp.StatusCode, body.Error, derr)
		}
	}
}

// A start that fails because its port is taken has started none of the
// background loops (the purge among them): nothing changes the store of a
// server that never served.
func TestFailedStartRunsNoBackgroundLoop(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	m := NewMain()
	args := []string{"-addr", taken.Addr().String(), "-log-level", "error", "-data", t.TempDir()}
	if err := m.ParseFlags(args, func(string) string { return "" }); err != nil {
		t.Fatal(err)
	}
	if err := m.Run(context.Background()); err == nil {
		m.Close(context.Background())
		t.Fatal("started on a port in use")
	}
	idle := make(chan struct{})
	go func() { m.bg.Wait(); close(idle) }()
	select {
	case <-idle:
	case <-time.After(10 * time.Second):
		t.Error("background loops run after a failed start")
	}
	m.Close(context.Background())
}

// closeWithin returns close's error, and returns without it when close
// hangs past the timeout and the grace period.
func TestCloseWithinDoesNotWaitForAHangingClose(t *testing.T) {
	boom := errors.New("boom")
	if err := closeWithin(func(context.Context) error { return boom }, time.Second, time.Second); err != boom {
		t.Errorf("closeWithin = %v, want close's error", err)
	}
	if err := closeWithin(func(context.Context) error { return nil }, time.Second, time.Second); err != nil {
		t.Errorf("closeWithin = %v, want nil", err)
	}
	hang := make(chan struct{})
	defer close(hang)
	done := make(chan error, 1)
	go func() {
		done <- closeWithin(func(context.Context) error { <-hang; return nil }, 50*time.Millisecond, 50*time.Millisecond)
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "longer than") {
			t.Errorf("closeWithin of a hanging close = %v, want an error saying it took too long", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("closeWithin waited for a close that hangs")
	}
}

// A Redis that answers and refuses the server (a wrong password, a
// database it does not have) fails the start naming the cause: unlike a
// Redis that is down, waiting would not mend it.
func TestRedisThatRefusesFailsTheStart(t *testing.T) {
	rp := storetest.StartRedis(t)
	u, err := url.Parse(rp.URL())
	if err != nil {
		t.Fatal(err)
	}
	admin := goredis.NewClient(&goredis.Options{Addr: rp.Addr})
	defer admin.Close()
	if err := admin.ConfigSet(t.Context(), "requirepass", "the-password").Err(); err != nil {
		t.Fatal(err)
	}
	wrongPass, wrongDB := *u, *u
	wrongPass.User = url.UserPassword("default", "not-the-password")
	wrongDB.User = url.UserPassword("default", "the-password")
	wrongDB.Path = "/99"
	for _, bad := range []string{u.String(), wrongPass.String(), wrongDB.String()} {
		m := NewMain()
		if err := m.ParseFlags([]string{"-addr", "127.0.0.1:0", "-log-level", "error", "-data", t.TempDir(), "-redis-url", bad}, func(string) string { return "" }); err != nil {
			t.Fatal(err)
		}
		err := m.Run(context.Background())
		m.Close(context.Background())
		if err == nil || !strings.Contains(err.Error(), "redis refuses") {
			t.Errorf("%s: start error %v, want redis refuses", bad, err)
		}
	}
}

// Two servers on one data folder would not see each other's updates: the
// second refuses to start, naming the folder; once the first has stopped,
// a server starts on it again.
func TestDataFolderTakesOneServer(t *testing.T) {
	dir := t.TempDir()
	a := startMain(t, "-data", dir)
	b := NewMain()
	if err := b.ParseFlags([]string{"-addr", "127.0.0.1:0", "-log-level", "error", "-data", dir}, func(string) string { return "" }); err != nil {
		t.Fatal(err)
	}
	err := b.Run(context.Background())
	b.Close(context.Background())
	if err == nil || !strings.Contains(err.Error(), "in use by another cartsync") {
		t.Fatalf("a second server on the data folder: %v, want in use", err)
	}
	if err := a.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	startMain(t, "-data", dir)
}

// A fresh server's metrics already have every op status, at 0: a rate
// over them reads as none, not as no data.
func TestMetricsStartAtZero(t *testing.T) {
	m := startMain(t, "-data", t.TempDir())
	resp, err := http.Get(m.URL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, s := range []string{"applied", "duplicate", "rejected"} {
		if want := `cartsync_ops_total{status="` + s + `"} 0`; !strings.Contains(string(body), want) {
			t.Errorf("/metrics has no %s", want)
		}
	}
}

// -metrics-addr serves /metrics on a listener of its own, and the one the
// shoppers reach answers it 404.
func TestMetricsOnTheirOwnAddress(t *testing.T) {
	m := startMain(t, "-data", t.TempDir(), "-metrics-addr", "127.0.0.1:0")
	get := func(url string) (int, string) {
		t.Helper()
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, body := get("http://" + m.metricsLn.Addr().String() + "/metrics"); code != 200 || !strings.Contains(body, "cartsync_connections ") {
		t.Errorf("/metrics on -metrics-addr: %d, %.80q; want 200 and the metrics", code, body)
	}
	if code, _ := get(m.URL() + "/metrics"); code != 404 {
		t.Errorf("/metrics on -addr: %d, want 404", code)
	}
	if code, _ := get(m.URL() + "/readyz"); code != 200 {
		t.Errorf("/readyz on -addr: %d, want 200 (only the metrics move)", code)
	}
}

// What Redis answers for now (too many clients, loading) is not a
// refusal of the server's configuration: the server starts and waits.
func TestRedisBusyIsNotARefusal(t *testing.T) {
	for _, msg := range []string{"ERR max number of clients reached", "LOADING Redis is loading the dataset in memory", "BUSY Redis is busy running a script"} {
		if refusal(goredisError(msg)) {
			t.Errorf("%q taken as a refusal", msg)
		}
	}
	for _, msg := range []string{"WRONGPASS invalid username-password pair or user is disabled.", "NOAUTH Authentication required.", "ERR DB index is out of range", "NOPERM this user has no permissions to run the 'ping' command"} {
		if !refusal(goredisError(msg)) {
			t.Errorf("%q not taken as a refusal", msg)
		}
	}
}

// goredisError is a reply error as go-redis returns it.
type goredisError string

func (e goredisError) Error() string { return string(e) }
func (goredisError) RedisError()     {}

// On SIGTERM with -drain-delay, /readyz answers 503 draining for that long
// while the server still serves, so that a load balancer stops sending it
// shoppers before its listener closes; then it shuts down cleanly.
func TestSIGTERMDrainsBeforeClosing(t *testing.T) {
	bin := buildServer(t)
	addr := freeAddr(t)
	base := "http://" + addr
	proc := startProcess(t, bin, addr, []string{"-data", t.TempDir(), "-drain-delay", "3s"})
	tok := newDevice(t, base)
	exited := make(chan error, 1)
	if err := proc.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	go func() { exited <- proc.Wait() }()

	deadline := time.Now().Add(2 * time.Second)
	for {
		code, status := readiness(t, base)
		if code == http.StatusServiceUnavailable && status == "draining" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz after SIGTERM = %d %q, want 503 draining", code, status)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if resp, err := http.Get(base + "/healthz"); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("/healthz while draining = %v %v, want 200", resp, err)
	} else {
		resp.Body.Close()
	}
	op := cart.Op{Client: "native-1", Seq: 1, Kind: cart.KindAdd, SKU: "JAM", Quantity: 1}
	if res := postOps(t, base, tok, op); res.Results[0].Status != protocol.StatusApplied {
		t.Errorf("an edit while draining: %+v, want applied", res.Results[0])
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("exit after draining: %v, want status 0", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the server did not exit after draining")
	}
}

// A database file the server may read but not write (a restore with the
// wrong owner or mode) fails the start with a clear error, instead of a
// server that is ready and refuses every edit. As root, whom file modes do
// not stop, the server runs as nobody.
func TestReadOnlyDatabaseFailsTheStart(t *testing.T) {
	bin := buildServer(t)
	dir, err := os.MkdirTemp("", "cartsync-readonly")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	data := filepath.Join(dir, "data")
	first := startProcess(t, bin, freeAddr(t), []string{"-data", data})
	first.Process.Signal(syscall.SIGTERM)
	first.Wait()

	// Everyone may enter the folders and run the program; the file is
	// read-only.
	runBin := filepath.Join(dir, "cartsync")
	if out, err := exec.Command("cp", bin, runBin).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	for _, p := range []string{dir, data} {
		if err := os.Chmod(p, 0o777); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(data, "cartsync.db"), 0o444); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(data, "cartsync.lock")); err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	cmd := exec.Command(runBin, "-addr", freeAddr(t), "-data", data)
	if os.Geteuid() == 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	}
	done := make(chan struct{})
	var out []byte
	go func() { out, err = cmd.CombinedOutput(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatal("the server started on a read-only database file and kept running")
	}
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(string(out), "cannot be written") {
		t.Errorf("start on a read-only file: %v\n%s\nwant exit status 1 and an error saying the file cannot be written", err, out)
	}
}

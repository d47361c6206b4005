package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestCartwatchFromAnotherModule builds the example native client, a Go
// module of its own that requires this one (shared/syncclient/example/
// cartwatch), and runs it against the server twice: the second run is the
// same device and cart, and sees the first run's line.
func TestCartwatchFromAnotherModule(t *testing.T) {
	dir := filepath.Join("..", "..", "..", "shared", "syncclient", "example", "cartwatch")
	bin := filepath.Join(t.TempDir(), "cartwatch")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Dir = dir
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build in %s: %v\n%s", dir, err, out)
	}
	m := startMain(t, "-data", t.TempDir())
	base := m.URL()
	tokenFile := filepath.Join(t.TempDir(), "token")
	run := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(bin, append([]string{"-server", base, "-token-file", tokenFile, "-once"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("cartwatch %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	first := run("-add", "TEA", "-quantity", "2")
	if !strings.Contains(first, "acknowledged: cart at version 1") || !strings.Contains(first, "TEA x 2") {
		t.Errorf("first run printed:\n%s\nwant the add acknowledged at version 1 with TEA x 2", first)
	}
	second := run("-add", "JAM")
	if !strings.Contains(second, "acknowledged: cart at version 2") || !strings.Contains(second, "TEA x 2") || !strings.Contains(second, "JAM x 1") {
		t.Errorf("second run printed:\n%s\nwant version 2 with TEA x 2 and JAM x 1 (the same device's cart)", second)
	}
}

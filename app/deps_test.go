//go:build !js

package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestWasmIsClientOnly keeps server code out of the browser build: the
// widget's wasm must not link the sync server, its drivers or its metrics
// (linked in, they would double the download).
func TestWasmIsClientOnly(t *testing.T) {
	cmd := exec.Command("go", "list", "-deps", ".")
	cmd.Env = append(cmd.Environ(), "GOOS=js", "GOARCH=wasm")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 {
		t.Fatalf("go list -deps gave %d packages: %s", len(deps), out)
	}
	forbidden := []string{
		"github.com/cartsync/cartsync/syncserver",
		"github.com/jackc/pgx",
		"github.com/redis/go-redis",
		"modernc.org/sqlite",
		"github.com/prometheus/",
		"github.com/golang-jwt/",
		"github.com/chromedp/",
	}
	for _, d := range deps {
		for _, f := range forbidden {
			if strings.HasPrefix(d, f) {
				t.Errorf("the widget's wasm links %s", d)
			}
		}
	}
	for _, want := range []string{"github.com/cartsync/cartsync/app/widget", "github.com/cartsync/cartsync/shared/syncclient", "github.com/maxence-charriere/go-app/v10/pkg/app"} {
		found := false
		for _, d := range deps {
			found = found || d == want
		}
		if !found {
			t.Errorf("the widget's wasm does not link %s", want)
		}
	}
}

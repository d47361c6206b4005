package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// go-redis's messages come out as JSON log lines, one per period, with
// the number of messages it stands for.
func TestRedisLoggerWritesJSONAndThrottles(t *testing.T) {
	var buf bytes.Buffer
	l := &redisLogger{log: slog.New(slog.NewJSONHandler(&buf, nil)), every: time.Hour}
	for range 3 {
		l.Printf(context.Background(), "redis: connection pool: failed to dial after %d attempts: %s", 1, "connection refused")
	}
	l.last = time.Now().Add(-2 * time.Hour)
	l.Printf(context.Background(), "redis: again")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d log lines, want 2: %q", len(lines), lines)
	}
	var first, second struct {
		Level, Msg, Message string
		Count               int
	}
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(lines[1]), &second); err != nil {
		t.Fatal(err)
	}
	if first.Level != "WARN" || first.Msg != "redis client" || first.Message != "connection pool: failed to dial after 1 attempts: connection refused" || first.Count != 1 {
		t.Errorf("first line %+v", first)
	}
	if second.Message != "again" || second.Count != 3 {
		t.Errorf("second line %+v, want count 3 (two left out)", second)
	}
}

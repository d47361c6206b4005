package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/cartsync/cartsync/shared/logkey"
)

// redisLogger writes go-redis's own messages (a failed dial, a broken
// subscription) as the server's JSON log lines, at most one per every
// redisLogEvery, counting those left out: a Redis that is down makes
// go-redis say so at every dial.
type redisLogger struct {
	log   *slog.Logger
	every time.Duration

	mu      sync.Mutex
	last    time.Time
	dropped int
}

const redisLogEvery = 10 * time.Second

func (l *redisLogger) Printf(ctx context.Context, format string, v ...any) {
	now := time.Now()
	l.mu.Lock()
	if !l.last.IsZero() && now.Sub(l.last) < l.every {
		l.dropped++
		l.mu.Unlock()
		return
	}
	dropped := l.dropped
	l.last, l.dropped = now, 0
	l.mu.Unlock()
	msg := strings.TrimPrefix(fmt.Sprintf(format, v...), "redis: ")
	l.log.WarnContext(ctx, "redis client", logkey.Message, msg, logkey.Count, dropped+1)
}

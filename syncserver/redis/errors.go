package redis

import (
	"context"
	"errors"
	"log/slog"

	goredis "github.com/redis/go-redis/v9"
)

// ErrClosed is returned by a Bus used after Close.
var ErrClosed = errors.New("redis: bus closed")

// plain returns err without go-redis types: context errors stay matchable
// with errors.Is, anything else keeps only its text.
func plain(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, context.Canceled):
		return context.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		return context.DeadlineExceeded
	}
	return errors.New(err.Error())
}

// warnContextTimeouts warns when client ignores context deadlines: the cache
// and the bus bound every Redis call with one, and without
// Options.ContextTimeoutEnabled go-redis waits out its socket timeouts
// instead on a Redis that hangs.
func warnContextTimeouts(client *goredis.Client, log *slog.Logger) {
	if !client.Options().ContextTimeoutEnabled {
		log.Warn("redis: the client ignores context deadlines (Options.ContextTimeoutEnabled is false): a Redis that hangs will hold calls for its socket timeouts")
	}
}

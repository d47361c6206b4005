package redis

import (
	"context"
	"errors"
)

// ErrClosed is returned by a Bus used after Close.
var ErrClosed = errors.New("redis: bus closed")

// Log keys.
const (
	logKeyCart    = "cart"
	logKeyChannel = "channel"
	logKeyError   = "err"
)

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

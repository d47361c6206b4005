package syncclient

import "time"

// backoff returns how long to wait before retry n (0 for the first): full
// jitter, a random duration in [0, min(max, base·2^n)). rnd returns a number
// in [0, 1). Pushes and syncs the server refused are retried on it.
func backoff(n int, base, max time.Duration, rnd func() float64) time.Duration {
	if base <= 0 || max <= 0 {
		return 0
	}
	return time.Duration(rnd() * float64(ceiling(n, base, max)))
}

func ceiling(n int, base, max time.Duration) time.Duration {
	c := base
	for i := 0; i < n && c < max; i++ {
		c *= 2
	}
	return min(c, max)
}

// holdTries is how many reconnection attempts in a row wait at most
// Config.BackoffHold, counted from the first that reaches it.
const holdTries = 12

// redialBackoff returns how long to wait before reconnection attempt n (0
// for the first after a connection ended): full jitter, a random duration
// in [0, c(n)), where the ceiling c doubles from base up to hold, stays at
// hold for holdTries attempts (about half a minute of failures), then
// doubles again up to limit. A server that is back after a restart or a
// short outage is found within hold of its return; a long outage costs a
// dial every limit/2 on average. rnd returns a number in [0, 1).
func redialBackoff(n int, base, hold, limit time.Duration, rnd func() float64) time.Duration {
	if base <= 0 || limit <= 0 {
		return 0
	}
	hold = min(limit, max(hold, base))
	rise := 0 // attempts until the ceiling reaches hold
	for c := base; c < hold; c *= 2 {
		rise++
	}
	c := ceiling(n, base, hold)
	if n >= rise+holdTries {
		c = ceiling(n-(rise+holdTries)+1, hold, limit)
	}
	return time.Duration(rnd() * float64(c))
}

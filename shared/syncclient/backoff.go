package syncclient

import "time"

// backoff returns how long to wait before reconnection attempt n (0 for the
// first retry): full jitter, a random duration in [0, min(max, base·2^n)).
// rnd returns a number in [0, 1).
func backoff(n int, base, max time.Duration, rnd func() float64) time.Duration {
	if base <= 0 || max <= 0 {
		return 0
	}
	ceil := base
	for i := 0; i < n && ceil < max; i++ {
		ceil *= 2
	}
	ceil = min(ceil, max)
	return time.Duration(rnd() * float64(ceil))
}

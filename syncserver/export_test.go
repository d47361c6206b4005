package syncserver

import "time"

// Hooks for the external tests.

const (
	MinRetryAfter = minRetryAfter
	HelloRetryMin = helloRetryMin
	HelloRetryMax = helloRetryMax
)

// SetHandleWait sets how long one message may take, until the test ends.
func SetHandleWait(t interface{ Cleanup(func()) }, d time.Duration) {
	old := handleWait
	handleWait = d
	t.Cleanup(func() { handleWait = old })
}

// SetHelloWait sets how long a hello waits for a slot.
func SetHelloWait(s *Server, d time.Duration) { s.hellos.wait = d }

// TakeHelloSlot holds a hello slot as a hello in progress would, until
// release.
func TakeHelloSlot(s *Server) (release func()) {
	s.hellos.slots <- struct{}{}
	return s.hellos.leave
}

// HellosInProgress is the number of hello slots held.
func HellosInProgress(s *Server) int { return len(s.hellos.slots) }

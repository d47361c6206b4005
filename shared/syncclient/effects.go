package syncclient

import (
	"time"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/shared/protocol"
)

// What the machine asks its driver to do: the effects, and the timers they
// name.

// effect is one thing the machine asks the driver to do.
type effect interface{ isEffect() }

// sendMsg: send m on the connection.
type sendMsg struct{ m *protocol.Message }

// storeConfirm: Storage.Confirm(c, done). The machine has already made the
// same change to its copy of the storage.
type storeConfirm struct {
	c    *cart.Cart
	done []protocol.OpID
}

// storeRestamp: Storage.Restamp(from, to), already made in the copy.
type storeRestamp struct{ from, to string }

// storeReissue: Storage.Reissue(from, expected, to), already made in the
// copy.
type storeReissue struct {
	from     string
	expected uint64
	to       string
}

// storeSwap: Storage.SwapDeviceToken(old, next); the answer goes to
// tokenSwapped.
type storeSwap struct{ old, next string }

// storeLoad: Storage.Load; the answer goes to storageRead.
type storeLoad struct{}

// setTimer arms timer t to fire in d, or stops it when d is 0. The ping
// timer repeats; the others fire once.
type setTimer struct {
	t timerID
	d time.Duration
}

// endConn: close the connection, because of err. No effect follows it
// before the next start, but those before it are carried out.
type endConn struct{ err error }

func (sendMsg) isEffect()      {}
func (storeConfirm) isEffect() {}
func (storeRestamp) isEffect() {}
func (storeReissue) isEffect() {}
func (storeSwap) isEffect()    {}
func (storeLoad) isEffect()    {}
func (setTimer) isEffect()     {}
func (endConn) isEffect()      {}

// timerID names the connection's timers.
type timerID int

const (
	timerPing     timerID = iota // repeats every heartbeat: send a ping, read the storage
	timerSilence                 // nothing heard for 2.5 heartbeats: the connection is dead
	timerDeadline                // a request in flight got no answer in time
	timerStable                  // the connection stayed up: the backoff starts over
	timerRetry                   // the wait before the next push or sync is over
	timerResync                  // no news of the cart for Config.Resync: sync
	timerPush                    // Config.PushDelay after an edit: push
	numTimers
)

func (t timerID) String() string {
	return [...]string{"ping", "silence", "deadline", "stable", "retry", "resync", "push"}[t]
}

// readLater reports whether rest, the effects after a storeLoad, hold a
// storage write: the read is then carried out after them. The machine's
// copy of the storage already holds every write it asked for, so a read
// must see them all, or its answer would put back what they changed.
func readLater(rest []effect) bool {
	for _, e := range rest {
		switch e.(type) {
		case storeConfirm, storeRestamp, storeReissue, storeSwap:
			return true
		}
	}
	return false
}

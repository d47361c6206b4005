package syncclient

import (
	"context"
	"errors"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/shared/protocol"
)

// ErrSuperseded is returned by UserWait.Wait when a later SetUser replaced
// the login or logout before the server answered it.
var ErrSuperseded = errors.New("syncclient: a later login or logout replaced this one before the server answered")

// UserWait is the server's answer to one SetUser, to wait for: see
// Engine.SetUserWait.
type UserWait struct {
	e       *Engine
	login   bool                // a user token was set (else a logout)
	gen     uint64              // Engine.userGen after the SetUser
	changed bool                // the SetUser changed the user: a new hello follows
	live    uint64              // the welcome of the connection open before it
	merge   *protocol.MergeInfo // the merge known before it
}

// LoginResult is the server's answer to a login or logout.
type LoginResult struct {
	// State is the engine's state once the server answered: the user's
	// cart is shown after a login, the guest cart after a logout.
	State State
	// Merge is what the server said of the login merge in answer to this
	// login (status merged, already or choose); nil when it had nothing
	// to report, and for a logout.
	Merge *protocol.MergeInfo
}

// SetUserWait is SetUser, returning what to wait on for the server's answer
// to the hello that presents the new user token (or none, for a logout).
// Call it where SetUser would be called; Wait may then run elsewhere.
func (e *Engine) SetUserWait(token string, policy cart.Policy) (*UserWait, error) {
	e.mu.Lock()
	gen, l, merge := e.login.userGen, e.login.live, e.view.Merge
	e.mu.Unlock()
	if err := e.SetUser(token, policy); err != nil {
		return nil, err
	}
	e.mu.Lock()
	w := &UserWait{e: e, login: token != "", gen: e.login.userGen, live: l, merge: merge}
	e.mu.Unlock()
	w.changed = w.gen != gen
	return w, nil
}

// Wait returns once the server has answered the hello that presents the
// SetUser: with the result when it accepted it (the shown cart is then the
// user's cart, or the guest cart after a logout, as of the hello's reply);
// with the *protocol.Error when it refused the user token (token_expired,
// unauthorized: State.NeedsLogin); with ErrSuperseded when another SetUser
// came first; or with ctx's error. Without a connection it waits until
// there is one: bound it with ctx, and treat its end as "not answered yet"
// (the login stays set, and is presented at the next connection).
func (w *UserWait) Wait(ctx context.Context) (LoginResult, error) {
	e := w.e
	for {
		e.mu.Lock()
		st := e.view
		done, err := e.login.answered(st, w.gen, w.login, w.changed, w.live)
		if done && err == nil && st.MergeSettling {
			// The adds the device had not sent at the login are
			// answered next: their count (MergeLate) goes with the
			// merge.
			done = false
		}
		var merge *protocol.MergeInfo
		if w.login && st.Merge != w.merge {
			merge = st.Merge
		}
		changed := e.changed
		e.mu.Unlock()
		if done {
			if err != nil {
				return LoginResult{}, err
			}
			return LoginResult{State: st, Merge: merge}, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return LoginResult{}, ctx.Err()
		}
	}
}

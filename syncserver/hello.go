package syncserver

import (
	"context"
	"errors"
	"time"

	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/shared/protocol"
)

// The handshake of a connection: the hello (device and user tokens, an
// expired or merged guest cart, a user cart that starts over, the login
// merge, the subscription, the welcome and the first cart), the shopper's
// choice after a login, and joining a cart's updates.

// hello answers a connection's hello: the welcome and its cart. It reports
// whether the connection goes on.
func (ss *session) hello(ctx context.Context, m *protocol.Message) bool {
	s := ss.srv
	if !ss.admitHello(ctx, m.ID) {
		return true // not the client's fault; it comes back later
	}
	defer s.hellos.leave()
	id, perr := s.authenticate(ctx, m.DeviceToken, m.UserToken)
	if perr != nil {
		ss.fail(m.ID, perr)
		return false
	}
	old := id.CartID
	ss.client = m.Client
	// The hello's cart, when it is known without another load.
	var snap *helloCart
	var expired bool
	var mergedInto string
	switch {
	case id.User != "":
		// The login below; the user's cart is loaded after subscribing.
		// A user's cart that expired starts over, told once.
		expired = s.reviveUser(ctx, id)
	case id.Token != "":
		// A device issued just now has no cart yet.
		snap = emptyHelloCart(id.CartID, m.Client)
		s.noteNewCart(ctx, id.CartID)
	default:
		// Subscribe first, then load once: the load both says whether
		// the guest cart can still be used and is the snapshot.
		if !ss.join(ctx, m.ID, id) {
			return false
		}
		rec, err := s.store.Load(ctx, id.CartID, []string{m.Client})
		expired = errors.Is(err, ErrCartExpired)
		if expired || (err == nil && rec.Meta.MergedInto != "") {
			// Expired, or merged into a user cart at an earlier
			// login: a new device token and its new, empty cart.
			if !expired {
				mergedInto = rec.Meta.MergedInto
			}
			s.hub.leave(id.CartID, ss)
			ss.joined = false
			id = s.rotateDevice(id)
			snap = emptyHelloCart(id.CartID, m.Client)
			s.noteNewCart(ctx, id.CartID)
		} else {
			c, seqs, serr := snapshotOf(id.CartID, []string{m.Client}, rec, err)
			s.annotate(ctx, c)
			snap = &helloCart{c, seqs, serr}
		}
	}
	if expired {
		// Told, not silently emptied: the welcome that follows carries
		// a new device token and its fresh cart (a guest's), or the
		// user's new, empty cart under the same id.
		ss.fail(m.ID, errCartExpired(old))
	}
	var merge *protocol.MergeInfo
	var merged *outcome
	if id.User != "" {
		merge, merged = s.login(ctx, id, m.Policy)
	}
	// Subscribe first, then load the snapshot: a change committed in
	// between arrives as a push the client can order by version.
	if !ss.joined && !ss.join(ctx, m.ID, id) {
		return false
	}
	lim := s.lim
	welcome := &protocol.Message{
		Type: protocol.TypeWelcome, ID: m.ID, Protocol: m.Protocol, DeviceToken: id.Token,
		CartID: id.CartID, HeartbeatMS: int(s.cfg.Heartbeat / time.Millisecond), Limits: &lim,
	}
	if id.User != "" {
		welcome.User, welcome.GuestCartID = id.User, s.guestFor(ctx, id)
	}
	if mergedInto != "" {
		welcome.PrevCartID, welcome.MergedInto = old, mergedInto
	}
	ss.reply(welcome)
	if merge != nil {
		ss.reply(&protocol.Message{Type: protocol.TypeMerge, ID: m.ID, Merge: merge})
	}
	if snap != nil {
		since := m.Since
		if id.CartID != old {
			since = 0 // of the cart the device had before its new token
		}
		ss.replySince(ctx, m.ID, snap.cart, snap.seqs, snap.err, []string{m.Client}, since)
	} else {
		ss.sendSnapshot(ctx, m.ID, []string{m.Client}, m.Since)
	}
	ss.greet()
	if merged != nil {
		s.publish(ctx, id.CartID, merged)
	}
	if id.User != "" && !id.Expires.IsZero() {
		// Pings keep a connection open for ever: the token's end ends
		// the user's access on it too, even while it is idle.
		var t *time.Timer
		t = time.AfterFunc(time.Hour, func() {
			if !ss.tokenExpired("") { // the server's clock is behind the timer's
				t.Reset(max(id.Expires.Sub(s.now()), time.Millisecond))
			}
		})
		t.Reset(max(id.Expires.Sub(s.now()), 0))
		ss.expiry = t
	}
	return true
}

// choose carries out the shopper's pick after a login with policy choose.
func (ss *session) choose(ctx context.Context, m *protocol.Message) {
	if ss.id.User == "" {
		ss.fail(m.ID, protocol.Errorf(protocol.ErrInvalid, "choose needs a logged-in connection"))
		return
	}
	merge, merged := ss.srv.login(ctx, ss.id, m.Policy)
	if merge == nil {
		merge = &protocol.MergeInfo{Status: protocol.MergeAlready}
	}
	ss.reply(&protocol.Message{Type: protocol.TypeMerge, ID: m.ID, Merge: merge})
	if merged != nil {
		ss.srv.publish(ctx, ss.id.CartID, merged)
	}
}

// join subscribes the connection to id's cart as id, answering reqID with
// an error if it cannot.
func (ss *session) join(ctx context.Context, reqID string, id Identity) bool {
	s := ss.srv
	ss.id = id
	if err := s.hub.join(ctx, id.CartID, ss); err != nil {
		ss.fail(reqID, s.failure("subscribe", id.CartID, err))
		return false
	}
	ss.joined = true
	return true
}

// helloCart is the cart a hello answers with, when it is known before the
// welcome.
type helloCart struct {
	cart *cart.Cart
	seqs map[string]uint64
	err  error
}

// emptyHelloCart is the cart of a device token issued just now.
func emptyHelloCart(cartID, client string) *helloCart {
	return &helloCart{cart: &cart.Cart{ID: cartID, Lines: []*cart.Line{}}, seqs: map[string]uint64{client: 0}}
}

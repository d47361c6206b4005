package syncclient

import (
	"github.com/cartsync/cartsync/shared/cart"
	"github.com/cartsync/cartsync/shared/protocol"
)

// Logins in the machine: the user token and policy the next hellos
// present, and whether the server has answered a login.

// setUser sets the user token and merge policy of the next hellos. It
// reports whether they changed (or a login was needed): then an open
// connection ends (userChanged) and the next one presents them.
func (m *machine) setUser(token string, policy cart.Policy) bool {
	if token == "" {
		policy = ""
	}
	if m.userSet && token == m.userToken && policy == m.policy && !m.needsLogin {
		return false
	}
	wasHidden := m.hidden()
	m.userSet, m.userToken, m.policy = true, token, policy
	m.userGen++
	m.needsLogin = false
	m.choice = nil    // a choice belongs to the login it was asked for
	m.elsewhere = nil // so does news of another device's login into it
	if token == "" {
		m.loggedOut = true
		m.forgetAccountNotices("")
	}
	m.hide(wasHidden)
	return true
}

// forgetAccountNotices drops what was told about the account's cart (it
// expired or was erased, a merge into it, edits refused, reduced or
// dropped): not the next person's to see, after a logout or when another
// account logs in. A notice that keep, the next account's cart, is gone
// stays ("" for none).
func (m *machine) forgetAccountNotices(keep string) {
	if keep == "" || m.toldGone != keep {
		m.cartExpired, m.cartErased, m.toldGone = false, false, ""
	}
	m.setMerge(nil)
	m.rejected, m.warned, m.dropped = nil, nil, nil
	m.changed = true
}

// hide shows the cart anew after the user changed, and moves new ops to a
// fresh client id when an account's cart has just been hidden: the ops
// made while it is hidden go to whichever cart the server names next, and
// a client id's seqs count per cart, so they must not share one with ops
// still queued for the account (a login merge would take the other cart's
// seq for it, and the account's queued ops would be answered duplicate).
func (m *machine) hide(wasHidden bool) {
	if !wasHidden && m.hidden() {
		m.rotate("the account's cart is hidden")
	}
	m.rebuild()
}

// hidden reports whether the confirmed cart is a user's while no user is
// logged in on this device: logged out (SetUser("")), or NoUser said no
// login is coming. The shown cart is then empty but for the edits made
// since, until the server names the cart of this device or the user logs
// in again: a shared device does not show the last account's cart to the
// next person, not even offline, and their edits do not go into it.
//
// After a logout or NoUser, a login shows an account's cart only once the
// server has welcomed that login to it: the next person logging in, or a
// token the server refuses, must not uncover the last account's cart.
func (m *machine) hidden() bool {
	switch {
	case m.confirmed.User == "":
		return false
	case !m.userSet:
		return m.noUser
	case m.userToken == "":
		return true
	}
	welcomed := m.sessCart == m.confirmed.ID && m.sessGen == m.userGen && m.sessUser == m.confirmed.User
	return (m.noUser || m.loggedOut) && !welcomed
}

// ownedCopy returns c marked with the user whose cart it is, when the
// machine knows it (the latest welcome's cart, or the confirmed cart so
// marked): the marking is stored with the cart, so that after a reload the
// machine still knows a user cart from a guest one (hidden). The server
// never sends it.
func (m *machine) ownedCopy(c *cart.Cart) *cart.Cart {
	if c == nil || c.User != "" {
		return c
	}
	user := ""
	switch {
	case c.ID == m.sessCart && m.sessUser != "":
		user = m.sessUser
	case c.ID == m.confirmed.ID:
		user = m.confirmed.User
	}
	if user == "" {
		return c
	}
	out := cloneCart(c)
	out.User = user
	return out
}

// loginView is what UserWait needs to know of the machine besides State,
// published with it.
type loginView struct {
	userGen     uint64 // machine.userGen
	live        uint64 // machine.live
	sessGen     uint64 // machine.sessGen
	sessOnShown bool   // the latest welcome is about the confirmed cart
	sessUser    string // its user
}

func (m *machine) loginView() loginView {
	return loginView{
		userGen: m.userGen, live: m.live, sessGen: m.sessGen,
		sessOnShown: m.sessCart != "" && m.sessCart == m.confirmed.ID, sessUser: m.sessUser,
	}
}

// answered reports whether the server answered the login or logout of
// generation gen (login: a user token was set), and the error if it
// refused it, as far as st and v show. changed: that setUser changed the
// user, so the answer comes on a connection welcomed after welcome live.
func (v loginView) answered(st State, gen uint64, login, changed bool, live uint64) (bool, error) {
	if v.userGen != gen {
		return true, ErrSuperseded
	}
	if st.NeedsLogin { // set only for a hello of this generation
		if pe := st.LastError; pe != nil && (pe.Code == protocol.ErrTokenExpired || pe.Code == protocol.ErrUnauthorized) {
			return true, pe
		}
		return true, protocol.Errorf(protocol.ErrUnauthorized, "user token refused")
	}
	// A connection opened after the setUser (a changed user ends the old
	// one) whose hello was answered: its status leaves connecting only
	// once the hello's cart reply is taken, and then the confirmed cart
	// is the welcome's.
	if v.live == 0 || (changed && v.live == live) {
		return false, nil
	}
	if st.Status != Syncing && st.Status != Synced {
		return false, nil
	}
	if !v.sessOnShown || v.sessGen != gen {
		return false, nil // not the answer to a hello of this setUser
	}
	return (v.sessUser != "") == login, nil
}

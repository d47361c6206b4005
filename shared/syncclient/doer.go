package syncclient

import "net/http"

// Doer sends an HTTP request: *http.Client is one.
type Doer interface {
	Do(*http.Request) (*http.Response, error)
}

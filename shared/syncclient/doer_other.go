//go:build !js

package syncclient

import "net/http"

func defaultDoer() Doer { return http.DefaultClient }

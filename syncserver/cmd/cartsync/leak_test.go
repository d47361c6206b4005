package main

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if a test leaves a goroutine running: the
// program's servers, background jobs and connections all end with Close.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

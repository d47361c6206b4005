//go:build !unix

package main

import "io"

type noLock struct{}

func (noLock) Close() error { return nil }

// lockDataDir does not lock where flock is missing: run one server per
// data folder.
func lockDataDir(string) (io.Closer, error) { return noLock{}, nil }

// Package greet gives hello a function in a second package of the project.
package greet

import "strings"

//go:noinline
func Hello(who string) string { return "hello, " + strings.ToUpper(who) }

package storetest

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"testing"
)

// Environment variables that configure the test services.
const (
	EnvPostgresURL     = "CARTSYNC_TEST_POSTGRES_URL"
	EnvRedisURL        = "CARTSYNC_TEST_REDIS_URL"
	EnvRequireServices = "CARTSYNC_REQUIRE_SERVICES"
)

// PostgresURL returns the URL of the test Postgres server from
// CARTSYNC_TEST_POSTGRES_URL. If it is unset the test fails under CI or
// with CARTSYNC_REQUIRE_SERVICES=1, and is skipped otherwise.
func PostgresURL(t testing.TB) string {
	t.Helper()
	return serviceURL(t, EnvPostgresURL, "Postgres")
}

// RedisURL returns the URL of the test Redis server from
// CARTSYNC_TEST_REDIS_URL. If it is unset the test fails under CI or with
// CARTSYNC_REQUIRE_SERVICES=1, and is skipped otherwise.
func RedisURL(t testing.TB) string {
	t.Helper()
	return serviceURL(t, EnvRedisURL, "Redis")
}

func serviceURL(t testing.TB, env, service string) string {
	t.Helper()
	url, required, msg := lookupService(os.Getenv, env, service)
	switch {
	case url != "":
		return url
	case required:
		t.Fatal(msg)
	default:
		t.Skip(msg)
	}
	return ""
}

// lookupService decides what a test needing service does: use the URL, or
// fail (required) or skip with msg.
func lookupService(getenv func(string) string, env, service string) (url string, required bool, msg string) {
	if url = getenv(env); url != "" {
		return url, false, ""
	}
	switch {
	case getenv("CI") != "":
		return "", true, fmt.Sprintf("%s is not set: %s tests cannot run, and under CI (CI=%q) a missing service fails the test", env, service, getenv("CI"))
	case getenv(EnvRequireServices) == "1":
		return "", true, fmt.Sprintf("%s is not set: %s tests cannot run, and %s=1 requires them", env, service, EnvRequireServices)
	}
	return "", false, fmt.Sprintf("SKIPPED: %s is not set, so this %s test did not run; set it (and %s=1 to make this a failure)", env, service, EnvRequireServices)
}

// UniqueName returns a name unique to this call, made from the test's name
// and random bits. It is a valid unquoted SQL identifier: lower case
// letters, digits and underscores, starting with a letter, at most 63
// bytes (Postgres's limit).
func UniqueName(t testing.TB) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("t_")
	for _, r := range strings.ToLower(t.Name()) {
		if b.Len() >= 40 {
			break
		}
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	var rnd [8]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		t.Fatalf("unique name: %v", err)
	}
	b.WriteByte('_')
	b.WriteString(hex.EncodeToString(rnd[:]))
	return b.String()
}

// KeyPrefix returns a Redis key prefix unique to this call, so tests
// sharing a server never see each other's keys.
func KeyPrefix(t testing.TB) string {
	t.Helper()
	return "cartsync-test:" + UniqueName(t) + ":"
}

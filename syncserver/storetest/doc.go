// Package storetest holds the contract suites every syncserver.Store
// ([RunStore]) and syncserver.Bus ([RunBus]) passes, and the test
// environment for packages that need real services.
//
// An adapter's test runs a suite against a fresh store per subtest:
//
//	func TestStore(t *testing.T) {
//		storetest.RunStore(t, func(t testing.TB) syncserver.Store {
//			return openTestStore(t)
//		})
//	}
//
// Real services are found through environment variables read by
// [PostgresURL] and [RedisURL]. A test whose service is not configured is
// skipped, loudly, on a developer machine; under CI (CI set) or with
// CARTSYNC_REQUIRE_SERVICES=1 it fails instead, so a misconfigured pipeline
// cannot pass by skipping. Each test isolates its data with [UniqueName]
// (a Postgres schema) or [KeyPrefix] (Redis keys).
//
// The package imports no database driver: only the adapters do.
package storetest

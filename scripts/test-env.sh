# Sourced by scripts/test.sh and scripts/sanitize.sh: what every test run needs. Installs the
# test dependencies, makes an unmet test requirement a failure (BOOTPOLICY_REQUIRE_ALL: a run
# cannot go green with tests skipped), and starts a throwaway PostgreSQL on a loopback port
# for the PostgreSQL store's tests, stopped and removed at exit. Without it those tests fail.
scripts/deps.sh test || exit 1
export BOOTPOLICY_REQUIRE_ALL=1
if pg_env=$(scripts/pg.sh start); then
  eval "$pg_env"
  trap 'scripts/pg.sh stop "$BP_PG_DIR"' EXIT
  echo "postgres: $BOOTPOLICY_TEST_POSTGRES"
else
  echo "postgres: could not start a test server; its tests will fail"
fi

#!/usr/bin/env bats
# Every step script answers --help with exit 0 and rejects unknown flags with exit 2; the monitoring
# checks (health, watch) say UNKNOWN (exit 3, first line POSTHOG UNKNOWN - ...) instead.

setup() {
  load '../../node_modules/bats-support/load'
  load '../../node_modules/bats-assert/load'
  cd "$BATS_TEST_DIRNAME/../.."
}

scripts() {
  ls scripts/*.mts remote/*.mts 2>/dev/null | grep -v '/bundle.mts$' || true
}

@test "every script prints --help and exits 0" {
  for s in $(scripts); do
    run timeout 30 node --import tsx "$s" --help
    assert_success
    assert_output --partial 'Usage:'
  done
}

@test "every script rejects an unknown flag with exit 2 and one line" {
  for s in $(scripts | grep -v -e '/health.mts$' -e '/watch.mts$'); do
    run timeout 30 node --import tsx "$s" --no-such-flag
    assert_equal "$status" 2
    assert_equal "${#lines[@]}" 1
  done
}

@test "the monitoring checks answer an unknown flag with UNKNOWN, exit 3" {
  for s in scripts/health.mts remote/watch.mts; do
    run timeout 30 node --import tsx "$s" --no-such-flag
    assert_equal "$status" 3
    assert_line --index 0 --regexp "^POSTHOG UNKNOWN - (health|watch): Unknown option '--no-such-flag'"
  done
}

#!/bin/sh
# Registers the namespace and smartcopy's search attributes on the compose
# Temporal server. Safe to run again: it adds only what is missing.
set -eu

ns="${TEMPORAL_NAMESPACE:-default}"
# The temporal CLI reads TEMPORAL_ADDRESS itself.

# A new namespace takes a few seconds to reach every service, so each step is
# retried rather than run once.
retry() {
  n=0
  until "$@"; do
    n=$((n + 1))
    if [ "$n" -ge 30 ]; then
      echo "giving up: $*" >&2
      return 1
    fi
    sleep 2
  done
}

retry temporal operator cluster health
if ! temporal operator namespace describe --namespace "$ns" >/dev/null 2>&1; then
  retry temporal operator namespace create --namespace "$ns" --retention 72h
fi
for name in TraderID FollowerID CopyStatus; do
  if ! temporal operator search-attribute list --namespace "$ns" | grep -qw "$name"; then
    retry temporal operator search-attribute create --namespace "$ns" --name "$name" --type Keyword
  fi
done
temporal operator search-attribute list --namespace "$ns"

#!/bin/sh
# Bazel's --workspace_status_command (.bazelrc): the git revision for //lib/common:build_info.
# STABLE_ keys rebuild what reads them when they change; BUILD_TIMESTAMP (volatile) is Bazel's own.
rev="$(git rev-parse --short=12 HEAD 2>/dev/null)" || rev=""
if [ -z "$rev" ]; then
  rev=unknown
elif ! git diff --quiet HEAD 2>/dev/null; then
  rev="$rev-dirty"
fi
echo "STABLE_GIT_REVISION $rev"

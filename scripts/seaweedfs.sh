#!/usr/bin/env bash
# Build SeaweedFS's `weed` (the S3-compatible server of tests/integration/shared) from the Go
# module proxy into .cache/seaweedfs/bin/ and print its path. `go install pkg@version` refuses
# this module (its go.mod has replace directives), so it is downloaded and built as the main
# module. Idempotent: instant once built. Needs Go 1.26+ (never downloads a toolchain).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SEAWEEDFS_VERSION=v0.0.0-20261109003541-7506e5f91cd6  # SeaweedFS 4.53
dir="$root/.cache/seaweedfs"
bin="$dir/bin/weed"
say() { echo "seaweedfs.sh: $*" >&2; }
if [ "$(cat "$dir/weed.stamp" 2>/dev/null)" = "$SEAWEEDFS_VERSION" ] && [ -x "$bin" ]; then
  echo "$bin"; exit 0
fi
command -v go >/dev/null 2>&1 || { say "go not found: Go 1.26+ builds SeaweedFS"; exit 1; }
export GOTOOLCHAIN=local GOFLAGS="-buildvcs=false -mod=readonly"
start=$SECONDS
src="$(go mod download -json "github.com/seaweedfs/seaweedfs@$SEAWEEDFS_VERSION" \
  | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
[ -d "$src" ] || { say "cannot download github.com/seaweedfs/seaweedfs@$SEAWEEDFS_VERSION"; exit 1; }
mkdir -p "$dir/bin"
(cd "$src" && go build -trimpath -ldflags="-s -w" -o "$bin.tmp" ./weed)
mv "$bin.tmp" "$bin"
echo "$SEAWEEDFS_VERSION" > "$dir/weed.stamp"
say "SeaweedFS $SEAWEEDFS_VERSION built in $((SECONDS - start)) s"
echo "$bin"

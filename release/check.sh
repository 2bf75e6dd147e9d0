#!/usr/bin/env bash
# Makes every release archive locally, publishing nothing, and checks them
# as a user would meet them; then runs the setup action (action.yml) against
# those archives. .ci/run runs it.
#
#   release/check.sh             # needs goreleaser on PATH or in $(go env GOPATH)/bin
#
# It builds what is committed, in a clone (GoReleaser reads the commit and
# the remote from git; a clone has both), and keeps the archives in
# $RTEMU_RELEASE_DIST (default: a temporary folder, removed at the end).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n== release check: %s\n' "$*"; }
fail() { printf 'release check FAILED: %s\n' "$*" >&2; exit 1; }

goreleaser=$(command -v goreleaser || echo "$(go env GOPATH)/bin/goreleaser")
[ -x "$goreleaser" ] || fail "goreleaser is not installed: go install github.com/goreleaser/goreleaser/v2@v2.17.0"

tmp=$(mktemp -d)
# Whatever happens, the action's rtemu is stopped (its post step) and the
# temporary folder goes.
cleanup() {
  if [ -s "$tmp/rtemu-action/pid" ]; then
    RUNNER_TEMP=$tmp bash "$tmp/src/action/setup-rtemu.sh" stop >/dev/null 2>&1 || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
git clone -q "$PWD" "$tmp/src"
cd "$tmp/src"

say "goreleaser check"
"$goreleaser" check

say "snapshot: every archive, checksums and the Homebrew cask, nothing published"
# The image needs buildx and QEMU (the release workflow has them); the
# image itself is tested from the same Dockerfile shape by TestDockerImage.
IMAGE_OWNER=local HOMEBREW_TAP_TOKEN=unused \
  "$goreleaser" release --snapshot --clean --skip=docker,publish

version=$(sed -n 's/.*"version": *"\([^"]*\)".*/\1/p' dist/metadata.json | head -1)
commit=$(git rev-parse HEAD)
[ -n "$version" ] || fail "no version in dist/metadata.json"
for target in darwin_arm64 darwin_amd64 linux_amd64 linux_arm64; do
  [ -s "dist/rtemu_${version}_${target}.tar.gz" ] || fail "no archive for $target"
done
[ -s "dist/rtemu_${version}_windows_amd64.zip" ] || fail "no archive for windows_amd64"
(cd dist && sha256sum -c checksums.txt) || fail "checksums.txt does not match the archives"
[ "$(wc -l <dist/checksums.txt)" -eq 5 ] || fail "checksums.txt should list 5 archives: $(cat dist/checksums.txt)"
grep -q "version \"$version\"" dist/homebrew/Casks/rtemu.rb || fail "the cask does not name $version"

say "the archives start"
tar -xzf "dist/rtemu_${version}_linux_amd64.tar.gz" -C "$tmp" rtemu
out=$("$tmp/rtemu" version)
echo "$out"
[[ $out == "rtemu v$version (commit ${commit:0:12}"* ]] || fail "rtemu version says \"$out\", want v$version and commit ${commit:0:12}"
# The release binary carries both agents: nothing to build at run time.
for arch in amd64 arm64; do
  grep -c "rtemu-agent-linux-$arch" <(strings "$tmp/rtemu" 2>/dev/null || tr -c '[:print:]' '\n' <"$tmp/rtemu") >/dev/null ||
    fail "the linux/amd64 binary does not embed the $arch agent"
done
for target in darwin_arm64 darwin_amd64 linux_arm64; do
  tar -tzf "dist/rtemu_${version}_${target}.tar.gz" | grep -cx rtemu >/dev/null || fail "$target archive has no rtemu"
done
unzip -l "dist/rtemu_${version}_windows_amd64.zip" | grep -c ' rtemu.exe$' >/dev/null || fail "windows archive has no rtemu.exe"
echo "darwin and windows binaries cannot run here: their archives were listed, not started"

say "the setup action, from these archives"
# The release layout GitHub serves, as file:// URLs.
mkdir -p "$tmp/releases/download/v$version"
cp dist/checksums.txt dist/rtemu_"${version}"_*.tar.gz dist/rtemu_"${version}"_*.zip "$tmp/releases/download/v$version/"
image=$(go run ./emulatortest/cmd/testimage)
touch "$tmp/github_env" "$tmp/github_path" "$tmp/github_output"
export RUNNER_TEMP=$tmp GITHUB_ENV=$tmp/github_env GITHUB_PATH=$tmp/github_path GITHUB_OUTPUT=$tmp/github_output
# Inputs reach the action as INPUT_<NAME> with the name's hyphens kept, as
# the runner passes them (so not through `export`).
inputs=(RTEMU_RELEASES="file://$tmp/releases" INPUT_VERSION="v$version" "INPUT_API-KEY=rt_test_releasecheck00000000000000000000"
  INPUT_ADDR=127.0.0.1:17571 "INPUT_SSH-ADDR=127.0.0.1:17572" "INPUT_WAIT-SECONDS=60"
  "INPUT_ARGS=--template base-ubuntu=$image")
env "${inputs[@]}" node action/main.js
grep -qx 'RUNTOOLS_API_URL=http://127.0.0.1:17571' "$GITHUB_ENV" || fail "RUNTOOLS_API_URL not exported: $(cat "$GITHUB_ENV")"
grep -qx 'RUNTOOLS_API_KEY=rt_test_releasecheck00000000000000000000' "$GITHUB_ENV" || fail "RUNTOOLS_API_KEY not exported"
grep -qx "$tmp/rtemu-action/bin" "$GITHUB_PATH" || fail "rtemu not put on PATH"
api=http://127.0.0.1:17571
curl -sf "$api/health" | grep -c "\"version\":\"v$version\"" >/dev/null || fail "/health does not say v$version"
created=$(curl -s -X POST -H 'X-API-Key: rt_test_releasecheck00000000000000000000' -H 'Content-Type: application/json' \
  -d '{"template":"base-ubuntu"}' "$api/v1/sandboxes" || true)
id=$(printf '%s' "$created" | node -e 'let s = ""; process.stdin.on("data", (d) => { s += d; }).on("end", () => { try { console.log(JSON.parse(s).data.id); } catch (e) { /* not JSON: no id */ } });')
[ -n "$id" ] || fail "no sandbox made through the action's rtemu: $created"
deadline=$((SECONDS + 60))
until [ -n "$(docker ps -q --filter "label=rtemu.sandbox=$id")" ]; do
  [ $SECONDS -lt $deadline ] || fail "sandbox $id has no running container after 60 s"
  sleep 0.5
done
env "${inputs[@]}" node action/post.js
pid_left=$(pgrep -f "$tmp/rtemu-action/bin/rtemu" || true)
[ -z "$pid_left" ] || fail "rtemu still runs after the post step: $pid_left"
[ -z "$(docker ps -aq --filter "label=rtemu.sandbox=$id")" ] || fail "sandbox $id's container outlived the action"
if [ -n "${RTEMU_RELEASE_DIST:-}" ]; then
  mkdir -p "$RTEMU_RELEASE_DIST" && cp -r dist/. "$RTEMU_RELEASE_DIST/"
fi
echo "release check OK: 5 archives, checksums, cask, version v$version, setup action start/stop"

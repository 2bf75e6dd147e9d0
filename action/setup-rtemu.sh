#!/usr/bin/env bash
# The steps of rtemu's setup action (action.yml), usable on their own:
#
#   setup-rtemu.sh start   install a release, start `rtemu serve` in the
#                          background with --ephemeral semantics, wait for
#                          /health, export RUNTOOLS_API_URL and RUNTOOLS_API_KEY
#   setup-rtemu.sh stop    stop it; an --ephemeral rtemu removes every
#                          sandbox it made before it exits
#
# Settings (environment): RTEMU_VERSION (vX.Y.Z or latest),
# RTEMU_ACTION_API_KEY, RTEMU_ACTION_ADDR, RTEMU_ACTION_SSH_ADDR,
# RTEMU_WAIT_SECONDS, RTEMU_SERVE_ARGS, RTEMU_RELEASES (the releases' base
# URL; a file:// URL for a local check), RTEMU_ACTION_DIR (its state),
# GITHUB_ENV / GITHUB_PATH / GITHUB_OUTPUT (written when set).
set -euo pipefail

version=${RTEMU_VERSION:-latest}
releases=${RTEMU_RELEASES:-https://github.com/rtemu-dev/rtemu/releases}
key=${RTEMU_ACTION_API_KEY:-rt_test_rtemuci0000000000000000000000000}
addr=${RTEMU_ACTION_ADDR:-127.0.0.1:7070}
ssh_addr=${RTEMU_ACTION_SSH_ADDR:-127.0.0.1:2222}
wait_seconds=${RTEMU_WAIT_SECONDS:-90}
dir=${RTEMU_ACTION_DIR:-${RUNNER_TEMP:-${TMPDIR:-/tmp}}/rtemu-action}

say() { printf 'setup-rtemu: %s\n' "$*"; }
fail() { printf '::error::setup-rtemu: %s\n' "$*"; exit 1; }

sha256() {
  if command -v sha256sum >/dev/null 2>&1; then sha256sum "$1" | cut -d' ' -f1
  else shasum -a 256 "$1" | cut -d' ' -f1; fi
}

install() {
  local os arch tag archive url
  case $(uname -s) in
    Linux) os=linux ;; Darwin) os=darwin ;;
    MINGW*|MSYS*|CYGWIN*) os=windows ;;
    *) fail "no rtemu release for $(uname -s)" ;;
  esac
  case $(uname -m) in
    x86_64|amd64) arch=amd64 ;; arm64|aarch64) arch=arm64 ;;
    *) fail "no rtemu release for $(uname -m)" ;;
  esac
  tag=$version
  if [ "$tag" = latest ]; then
    # GitHub answers /releases/latest with a redirect to /releases/tag/vX.Y.Z.
    tag=$(curl -sSfL --max-time 30 -o /dev/null -w '%{url_effective}' "$releases/latest")
    tag=${tag##*/}
    [[ $tag == v* ]] || fail "could not tell the latest release from $releases/latest"
  fi
  archive="rtemu_${tag#v}_${os}_${arch}.tar.gz"
  [ "$os" = windows ] && archive="rtemu_${tag#v}_${os}_${arch}.zip"
  url="$releases/download/$tag"
  mkdir -p "$dir/bin" "$dir/download"
  say "installing rtemu $tag ($os/$arch) from $url"
  curl -sSfL --retry 3 --max-time 300 -o "$dir/download/$archive" "$url/$archive" || fail "download $url/$archive"
  curl -sSfL --retry 3 --max-time 60 -o "$dir/download/checksums.txt" "$url/checksums.txt" || fail "download $url/checksums.txt"
  want=$(awk -v f="$archive" '$2 == f {print $1}' "$dir/download/checksums.txt")
  [ -n "$want" ] || fail "$archive is not in checksums.txt"
  [ "$(sha256 "$dir/download/$archive")" = "$want" ] || fail "$archive does not match checksums.txt"
  case $archive in
    *.zip) unzip -o -q "$dir/download/$archive" rtemu.exe -d "$dir/bin" ;;
    *) tar -xzf "$dir/download/$archive" -C "$dir/bin" rtemu ;;
  esac
  [ -n "${GITHUB_PATH:-}" ] && echo "$dir/bin" >>"$GITHUB_PATH"
  "$dir/bin/rtemu" version
}

start() {
  install
  # Something else answering there would pass for this rtemu.
  if curl -s --max-time 2 -o /dev/null "http://$addr/"; then
    fail "something already answers at $addr: stop it, or give the action another addr"
  fi
  mkdir -p "$dir/data"
  # --ephemeral: its state is temporary and its sandboxes are removed when
  # it stops (the post step), so a job leaves nothing behind.
  # shellcheck disable=SC2086 # RTEMU_SERVE_ARGS is a list of flags
  RTEMU_EPHEMERAL=true RTEMU_ADDR=$addr RTEMU_SSH_ADDR=$ssh_addr RTEMU_API_KEYS=$key \
    nohup "$dir/bin/rtemu" serve ${RTEMU_SERVE_ARGS:-} >"$dir/rtemu.log" 2>&1 </dev/null &
  echo $! >"$dir/pid"
  local deadline=$((SECONDS + wait_seconds))
  until curl -sf --max-time 2 "http://$addr/health" >/dev/null; do
    if ! kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
      cat "$dir/rtemu.log"; fail "rtemu exited before it answered /health"
    fi
    if [ $SECONDS -ge $deadline ]; then
      cat "$dir/rtemu.log"; curl -s --max-time 2 "http://$addr/health" || true
      fail "rtemu did not answer /health within ${wait_seconds}s"
    fi
    sleep 0.5
  done
  say "rtemu answers at http://$addr (pid $(cat "$dir/pid"), log $dir/rtemu.log)"
  if [ -n "${GITHUB_ENV:-}" ]; then
    { echo "RUNTOOLS_API_URL=http://$addr"; echo "RUNTOOLS_API_KEY=$key"; } >>"$GITHUB_ENV"
  fi
  [ -n "${GITHUB_OUTPUT:-}" ] && echo "api-url=http://$addr" >>"$GITHUB_OUTPUT"
  return 0
}

stop() {
  [ -s "$dir/pid" ] || { say "rtemu was not started"; return 0; }
  local pid deadline
  pid=$(cat "$dir/pid")
  if kill -TERM "$pid" 2>/dev/null; then
    # rtemu waits up to 30 s for its shutdown; give it a little more.
    deadline=$((SECONDS + 45))
    while kill -0 "$pid" 2>/dev/null; do
      if [ $SECONDS -ge $deadline ]; then
        kill -KILL "$pid" 2>/dev/null || true
        tail -n 50 "$dir/rtemu.log"; fail "rtemu did not stop within 45s; killed"
      fi
      sleep 0.2
    done
  fi
  rm -f "$dir/pid"
  say "rtemu stopped; its log:"
  tail -n 20 "$dir/rtemu.log" || true
}

case ${1:-} in
  start) start ;;
  stop) stop ;;
  install) install ;;
  *) echo "usage: setup-rtemu.sh start|stop|install" >&2; exit 2 ;;
esac

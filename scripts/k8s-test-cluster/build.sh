#!/bin/bash
# Builds the Kubernetes components from the Go module proxy (or a warm GOMODCACHE)
# into $K8S_BIN (default $K8S_DIR/bin; see config.sh). Reads only src/ of this folder,
# which may be read-only.
#
#   ./build.sh                       # kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl
#   ./build.sh kube-scheduler        # only these
#   K8S_BIN=/some/dir ./build.sh     # another output folder
#
# Needs Go >= 1.24. A cold build compiles ~2600 packages (~3 GB GOCACHE, ~86 MB of
# module zips); with a warm GOCACHE it only links (seconds per binary).
set -euo pipefail
. "$(dirname "$0")/config.sh"
OUT=$K8S_BIN
mkdir -p "$OUT"
cd "$K8S_SRC/src"
[ -n "$K8S_VERSION" ] || { echo "build.sh: no 'require k8s.io/kubernetes vX.Y.Z' line in src/go.mod" >&2; exit 1; }
minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
V=k8s.io/component-base/version
CV=k8s.io/client-go/pkg/version
LD="-s -w -X $V.gitVersion=$K8S_VERSION -X $V.gitMajor=1 -X $V.gitMinor=$minor -X $V.gitTreeState=clean"
LD="$LD -X $V.gitCommit=0000000000000000000000000000000000000000 -X $V.buildDate=2026-01-01T00:00:00Z"
LD="$LD -X $CV.gitVersion=$K8S_VERSION -X $CV.gitMajor=1 -X $CV.gitMinor=$minor"
# GOWORK=off: ignore any go.work above this folder; -mod=readonly: never write go.mod/go.sum here.
export GOWORK=off CGO_ENABLED=0
targets=("$@"); [ ${#targets[@]} -gt 0 ] || targets=(kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl)
for c in "${targets[@]}"; do
  case $c in
    kube-apiserver|kube-controller-manager|kube-scheduler|kubelet|kubectl) pkg=k8s.io/kubernetes/cmd/$c ;;
    *) echo "build.sh: unknown target $c" >&2; exit 2 ;;
  esac
  s=$(date +%s)
  nice -n "${BUILD_NICE:-15}" go build -mod=readonly -trimpath -ldflags "$LD" -o "$OUT/.$c.tmp" "$pkg"
  mv -f "$OUT/.$c.tmp" "$OUT/$c"
  echo "built $c $K8S_VERSION in $(( $(date +%s) - s ))s -> $OUT/$c ($(stat -c %s "$OUT/$c") bytes)"
done

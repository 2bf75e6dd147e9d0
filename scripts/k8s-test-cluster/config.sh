# shellcheck shell=bash disable=SC2034
# Settings shared by up.sh, down.sh, smoke.sh and build.sh (sourced, not run).
# Adapted from the offline single-node recipe rtemu's Kubernetes engine is
# tested on (see README.md here and docs/kubernetes.md).
# Every value can be overridden from the environment. Nothing is written into
# this folder: everything the scripts make goes under $K8S_DIR.

K8S_DIR=${K8S_DIR:-/var/tmp/rtemu-k8s}           # state: bin/ images/ pki/ etc/ var/ run/ logs/ admin.kubeconfig
case $K8S_DIR in /*) ;; *) K8S_DIR=$PWD/$K8S_DIR ;; esac
K8S_SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)   # this folder (read-only is fine)

K8S_VERSION=$(awk '$1=="require" && $2=="k8s.io/kubernetes" {print $3}' "$K8S_SRC/src/go.mod")

# Binaries: K8S_BIN if set, else what up.sh recorded on its last start, else
# a persistent cache folder per Kubernetes version (kept across runs and
# K8S_DIRs: a cold build takes many minutes, a cached one none).
if [ -n "${K8S_BIN:-}" ]; then :
elif [ -s "$K8S_DIR/run/bin-dir" ]; then K8S_BIN=$(cat "$K8S_DIR/run/bin-dir")
else K8S_BIN=${K8S_BIN_CACHE:-/var/cache/rtemu-k8s-bin}/$K8S_VERSION
fi
case $K8S_BIN in /*) ;; *) K8S_BIN=$PWD/$K8S_BIN ;; esac

PKI=$K8S_DIR/pki
ETC=$K8S_DIR/etc
VAR=$K8S_DIR/var
RUN=$K8S_DIR/run                      # PID files, saved sysctls
LOG=$K8S_DIR/logs
KUBECONFIG_ADMIN=$K8S_DIR/admin.kubeconfig

# The cluster's own containerd: runtime state and socket live on tmpfs under /run
# (short socket path, gone after a reboot). Docker's containerd is never used.
CRUN=${K8S_CONTAINERD_STATE:-/run/k8s-containerd}
CSOCK=$CRUN/containerd.sock
CTR="ctr --address $CSOCK --namespace k8s.io"

NODE=${NODE_NAME:-k8s-node}
BRIDGE=k8sbr0                          # CNI bridge, distinct from docker0 / br-*
CNI_NET=k8s-offline                    # CNI network name (also names its result cache files)
POD_SUBNET=10.244.77.0/24
NODE_IP=10.244.77.1                    # node IP = bridge gateway (the kubelet refuses a loopback node IP)
APISERVER_PORT=${APISERVER_PORT:-16443}
ETCD_CLIENT=127.0.0.1:${ETCD_PORT:-23790}
ETCD_PEER=127.0.0.1:${ETCD_PEER_PORT:-23800}
SERVER=https://127.0.0.1:$APISERVER_PORT

PAUSE_IMAGE=registry.k8s.io/pause:3.10.1
BUSYBOX_IMAGE=docker.io/library/busybox:1.35

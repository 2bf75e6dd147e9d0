# rtemu's own image: the static binary on an empty base. Build the binary
# first (pure Go, no cgo), then the image:
#
#   CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o rtemu .
#   docker build -t rtemu .
#
# It drives the host's engine through the mounted Docker socket, so it needs
# `-v /var/run/docker.sock:/var/run/docker.sock`. Mount the data dir at the
# same path inside and out (`-v /var/lib/rtemu:/var/lib/rtemu`): workspace
# folders are bind-mounted into sandboxes by the engine, which sees host paths.
FROM scratch
COPY rtemu /rtemu
# WORKDIR makes the directory: --ephemeral keeps its state under /tmp.
WORKDIR /tmp
ENV RTEMU_ADDR=0.0.0.0:7070 \
    RTEMU_DEV_URL_LISTENERS=off \
    RTEMU_SSH_ADDR=0.0.0.0:2222 \
    RTEMU_DATA_DIR=/var/lib/rtemu \
    TMPDIR=/tmp
EXPOSE 7070 2222
ENTRYPOINT ["/rtemu"]
CMD ["serve"]

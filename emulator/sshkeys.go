package emulator

import (
	"net"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/rtemu-dev/rtemu/sandbox"
)

// SSHGateway is what the API needs to know of the SSH gateway.
// *sshgw.Gateway implements it.
type SSHGateway interface {
	// Addr is the address the gateway serves on, "" while it does not.
	Addr() string
}

func (a *api) sshServing() bool { return a.ssh != nil && a.ssh.Addr() != "" }

type sshKeyJSON struct {
	ID          string  `json:"id"`
	Name        string  `json:"name"`
	Fingerprint string  `json:"fingerprint"`
	KeyType     string  `json:"keyType"`
	CreatedAt   string  `json:"createdAt"`
	LastUsedAt  *string `json:"lastUsedAt"`
}

func toSSHKeyJSON(k *sandbox.SSHKey) sshKeyJSON {
	return sshKeyJSON{ID: k.ID, Name: k.Name, Fingerprint: k.Fingerprint, KeyType: k.KeyType,
		CreatedAt: rfc3339(k.CreatedAt), LastUsedAt: optTime(k.LastUsedAt)}
}

// createSSHKeyRequest takes the key as publicKey (this API's spelling) or
// public_key (the auth service's).
type createSSHKeyRequest struct {
	Name           string `json:"name"`
	PublicKey      string `json:"publicKey"`
	PublicKeySnake string `json:"public_key"`
}

func (a *api) createSSHKey(c echo.Context) error {
	var req createSSHKeyRequest
	if err := decodeJSON(c, &req, false); err != nil {
		return err
	}
	key := req.PublicKey
	if key == "" {
		key = req.PublicKeySnake
	} else if req.PublicKeySnake != "" && req.PublicKeySnake != key {
		return badRequest("publicKey", "publicKey and public_key differ; send one of them")
	}
	k, err := a.svc.CreateSSHKey(c.Request().Context(), req.Name, key)
	if err != nil {
		return err
	}
	return reply(c, http.StatusCreated, toSSHKeyJSON(k))
}

func (a *api) listSSHKeys(c echo.Context) error {
	keys, err := a.svc.ListSSHKeys(c.Request().Context())
	if err != nil {
		return err
	}
	out := make([]sshKeyJSON, 0, len(keys))
	for _, k := range keys {
		out = append(out, toSSHKeyJSON(k))
	}
	return replyList(c, out, false, "")
}

func (a *api) deleteSSHKey(c echo.Context) error {
	id := c.Param("id")
	if err := a.svc.DeleteSSHKey(c.Request().Context(), id); err != nil {
		return err
	}
	return reply(c, http.StatusOK, map[string]any{"id": id, "success": true})
}

type sshInfoJSON struct {
	Host    string  `json:"host"`
	Port    int     `json:"port"`
	User    string  `json:"user"`
	Command string  `json:"command"`
	KeyID   *string `json:"keyId"`
}

func (a *api) sandboxSSH(c echo.Context) error {
	sb, keyID, err := a.svc.SSHTarget(c.Request().Context(), c.Param("id"))
	if err != nil {
		return err
	}
	addr := ""
	if a.ssh != nil {
		addr = a.ssh.Addr()
		if a.publicSSHAddr != "" {
			addr = a.publicSSHAddr
		}
	}
	host, portText, err := net.SplitHostPort(addr)
	if err != nil {
		return &apiError{status: http.StatusServiceUnavailable, code: "service_unavailable",
			message: "the SSH gateway is not serving (see --ssh-addr)"}
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		// Listening on every interface: loopback reaches it from this machine.
		host = "127.0.0.1"
	}
	port, _ := strconv.Atoi(portText)
	cmd := "ssh -p " + portText + " " + sb.ID + "@" + host
	return reply(c, http.StatusOK, sshInfoJSON{Host: host, Port: port, User: sb.ID, Command: cmd, KeyID: optString(keyID)})
}

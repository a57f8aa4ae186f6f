// Package dendriteadmin creates accounts on a Dendrite (or Synapse) through
// shared-secret registration: the admin API that needs the secret from the
// homeserver's configuration, so public registration stays closed.
package dendriteadmin

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

const registerPath = "/_synapse/admin/v1/register"

// Register creates user with password on the homeserver at baseURL (its
// own listener, e.g. http://127.0.0.1:8008), proving knowledge of secret.
func Register(ctx context.Context, baseURL, secret, user, password string, admin bool) error {
	c := &http.Client{Timeout: 30 * time.Second}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(baseURL, "/")+registerPath, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("reaching the homeserver: %w", err)
	}
	var nonce struct {
		Nonce string `json:"nonce"`
	}
	err = json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&nonce)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || err != nil || nonce.Nonce == "" {
		return fmt.Errorf("getting a registration nonce: the homeserver answered %s", resp.Status)
	}
	body, _ := json.Marshal(map[string]any{
		"nonce": nonce.Nonce, "username": user, "password": password, "admin": admin,
		"mac": MAC(secret, nonce.Nonce, user, password, admin),
	})
	req, err = http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(baseURL, "/")+registerPath, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err = c.Do(req)
	if err != nil {
		return fmt.Errorf("registering %s: %w", user, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	var merr struct {
		Errcode string `json:"errcode"`
		Error   string `json:"error"`
	}
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	json.Unmarshal(raw, &merr)
	switch {
	case merr.Errcode == "M_USER_IN_USE":
		return fmt.Errorf("registering %s: the name is taken", user)
	case resp.StatusCode == http.StatusForbidden || strings.Contains(strings.ToLower(merr.Error), "mac"):
		return fmt.Errorf("registering %s: the homeserver refused the shared secret (%s); is client_api.registration_shared_secret the one in its running configuration?", user, strings.TrimSpace(merr.Error))
	}
	return fmt.Errorf("registering %s: the homeserver answered %s: %s %s", user, resp.Status, merr.Errcode, merr.Error)
}

// MAC is hex HMAC-SHA1(secret, nonce NUL user NUL password NUL
// "admin"|"notadmin"), as shared-secret registration defines it.
func MAC(secret, nonce, user, password string, admin bool) string {
	m := hmac.New(sha1.New, []byte(secret))
	kind := "notadmin"
	if admin {
		kind = "admin"
	}
	io.WriteString(m, nonce+"\x00"+user+"\x00"+password+"\x00"+kind)
	return hex.EncodeToString(m.Sum(nil))
}

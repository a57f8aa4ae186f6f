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
// own listener, e.g. http://127.0.0.1:8008), proving knowledge of secret,
// and returns the new account's user ID.
//
// The password goes only to a homeserver that says it is serverName, and
// never along a redirect: a 3xx is an error, not a second POST of the
// password and MAC to wherever it points.
func Register(ctx context.Context, baseURL, serverName, secret, user, password string, admin bool) (string, error) {
	c := &http.Client{Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	baseURL = strings.TrimSuffix(baseURL, "/")
	if err := checkServerName(ctx, c, baseURL, serverName); err != nil {
		return "", err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, baseURL+registerPath, nil)
	if err != nil {
		return "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", fmt.Errorf("reaching the homeserver: %w", err)
	}
	var nonce struct {
		Nonce string `json:"nonce"`
	}
	err = json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&nonce)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || err != nil || nonce.Nonce == "" {
		return "", fmt.Errorf("getting a registration nonce: the homeserver answered %s", resp.Status)
	}
	body, _ := json.Marshal(map[string]any{
		"nonce": nonce.Nonce, "username": user, "password": password, "admin": admin,
		"mac": MAC(secret, nonce.Nonce, user, password, admin),
	})
	req, err = http.NewRequestWithContext(ctx, http.MethodPost, baseURL+registerPath, bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err = c.Do(req)
	if err != nil {
		return "", fmt.Errorf("registering %s: %w", user, err)
	}
	defer resp.Body.Close()
	var answer struct {
		UserID  string `json:"user_id"`
		Errcode string `json:"errcode"`
		Error   string `json:"error"`
	}
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	json.Unmarshal(raw, &answer)
	switch {
	case resp.StatusCode == http.StatusOK:
		if want := "@" + user + ":" + serverName; answer.UserID != want {
			return "", fmt.Errorf("registering %s: the homeserver made %q, not %s", user, answer.UserID, want)
		}
		return answer.UserID, nil
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		return "", fmt.Errorf("registering %s: the homeserver answered %s to %s; redirects are not followed with a password", user, resp.Status, resp.Header.Get("Location"))
	case answer.Errcode == "M_USER_IN_USE":
		return "", fmt.Errorf("registering %s: the name is taken", user)
	case resp.StatusCode == http.StatusForbidden || strings.Contains(strings.ToLower(answer.Error), "mac"):
		return "", fmt.Errorf("registering %s: the homeserver refused the shared secret (%s); is client_api.registration_shared_secret the one in its running configuration?", user, strings.TrimSpace(answer.Error))
	}
	return "", fmt.Errorf("registering %s: the homeserver answered %s: %s %s", user, resp.Status, answer.Errcode, answer.Error)
}

// checkServerName asks the homeserver its name (its signing keys carry
// it) before anything secret is sent.
func checkServerName(ctx context.Context, c *http.Client, baseURL, serverName string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, baseURL+"/_matrix/key/v2/server", nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("reaching the homeserver: %w", err)
	}
	defer resp.Body.Close()
	var keys struct {
		ServerName string `json:"server_name"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&keys) != nil {
		return fmt.Errorf("asking the homeserver its name: /_matrix/key/v2/server answered %s", resp.Status)
	}
	if keys.ServerName != serverName {
		return fmt.Errorf("the homeserver at %s is %q, not %q; nothing was sent to it", baseURL, keys.ServerName, serverName)
	}
	return nil
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

package synapsetest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/wellknownd/wellknownd/internal/dendriteadmin"
)

// Register creates user with password through shared-secret registration
// (/_synapse/admin/v1/register) and returns the account's user ID and the
// access token and device ID of the session the registration logged in.
func (s *Synapse) Register(t testing.TB, user, password string, admin bool) (userID, accessToken, deviceID string) {
	t.Helper()
	c := &http.Client{Timeout: 30 * time.Second}
	resp, err := c.Get(s.BaseURL + "/_synapse/admin/v1/register")
	if err != nil {
		t.Fatalf("registering %s: getting a nonce: %v", user, err)
	}
	var nonce struct {
		Nonce string `json:"nonce"`
	}
	err = json.NewDecoder(resp.Body).Decode(&nonce)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || nonce.Nonce == "" {
		t.Fatalf("registering %s: getting a nonce: %s %v", user, resp.Status, err)
	}
	body, _ := json.Marshal(map[string]any{
		"nonce": nonce.Nonce, "username": user, "password": password, "admin": admin,
		"mac": dendriteadmin.MAC(s.Secret, nonce.Nonce, user, password, admin),
	})
	resp, err = c.Post(s.BaseURL+"/_synapse/admin/v1/register", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("registering %s: %v", user, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var answer struct {
		UserID      string `json:"user_id"`
		AccessToken string `json:"access_token"`
		DeviceID    string `json:"device_id"`
	}
	if err := json.Unmarshal(raw, &answer); err != nil || resp.StatusCode != http.StatusOK || answer.AccessToken == "" {
		t.Fatalf("registering %s: %s %s", user, resp.Status, raw)
	}
	return answer.UserID, answer.AccessToken, answer.DeviceID
}

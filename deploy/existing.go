package deploy

import (
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/wellknownd/wellknownd/config"
)

// Existing are the identities and secrets of a deployment already written
// in a directory. "init -force" rewrites the configuration around them and
// never replaces them: the signing key is the server's identity in
// federation (everything it ever signed is verified with it), and the
// registration secret and the database password are what a running
// Dendrite and a live database already hold.
type Existing struct {
	// SigningKey is dendrite/matrix_key.pem, KeyID its Key-ID.
	SigningKey []byte
	KeyID      string
	// RegistrationSecret is client_api.registration_shared_secret of the
	// host's dendrite.yaml (else the compose one).
	RegistrationSecret string
	// PostgresPassword is the dendrite role's password, from the compose
	// secret or a connection string.
	PostgresPassword string
}

// ReadExisting reads what of a deployment is in dir; a missing file leaves
// its field empty, an unreadable or malformed one is an error (and init
// writes nothing).
func ReadExisting(dir string) (Existing, error) {
	var e Existing
	key, err := os.ReadFile(filepath.Join(dir, "dendrite", "matrix_key.pem"))
	switch {
	case err == nil:
		b, _ := pem.Decode(key)
		if b == nil || b.Type != "MATRIX PRIVATE KEY" || b.Headers["Key-ID"] == "" {
			return e, fmt.Errorf("%s is not a Matrix signing key; move it away if it is not one", filepath.Join(dir, "dendrite", "matrix_key.pem"))
		}
		e.SigningKey, e.KeyID = key, b.Headers["Key-ID"]
	case !errors.Is(err, fs.ErrNotExist):
		return e, err
	}
	for _, p := range []string{"dendrite/dendrite.yaml", "compose/dendrite.yaml"} {
		secret, password, err := config.DendriteSecrets(filepath.Join(dir, p))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		} else if err != nil {
			return e, fmt.Errorf("%w; init -force keeps its secrets, so it must parse", err)
		}
		if e.RegistrationSecret == "" {
			e.RegistrationSecret = secret
		}
		if e.PostgresPassword == "" {
			e.PostgresPassword = password
		}
	}
	if pw, err := os.ReadFile(filepath.Join(dir, "compose", "postgres_password.secret")); err == nil && strings.TrimSpace(string(pw)) != "" {
		e.PostgresPassword = strings.TrimSpace(string(pw))
	}
	return e, nil
}

package delegation

import (
	"errors"
	"fmt"
	"net/mail"
	"strings"
)

// Roles the specification defines for a support contact. Others must be
// namespaced (Java package naming, e.g. org.example.role.billing).
const (
	RoleAdmin    = "m.role.admin"
	RoleSecurity = "m.role.security"
)

// Contact is one entry of the support document's contacts.
type Contact struct {
	MatrixID     string `json:"matrix_id,omitempty"`
	EmailAddress string `json:"email_address,omitempty"`
	Role         string `json:"role"`
}

// Support is the /.well-known/matrix/support document.
type Support struct {
	Contacts    []Contact `json:"contacts,omitempty"`
	SupportPage string    `json:"support_page,omitempty"`
}

// CheckRole checks a contact's role.
func CheckRole(role string) error {
	switch {
	case role == "":
		return fmt.Errorf("is empty; use %s, %s, or a namespaced role such as org.example.role.billing", RoleAdmin, RoleSecurity)
	case role == RoleAdmin || role == RoleSecurity:
		return nil
	case strings.HasPrefix(role, "m."):
		return fmt.Errorf("%q is not a role the spec defines; use %s or %s, or a namespaced role outside m.*", role, RoleAdmin, RoleSecurity)
	case !strings.Contains(role, ".") || strings.HasPrefix(role, ".") || strings.HasSuffix(role, "."):
		return fmt.Errorf("%q is neither %s, %s nor namespaced (e.g. org.example.role.billing)", role, RoleAdmin, RoleSecurity)
	}
	return nil
}

// CheckUserID checks a Matrix user ID: @localpart:server_name.
func CheckUserID(id string) error {
	if !strings.HasPrefix(id, "@") {
		return fmt.Errorf("%q must start with '@', e.g. @admin:example.com", id)
	}
	local, server, ok := strings.Cut(id[1:], ":")
	if !ok {
		return fmt.Errorf("%q has no ':server_name'", id)
	}
	if local == "" {
		return fmt.Errorf("%q has an empty localpart", id)
	}
	// Historical user IDs allow any printable ASCII but ':'; that is what the
	// spec requires servers to accept, so that is what is checked here.
	for i := 0; i < len(local); i++ {
		if c := local[i]; c < 0x21 || c > 0x7e {
			return fmt.Errorf("%q has %q in its localpart", id, rune(c))
		}
	}
	if len(id) > 255 {
		return fmt.Errorf("%q is longer than 255 bytes", id)
	}
	if _, err := ParseServerName(server); err != nil {
		return fmt.Errorf("%q: server name %w", id, err)
	}
	return nil
}

// CheckEmail checks a bare e-mail address (no display name).
func CheckEmail(s string) error {
	a, err := mail.ParseAddress(s)
	if err != nil || a.Address != s || a.Name != "" {
		return fmt.Errorf("%q is not a bare e-mail address such as admin@example.com", s)
	}
	return nil
}

// Check reports every problem of a support document, each tagged with the
// path of the offending value inside the document.
func (s Support) Check() []FieldError {
	var errs []FieldError
	if len(s.Contacts) == 0 && s.SupportPage == "" {
		errs = append(errs, FieldError{Field: "", Err: errors.New("has neither contacts nor a support_page; the spec requires at least one")})
	}
	for i, c := range s.Contacts {
		at := fmt.Sprintf("contacts[%d]", i)
		if c.MatrixID == "" && c.EmailAddress == "" {
			errs = append(errs, FieldError{Field: at, Err: errors.New("has neither matrix_id nor email_address; give at least one")})
		}
		if c.MatrixID != "" {
			if err := CheckUserID(c.MatrixID); err != nil {
				errs = append(errs, FieldError{Field: at + ".matrix_id", Err: err})
			}
		}
		if c.EmailAddress != "" {
			if err := CheckEmail(c.EmailAddress); err != nil {
				errs = append(errs, FieldError{Field: at + ".email_address", Err: err})
			}
		}
		if err := CheckRole(c.Role); err != nil {
			errs = append(errs, FieldError{Field: at + ".role", Err: err})
		}
	}
	if s.SupportPage != "" {
		// A support page is a web page for people, not a base URL: a
		// query or a path is fine, a scheme and a host are not optional.
		if _, err := ParseHTTPURL(s.SupportPage); err != nil {
			errs = append(errs, FieldError{Field: "support_page", Err: err})
		}
	}
	return errs
}

// FieldError is a problem with one value, named by its path relative to the
// thing being checked ("" for the thing itself).
type FieldError struct {
	Field   string
	Err     error
	Warning bool
}

func (e FieldError) Error() string {
	if e.Field == "" {
		return e.Err.Error()
	}
	return e.Field + ": " + e.Err.Error()
}

func (e FieldError) Unwrap() error { return e.Err }

package delegation

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Spec is everything the three discovery documents say.
type Spec struct {
	// ServerName is the Matrix server name, e.g. example.com.
	ServerName string
	// Server is m.server: where federation traffic for ServerName goes.
	Server string
	// ClientBaseURL is m.homeserver.base_url.
	ClientBaseURL string
	// IdentityServer is m.identity_server.base_url; empty leaves it out.
	IdentityServer string
	// ClientExtra holds further keys of the client document, already in
	// their JSON shape (objects, arrays, strings, numbers, booleans).
	ClientExtra map[string]any
	// Support is the support document; nil serves none (404).
	Support *Support
}

// Keys of the client document that wellknownd writes itself, and that
// ClientExtra therefore may not set.
const (
	KeyHomeserver     = "m.homeserver"
	KeyIdentityServer = "m.identity_server"
)

// Check reports every problem of the spec. Field names are the document
// keys a person would look for: server_name, m.server, m.homeserver.base_url,
// m.identity_server.base_url, extra.<key>, support.<path>. Warnings are
// returned with Warning set; they do not stop the documents from rendering.
func (s Spec) Check() []FieldError {
	var errs []FieldError
	add := func(field string, err error) { errs = append(errs, FieldError{Field: field, Err: err}) }
	warn := func(field, msg string) {
		errs = append(errs, FieldError{Field: field, Err: errors.New(msg), Warning: true})
	}
	if _, err := ParseServerName(s.ServerName); err != nil {
		add("server_name", err)
	}
	if _, err := ParseServerName(s.Server); err != nil {
		add("m.server", err)
	}
	if _, w, err := ParseBaseURL(s.ClientBaseURL); err != nil {
		add("m.homeserver.base_url", err)
	} else if w != "" {
		warn("m.homeserver.base_url", w)
	}
	if s.IdentityServer != "" {
		if _, w, err := ParseBaseURL(s.IdentityServer); err != nil {
			add("m.identity_server.base_url", err)
		} else if w != "" {
			warn("m.identity_server.base_url", w)
		}
	}
	for _, fe := range checkExtra(s.ClientExtra) {
		fe.Field = joinField("extra", fe.Field)
		errs = append(errs, fe)
	}
	if s.Support != nil {
		for _, fe := range s.Support.Check() {
			fe.Field = joinField("support", fe.Field)
			errs = append(errs, fe)
		}
	}
	return errs
}

// Documents are the rendered bodies, each with its strong ETag. Rendering
// happens once per configuration, so serving is a copy of bytes.
type Documents struct {
	Server, Client, Support Document
}

// Document is one rendered JSON body. A zero Document (nil Body) is not served.
type Document struct {
	Body []byte
	// ETag is a strong entity tag, quoted, derived from Body.
	ETag string
}

// Render checks the spec once and, when Check finds nothing but warnings,
// renders the documents. It returns every problem Check found; the
// documents are zero when any of them is an error.
func (s Spec) Render() (Documents, []FieldError) {
	problems := s.Check()
	for _, fe := range problems {
		if !fe.Warning {
			return Documents{}, problems
		}
	}
	d, err := s.render()
	if err != nil {
		// Check accepted every value, so only a JSON encoder failure
		// lands here: report it against the document as a whole.
		return Documents{}, append(problems, FieldError{Field: "extra", Err: err})
	}
	return d, problems
}

func (s Spec) render() (Documents, error) {
	var d Documents
	var err error
	if d.Server, err = render(map[string]any{"m.server": s.Server}); err != nil {
		return Documents{}, err
	}
	client := make(map[string]any, len(s.ClientExtra)+2)
	for k, v := range s.ClientExtra {
		client[k] = v
	}
	client[KeyHomeserver] = map[string]any{"base_url": s.ClientBaseURL}
	if s.IdentityServer != "" {
		client[KeyIdentityServer] = map[string]any{"base_url": s.IdentityServer}
	}
	if d.Client, err = render(client); err != nil {
		return Documents{}, err
	}
	if s.Support != nil {
		if d.Support, err = render(s.Support); err != nil {
			return Documents{}, err
		}
	}
	return d, nil
}

// render encodes v compactly, with map keys sorted and without HTML
// escaping: the bytes a Worker's JSON.stringify produced for the same
// object, so that peers see no change when a user migrates.
func render(v any) (Document, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return Document{}, fmt.Errorf("delegation: rendering JSON: %w", err)
	}
	body := bytes.TrimSuffix(b.Bytes(), []byte("\n"))
	sum := sha256.Sum256(body)
	return Document{Body: body, ETag: `"` + base64.RawURLEncoding.EncodeToString(sum[:18]) + `"`}, nil
}

func checkExtra(extra map[string]any) []FieldError {
	var errs []FieldError
	for _, k := range slices.Sorted(maps.Keys(extra)) {
		v := extra[k]
		switch k {
		case KeyHomeserver:
			errs = append(errs, FieldError{Field: k, Err: errors.New("is written from delegation.client_base_url; set it there, not in client_extra")})
			continue
		case KeyIdentityServer:
			errs = append(errs, FieldError{Field: k, Err: errors.New("is written from delegation.identity_server; set it there, not in client_extra")})
			continue
		}
		if strings.TrimSpace(k) == "" {
			errs = append(errs, FieldError{Field: fmt.Sprintf("%q", k), Err: errors.New("is an empty key")})
			continue
		}
		if path, err := checkJSONValue(v); err != nil {
			errs = append(errs, FieldError{Field: joinField(k, path), Err: err})
			continue
		}
		errs = append(errs, checkKnownExtra(k, v)...)
	}
	return errs
}

// checkKnownExtra checks the shape of extra keys that clients in the wild
// read, so that a typo fails here rather than silently in Element.
func checkKnownExtra(key string, v any) []FieldError {
	urlField := map[string]string{
		"org.matrix.msc3575.proxy": "url",
		"m.tile_server":            "map_style_url",
	}[key]
	if urlField == "" {
		return nil
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return []FieldError{{Field: key, Err: fmt.Errorf("must be an object with %q", urlField)}}
	}
	s, _ := obj[urlField].(string)
	if _, err := ParseHTTPURL(s); err != nil {
		return []FieldError{{Field: key + "." + urlField, Err: err}}
	}
	return nil
}

// checkJSONValue makes sure v encodes to JSON the way it reads in YAML: maps
// with string keys, no floats that JSON cannot hold.
func checkJSONValue(v any) (string, error) {
	switch x := v.(type) {
	case nil, bool, string, int, int64, uint64, float64:
		if f, ok := x.(float64); ok && (f != f || f > 1e308 || f < -1e308) {
			return "", errors.New("is not a finite number")
		}
		return "", nil
	case map[string]any:
		for k, e := range x {
			if p, err := checkJSONValue(e); err != nil {
				return joinField(k, p), err
			}
		}
		return "", nil
	case []any:
		for i, e := range x {
			if p, err := checkJSONValue(e); err != nil {
				return joinField(fmt.Sprintf("[%d]", i), p), err
			}
		}
		return "", nil
	default:
		return "", fmt.Errorf("has a value of type %T, which JSON cannot hold (use string keys and plain values)", v)
	}
}

func joinField(a, b string) string {
	switch {
	case b == "":
		return a
	case a == "":
		return b
	case strings.HasPrefix(b, "["):
		return a + b
	}
	return a + "." + b
}

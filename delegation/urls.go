package delegation

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// ParseBaseURL parses and checks a base_url of the client document (the
// homeserver's or the identity server's). Clients append /_matrix/... to it,
// so it must be an absolute https URL without query or fragment. Plain http
// is accepted for a loopback host only, to try things out locally; warning
// says so.
func ParseBaseURL(s string) (u *url.URL, warning string, err error) {
	if s == "" {
		return nil, "", errors.New("is empty; give an absolute URL such as https://matrix.example.com")
	}
	u, err = url.Parse(s)
	if err != nil {
		return nil, "", fmt.Errorf("is not a URL: %v", unwrapURLError(err))
	}
	if u.Scheme == "" || u.Host == "" {
		return nil, "", fmt.Errorf("%q is not an absolute URL; write it with its scheme, e.g. https://%s", s, strings.TrimPrefix(s, "//"))
	}
	if u.User != nil {
		return nil, "", errors.New("has user information (user:password@); clients would send it everywhere")
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return nil, "", errors.New("has a query or fragment; clients append paths to a base URL, so it may have neither")
	}
	host, err := ParseServerName(u.Host)
	if err != nil {
		return nil, "", fmt.Errorf("has a bad host: %q %w", u.Host, err)
	}
	// url.Parse lower-cases the scheme; clients that compare the raw
	// string do not, so the text itself must be lower case.
	if raw, _, _ := strings.Cut(s, ":"); raw != u.Scheme {
		return nil, "", fmt.Errorf("has scheme %q; write it in lower case: %s", raw, u.Scheme)
	}
	switch u.Scheme {
	case "https":
		return u, "", nil
	case "http":
		if isLoopback(host) {
			return u, fmt.Sprintf("%q is plain http; clients elsewhere than this machine will refuse it", s), nil
		}
		return nil, "", fmt.Errorf("%q is plain http; clients need https (http is accepted only for localhost)", s)
	default:
		return nil, "", fmt.Errorf("has scheme %q; it must be https", u.Scheme)
	}
}

// ParseHTTPURL parses and checks a URL that this daemon itself will fetch or
// redirect to: absolute, http or https, with a host.
func ParseHTTPURL(s string) (*url.URL, error) {
	if s == "" {
		return nil, errors.New("is empty")
	}
	if !strings.Contains(s, "://") {
		return nil, fmt.Errorf("%q must start with http:// or https://", s)
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("is not a URL: %v", unwrapURLError(err))
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("%q must start with http:// or https://", s)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("%q has no host", s)
	}
	if u.Fragment != "" {
		return nil, fmt.Errorf("%q has a fragment (#...), which is never sent to a server", s)
	}
	return u, nil
}

func isLoopback(n ServerName) bool {
	if n.IP.IsValid() {
		return n.IP.IsLoopback()
	}
	h := strings.ToLower(n.Host)
	return h == "localhost" || strings.HasSuffix(h, ".localhost")
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

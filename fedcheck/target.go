package fedcheck

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/matrix-org/gomatrixserverlib"

	"github.com/wellknownd/wellknownd/delegation"
)

// ConnectionReport is what one address answered.
type ConnectionReport struct {
	Certificates []Certificate   `json:"Certificates"`
	Cipher       Cipher          `json:"Cipher"`
	Checks       KeyChecks       `json:"Checks"`
	Errors       []string        `json:"Errors"`
	Keys         json.RawMessage `json:"Keys,omitempty"`
	Version      *Version        `json:"Version,omitempty"`
}

// Certificate is one certificate of the served chain.
type Certificate struct {
	SubjectCommonName string    `json:"SubjectCommonName"`
	IssuerCommonName  string    `json:"IssuerCommonName"`
	SHA256Fingerprint string    `json:"SHA256Fingerprint"`
	DNSNames          []string  `json:"DNSNames"`
	NotAfter          time.Time `json:"NotAfter"`
}

// Cipher is the negotiated TLS version and suite.
type Cipher struct {
	Version     string `json:"Version"`
	CipherSuite string `json:"CipherSuite"`
}

// KeyChecks are the federation tester's checks of an address.
type KeyChecks struct {
	AllChecksOK        bool                    `json:"AllChecksOK"`
	ValidCertificates  bool                    `json:"ValidCertificates"`
	MatchingServerName bool                    `json:"MatchingServerName"`
	FutureValidUntilTS bool                    `json:"FutureValidUntilTS"`
	HasEd25519Key      bool                    `json:"HasEd25519Key"`
	AllEd25519ChecksOK bool                    `json:"AllEd25519ChecksOK"`
	Ed25519Checks      map[string]Ed25519Check `json:"Ed25519Checks"`
}

// Ed25519Check is the check of one signing key.
type Ed25519Check struct {
	ValidEd25519      bool `json:"ValidEd25519"`
	MatchingSignature bool `json:"MatchingSignature"`
}

// Version is what /_matrix/federation/v1/version said.
type Version struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// checkTarget checks every address of a target; true when all pass.
func (c *checker) checkTarget(ctx context.Context, name delegation.ServerName, t Target) bool {
	addrs, err := c.addrs(ctx, t.Destination)
	if err != nil || len(addrs) == 0 {
		c.report.ConnectionErrors[t.Destination] = fmt.Sprint(err)
		c.fail("address of "+t.Destination, "", "it does not resolve: "+fmt.Sprint(err),
			"add an A or AAAA record for "+hostOf(t.Destination))
		return false
	}
	c.report.DNSResult.Addrs[t.Destination] = addrs
	ok := true
	for _, a := range addrs {
		if !c.checkAddr(ctx, name, t, a) {
			ok = false
		}
	}
	return ok
}

func hostOf(hostport string) string {
	h, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return hostport
	}
	return h
}

// checkAddr checks one address: TLS and certificate, signing keys, version.
func (c *checker) checkAddr(ctx context.Context, name delegation.ServerName, t Target, addr string) bool {
	at := addr
	if hostOf(t.Destination) != hostOf(addr) {
		at = addr + " (" + t.Destination + ")"
	}
	conf := &tls.Config{ServerName: t.TLSServerName, RootCAs: c.opts.Roots, NextProtos: []string{"http/1.1"}}
	conn, err := c.dialTLS(ctx, addr, conf)
	rep := &ConnectionReport{Checks: KeyChecks{Ed25519Checks: map[string]Ed25519Check{}}, Errors: []string{}}
	certOK := err == nil
	if err != nil {
		var netErr *net.OpError
		if errors.As(err, &netErr) && netErr.Op == "dial" {
			c.report.ConnectionErrors[addr] = err.Error()
			c.fail("connection to "+at, "", "nothing answers there: "+shortErr(err),
				fmt.Sprintf("open port %s to wellknownd (listen.federation, or listen.https for :443), or point m.server at a port that is open", portOf(addr)))
			return false
		}
		// The certificate is wrong; look at it anyway, to say how.
		insecure := conf.Clone()
		insecure.InsecureSkipVerify = true
		conn2, err2 := c.dialTLS(ctx, addr, insecure)
		if err2 != nil {
			c.report.ConnectionErrors[addr] = err2.Error()
			c.fail("TLS to "+at, "", "the TLS handshake fails: "+shortErr(err2), "serve TLS with a certificate for "+t.TLSServerName)
			return false
		}
		conn = conn2
		cause, fix := certProblem(err, t.TLSServerName, conn2.ConnectionState().PeerCertificates)
		rep.Errors = append(rep.Errors, cause)
		c.fail("certificate at "+at, certSummary(conn2.ConnectionState().PeerCertificates), cause, fix)
	}
	defer conn.Close()
	cs := conn.ConnectionState()
	for _, cert := range cs.PeerCertificates {
		fp := sha256.Sum256(cert.Raw)
		rep.Certificates = append(rep.Certificates, Certificate{
			SubjectCommonName: cert.Subject.CommonName, IssuerCommonName: cert.Issuer.CommonName,
			SHA256Fingerprint: hex.EncodeToString(fp[:]), DNSNames: cert.DNSNames, NotAfter: cert.NotAfter,
		})
	}
	rep.Cipher = Cipher{Version: tls.VersionName(cs.Version), CipherSuite: tls.CipherSuiteName(cs.CipherSuite)}
	rep.Checks.ValidCertificates = certOK
	if certOK {
		c.pass("certificate at "+at, certSummary(cs.PeerCertificates)+", "+rep.Cipher.Version)
	}
	c.report.ConnectionReports[addr] = rep
	conn.Close()

	keysOK := c.checkKeys(ctx, name, t, addr, at, rep)
	versionOK := c.checkVersion(ctx, t, addr, at, rep)
	rep.Checks.AllChecksOK = certOK && keysOK && versionOK
	return rep.Checks.AllChecksOK
}

func portOf(addr string) string {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return p
}

func certSummary(chain []*x509.Certificate) string {
	if len(chain) == 0 {
		return "no certificate"
	}
	leaf := chain[0]
	return fmt.Sprintf("names %s, issued by %s, valid until %s", strings.Join(leaf.DNSNames, ", "), leaf.Issuer.CommonName, leaf.NotAfter.UTC().Format("2006-01-02"))
}

// certProblem says in words why verification failed and what fixes it.
func certProblem(err error, want string, chain []*x509.Certificate) (string, string) {
	var hostErr x509.HostnameError
	var unknown x509.UnknownAuthorityError
	var invalid x509.CertificateInvalidError
	names := "nothing"
	if len(chain) > 0 && len(chain[0].DNSNames) > 0 {
		names = strings.Join(chain[0].DNSNames, ", ")
	}
	switch {
	case errors.As(err, &hostErr):
		return fmt.Sprintf("certificate names %s, but m.server points to %s", names, want),
			fmt.Sprintf("get a certificate for %s (add it to hosts with tls.mode acme), or point m.server at a name the certificate has", want)
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		return fmt.Sprintf("certificate expired on %s", chain[0].NotAfter.UTC().Format(time.RFC3339)),
			"renew it; with tls.mode acme wellknownd renews by itself"
	case errors.As(err, &unknown):
		return fmt.Sprintf("certificate for %s is not signed by a CA remote servers trust (issuer: %s)", names, unknown.Cert.Issuer.CommonName),
			"use a certificate from a public CA (tls.mode acme), not a self-signed or internal one"
	}
	return "certificate does not verify: " + err.Error(), "serve a valid certificate chain for " + want
}

// fedGET sends a federation GET to addr with the target's Host and SNI.
func (c *checker) fedGET(ctx context.Context, t Target, addr, path string) (*http.Response, []byte, error) {
	client := c.httpClient(true) // the certificate was judged already
	tr := client.Transport.(*http.Transport)
	tr.TLSClientConfig.ServerName = t.TLSServerName
	tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
		return c.dial(ctx, network, addr)
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+t.Destination+path, nil)
	req.Host = t.Host
	resp, err := client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp, body, err
}

// checkKeys fetches and verifies the server's signing keys.
func (c *checker) checkKeys(ctx context.Context, name delegation.ServerName, t Target, addr, at string, rep *ConnectionReport) bool {
	check := "signing keys at " + at
	resp, body, err := c.fedGET(ctx, t, addr, "/_matrix/key/v2/server")
	if err != nil {
		c.fail(check, "", "GET /_matrix/key/v2/server failed: "+shortErr(err), "make sure the homeserver runs and wellknownd proxies /_matrix/key to it")
		return false
	}
	if resp.StatusCode != http.StatusOK {
		c.fail(check, "", fmt.Sprintf("GET /_matrix/key/v2/server answered %s", resp.Status), "make sure the homeserver runs and wellknownd proxies /_matrix/key to it")
		return false
	}
	rep.Keys = json.RawMessage(body)
	var keys struct {
		ServerName   string                          `json:"server_name"`
		ValidUntilTS int64                           `json:"valid_until_ts"`
		VerifyKeys   map[string]struct{ Key string } `json:"verify_keys"`
		Signatures   map[string]map[string]string    `json:"signatures"`
	}
	if err := json.Unmarshal(body, &keys); err != nil {
		c.fail(check, "", "the key response is not JSON: "+err.Error(), "check that the homeserver, not another site, answers /_matrix/key")
		return false
	}
	ch := &rep.Checks
	ch.MatchingServerName = keys.ServerName == name.String()
	ch.FutureValidUntilTS = time.UnixMilli(keys.ValidUntilTS).After(time.Now())
	ch.AllEd25519ChecksOK = true
	for id, k := range keys.VerifyKeys {
		if !strings.HasPrefix(id, "ed25519:") {
			continue
		}
		ch.HasEd25519Key = true
		pub, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(k.Key, "="))
		e := Ed25519Check{ValidEd25519: err == nil && len(pub) == ed25519.PublicKeySize}
		if e.ValidEd25519 {
			_, signed := keys.Signatures[keys.ServerName][id]
			e.MatchingSignature = signed && gomatrixserverlib.VerifyJSON(keys.ServerName, gomatrixserverlib.KeyID(id), ed25519.PublicKey(pub), body) == nil
		}
		ch.Ed25519Checks[id] = e
		ch.AllEd25519ChecksOK = ch.AllEd25519ChecksOK && e.ValidEd25519 && e.MatchingSignature
	}
	switch {
	case !ch.MatchingServerName:
		c.fail(check, "", fmt.Sprintf("the keys are for %q, not %q", keys.ServerName, name.String()),
			"set Dendrite's global.server_name to "+name.String()+", or delegate from the server name the keys belong to")
	case !ch.HasEd25519Key:
		c.fail(check, "", "no ed25519 signing key is offered", "check Dendrite's global.private_key")
	case !ch.AllEd25519ChecksOK:
		c.fail(check, "", "the key response is not signed by the keys it offers", "check Dendrite's global.private_key; something between the server and the Internet may rewrite responses")
	case !ch.FutureValidUntilTS:
		c.fail(check, "", fmt.Sprintf("valid_until_ts is in the past (%s): remote servers will not use these keys", time.UnixMilli(keys.ValidUntilTS).UTC().Format(time.RFC3339)),
			"check the server's clock and Dendrite's global.key_validity_period")
	default:
		var ids []string
		for id := range ch.Ed25519Checks {
			ids = append(ids, id)
		}
		c.pass(check, fmt.Sprintf("%s for %s, signed, valid until %s", strings.Join(ids, ", "), keys.ServerName, time.UnixMilli(keys.ValidUntilTS).UTC().Format(time.RFC3339)))
		return true
	}
	return false
}

// checkVersion asks the server which software it runs.
func (c *checker) checkVersion(ctx context.Context, t Target, addr, at string, rep *ConnectionReport) bool {
	check := "federation version at " + at
	resp, body, err := c.fedGET(ctx, t, addr, "/_matrix/federation/v1/version")
	if err != nil || resp.StatusCode != http.StatusOK {
		status := ""
		if resp != nil {
			status = resp.Status
		}
		c.fail(check, "", fmt.Sprintf("GET /_matrix/federation/v1/version failed: %s%v", status, errOrEmpty(err)),
			"make sure wellknownd proxies /_matrix/federation to the homeserver")
		return false
	}
	var v struct {
		Server Version `json:"server"`
	}
	if err := json.Unmarshal(body, &v); err != nil || v.Server.Name == "" {
		c.fail(check, "", "the version answer is not the federation API's", "make sure /_matrix/federation reaches the homeserver")
		return false
	}
	rep.Version = &v.Server
	if c.report.Version == nil {
		c.report.Version = &v.Server
	}
	c.pass(check, v.Server.Name+" "+v.Server.Version)
	return true
}

func errOrEmpty(err error) string {
	if err == nil {
		return ""
	}
	return " " + shortErr(err)
}

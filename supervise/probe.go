package supervise

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"
)

// Probe says how an entry's readiness is checked: an HTTP GET that must
// answer 2xx, or a TCP connect that must succeed. At most one is set.
type Probe struct {
	HTTP *url.URL
	TCP  string
}

type prober interface {
	probe(ctx context.Context) error
}

func newProber(p Probe, timeout time.Duration) prober {
	switch {
	case p.HTTP != nil:
		return &httpProber{url: p.HTTP, client: &http.Client{
			Timeout: timeout,
			// A probe must not reuse a connection to a process that has
			// since been restarted, nor follow redirects elsewhere.
			Transport:     &http.Transport{Proxy: nil, DisableKeepAlives: true},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}}
	case p.TCP != "":
		return &tcpProber{addr: p.TCP, timeout: timeout}
	}
	return nil
}

type httpProber struct {
	url    *url.URL
	client *http.Client
}

func (p *httpProber) probe(ctx context.Context) error {
	req := (&http.Request{Method: http.MethodGet, URL: p.url, Header: http.Header{}, Host: p.url.Host}).WithContext(ctx)
	resp, err := p.client.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("%s answered %d", p.url, resp.StatusCode)
	}
	return nil
}

type tcpProber struct {
	addr    string
	timeout time.Duration
}

func (p *tcpProber) probe(ctx context.Context) error {
	d := net.Dialer{Timeout: p.timeout}
	c, err := d.DialContext(ctx, "tcp", p.addr)
	if err != nil {
		return err
	}
	return c.Close()
}

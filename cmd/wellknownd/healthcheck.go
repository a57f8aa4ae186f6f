package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"
)

// runHealthcheck asks the running daemon's admin listener whether it is
// alive: the container's HEALTHCHECK, which has no curl to call.
func runHealthcheck(ctx context.Context, args []string, stderr io.Writer) error {
	var c commonFlags
	fs := newFlagSet("healthcheck", stderr, &c)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	base, err := adminBase(c.config)
	if err != nil {
		return err
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/healthz", nil)
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		return fmt.Errorf("health check: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("health check: /healthz answered %s", resp.Status)
	}
	return nil
}

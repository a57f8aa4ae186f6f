package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"
)

var healthcheckHelp = commandHelp{
	name:    "healthcheck",
	summary: "exit 0 when the running daemon answers /healthz (for container health checks)",
	about: `Asks the running daemon's admin listener (listen.admin in the configuration)
for /healthz and exits 0 when it answers 200, 1 otherwise. It is the container
image's HEALTHCHECK, which has no curl to call.`,
	examples: []string{
		"wellknownd healthcheck -config /data/wellknownd.yaml",
	},
	bare: "config",
}

// runHealthcheck asks the running daemon's admin listener whether it is
// alive: the container's HEALTHCHECK, which has no curl to call.
func runHealthcheck(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var config string
	fs := newFlagSet(&healthcheckHelp, stdout)
	fs.configFlag(&config)
	if err := fs.parseFlags(args); err != nil {
		return err
	}
	base, err := adminBase(config)
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

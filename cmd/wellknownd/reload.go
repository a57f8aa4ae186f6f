package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"
)

// runReload asks the running daemon, through its admin listener, to
// re-read its configuration, and prints what it answered.
func runReload(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c commonFlags
	fs := newFlagSet("reload", stderr, &c)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	base, err := adminBase(c.config)
	if err != nil {
		return fmt.Errorf("%w; send it SIGHUP instead (systemctl reload wellknownd)", err)
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/reload", nil)
	resp, err := (&http.Client{Timeout: 2 * time.Minute}).Do(req)
	if err != nil {
		return fmt.Errorf("reaching the daemon at %s: %w", base, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		fmt.Fprint(stderr, string(body))
		return errReported
	}
	fmt.Fprint(stdout, string(body))
	return nil
}

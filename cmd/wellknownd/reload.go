package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"
)

var reloadHelp = commandHelp{
	name:    "reload",
	summary: "make the running daemon re-read its configuration",
	about: `Asks the running daemon, at the listen.admin address of the configuration, to
re-read its configuration file, and prints what it answered. When the new file
has errors the daemon keeps serving the old configuration; the errors are
printed and reload exits 1. Sending the daemon SIGHUP (systemctl reload
wellknownd) does the same, without the answer.`,
	examples: []string{
		"wellknownd reload -config /etc/wellknownd/wellknownd.yaml",
	},
	bare: "config",
}

// runReload asks the running daemon, through its admin listener, to
// re-read its configuration, and prints what it answered.
func runReload(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var config string
	fs := newFlagSet(&reloadHelp, stdout)
	fs.configFlag(&config)
	if err := fs.parseFlags(args); err != nil {
		return err
	}
	base, err := adminBase(config)
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

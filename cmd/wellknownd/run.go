package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
)

// errReported is returned when run has already told the user what went
// wrong, so main only sets the exit status.
var errReported = errors.New("reported")

// usageError is a command line that could not be understood (exit 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

const usage = `Usage: wellknownd <command> [flags]

Commands:
  serve      run the daemon
  validate   check a configuration file and print every problem
  reload     make the running daemon re-read its configuration
  status     print the running daemon's state; exit 1 when something is wrong
  init       write a complete deployment: wellknownd.yaml, Dendrite's config and key, unit, compose
  adopt      put wellknownd in front of a Dendrite that already runs, keeping its identity
  register   create an account on the supervised Dendrite (shared-secret registration)
  check      test a server's federation and client discovery, and say how to fix what fails
  healthcheck  exit 0 when the running daemon answers /healthz (for container health checks)
  version    print the version

Run 'wellknownd <command> -h' for a command's flags.
`

// run is the whole program; main only wires it to the process. Tests call
// it in-process with their own arguments and output.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return usageError{"no command given"}
	}
	switch args[0] {
	case "serve":
		return runServe(ctx, args[1:], stderr)
	case "validate":
		return runValidate(args[1:], stdout, stderr)
	case "reload":
		return runReload(ctx, args[1:], stdout, stderr)
	case "register":
		return runRegister(ctx, args[1:], os.Stdin, stdout, stderr)
	case "check":
		return runCheck(ctx, args[1:], stdout, stderr)
	case "init":
		return runInit(args[1:], stdout, stderr)
	case "adopt":
		return runAdopt(ctx, args[1:], stdout, stderr)
	case "status":
		return runStatus(ctx, args[1:], stdout, stderr)
	case "healthcheck":
		return runHealthcheck(ctx, args[1:], stderr)
	case "version", "-version", "--version":
		fmt.Fprintln(stdout, versionString())
		return nil
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return usageError{fmt.Sprintf("unknown command %q", args[0])}
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

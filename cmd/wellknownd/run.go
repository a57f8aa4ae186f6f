package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/wellknownd/wellknownd/server"
	"github.com/wellknownd/wellknownd/server/config"
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
  version    print the version

Run 'wellknownd <command> -h' for a command's flags.
`

// defaultConfigFile is read when -config is not given and the file exists.
const defaultConfigFile = "wellknownd.yaml"

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

// commonFlags are the flags every command that reads a config takes.
type commonFlags struct {
	config    string
	logFormat string
	logLevel  slog.Level
}

func newFlagSet(name string, stderr io.Writer, c *commonFlags) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.config, "config", "", "Read the configuration from this file. Without it, ./"+defaultConfigFile+" is read if it exists, else a built-in configuration that serves localhost.")
	fs.StringVar(&c.logFormat, "log-format", "text", "Write logs as \"text\" (key=value) or \"json\" (one object a line), to standard error.")
	fs.TextVar(&c.logLevel, "log-level", slog.LevelInfo, "Log records at this level and above: debug, info, warn or error.")
	return fs
}

func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errReported
		}
		return usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("%s: unexpected argument %q", fs.Name(), fs.Arg(0))}
	}
	return nil
}

func newLogger(c commonFlags, stderr io.Writer) (*slog.Logger, error) {
	opts := &slog.HandlerOptions{Level: c.logLevel}
	switch c.logFormat {
	case "text":
		return slog.New(slog.NewTextHandler(stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(stderr, opts)), nil
	}
	return nil, usageError{fmt.Sprintf("-log-format %q: use text or json", c.logFormat)}
}

// loadConfig finds and reads the configuration the flags point at.
func loadConfig(path string) (*config.Config, config.Problems, string, error) {
	if path == "" {
		if _, err := os.Stat(defaultConfigFile); err == nil {
			path = defaultConfigFile
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, nil, "", fmt.Errorf("looking for %s: %w", defaultConfigFile, err)
		} else {
			cfg, problems := config.Parse("(built-in config)", []byte(config.BuiltIn))
			return cfg, problems, "(built-in config)", nil
		}
	}
	cfg, problems, err := config.Load(path)
	return cfg, problems, path, err
}

func runServe(ctx context.Context, args []string, stderr io.Writer) error {
	var c commonFlags
	fs := newFlagSet("serve", stderr, &c)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	log, err := newLogger(c, stderr)
	if err != nil {
		return err
	}
	cfg, problems, file, err := loadConfig(c.config)
	if err != nil {
		return err
	}
	for _, p := range problems.Warnings() {
		log.Warn("config", "problem", p.String())
	}
	if errs := problems.Errors(); len(errs) > 0 {
		for _, p := range errs {
			fmt.Fprintln(stderr, p.String())
		}
		return fmt.Errorf("%s: %d %s; nothing started", file, len(errs), plural(len(errs), "error"))
	}
	srv, err := server.New(cfg, log, server.WithVersion(versionNumber()))
	if err != nil {
		return err
	}
	log.Info("starting", "version", versionString(), "config", file, "server_name", cfg.ServerName, "hosts", strings.Join(cfg.Hosts, ","))
	return srv.Run(ctx)
}

func runValidate(args []string, stdout, stderr io.Writer) error {
	var c commonFlags
	fs := newFlagSet("validate", stderr, &c)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	_, problems, file, err := loadConfig(c.config)
	if err != nil {
		return err
	}
	for _, p := range problems {
		fmt.Fprintln(stdout, p.String())
	}
	if n := len(problems.Errors()); n > 0 {
		return fmt.Errorf("%s: %d %s", file, n, plural(n, "error"))
	}
	fmt.Fprintf(stdout, "%s: valid\n", file)
	return nil
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

// version is set at build time with -ldflags "-X main.version=v1.2.3";
// otherwise the module version go install recorded is used.
var version = ""

// versionNumber is the version alone, e.g. v1.2.3 or (devel).
func versionNumber() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}

func versionString() string {
	return fmt.Sprintf("wellknownd %s %s %s/%s", versionNumber(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

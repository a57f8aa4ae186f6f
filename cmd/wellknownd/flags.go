package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
)

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

// parseFlags parses a command's flags; it takes no other arguments.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := parseArgs(fs, args); err != nil {
		return err
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

// parseArgs parses flags and leaves the arguments after them in fs.Args:
// -h prints the usage and nothing more (errReported), a bad flag is a
// usage error (exit 2).
func parseArgs(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errReported
		}
		return usageError{err.Error()}
	}
	return nil
}

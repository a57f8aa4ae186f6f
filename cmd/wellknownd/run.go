package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
)

// errReported is returned when run has already told the user what went
// wrong, so main only sets the exit status.
var errReported = errors.New("reported")

// usageError is a command line that could not be understood (exit 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// command is one entry of the command table: its help (name, summary,
// examples; declared in the command's file) and what runs it. A new
// command is one entry here.
type command struct {
	help *commandHelp
	run  func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

// commands are the commands, in the order "wellknownd -h" lists them.
var commands = []command{
	{&serveHelp, runServe},
	{&validateHelp, runValidate},
	{&reloadHelp, runReload},
	{&statusHelp, runStatus},
	{&initHelp, runInit},
	{&adoptHelp, runAdopt},
	{&registerHelp, func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
		return runRegister(ctx, args, os.Stdin, stdout, stderr)
	}},
	{&checkHelp, runCheck},
	{&healthcheckHelp, runHealthcheck},
	{&versionHelp, runVersion},
}

// run is the whole program; main only wires it to the process. Tests call
// it in-process with their own arguments and output.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		printUsage(stderr)
		return usageError{"no command given"}
	}
	name := args[0]
	switch name {
	case "help", "-h", "-help", "--help":
		if len(args) > 1 && name == "help" {
			// "wellknownd help serve" is "wellknownd serve -h".
			return run(ctx, []string{args[1], "-h"}, stdout, stderr)
		}
		printUsage(stdout)
		return nil
	case "-version", "--version":
		name = "version"
	}
	for _, c := range commands {
		if c.help.name == name {
			err := c.run(ctx, args[1:], stdout, stderr)
			if errors.Is(err, errHelp) {
				return nil
			}
			return err
		}
	}
	names := make([]string, 0, len(commands))
	for _, c := range commands {
		names = append(names, c.help.name)
	}
	if strings.HasPrefix(name, "-") {
		// "wellknownd -config x.yaml serve": the command comes first.
		for i, a := range args {
			if slices.Contains(names, a) {
				line := append([]string{a}, slices.Delete(slices.Clone(args), i, i+1)...)
				return usageError{fmt.Sprintf("the command comes before its flags: wellknownd %s", strings.Join(line, " "))}
			}
		}
		return usageError{fmt.Sprintf("%s: give a command first, then its flags (wellknownd -h lists the commands)", name)}
	}
	if c := closest(name, names); c != "" {
		return usageError{fmt.Sprintf("unknown command %q; did you mean %s?", name, c)}
	}
	return usageError{fmt.Sprintf("unknown command %q (wellknownd -h lists the commands)", name)}
}

func printUsage(w io.Writer) {
	fmt.Fprint(w, "wellknownd is the edge of a self-hosted Matrix homeserver: it serves the\n/.well-known/matrix documents, obtains certificates, proxies to the\nhomeserver and supervises it.\n\nUsage: wellknownd <command> [flags]\n\nCommands:\n")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-12s %s\n", c.help.name, c.help.summary)
	}
	fmt.Fprint(w, "\nRun 'wellknownd <command> -h' for what a command does, examples and its flags.\n")
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

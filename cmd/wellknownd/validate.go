package main

import (
	"context"
	"fmt"
	"io"
)

var validateHelp = commandHelp{
	name:    "validate",
	summary: "check a configuration file and print every problem",
	about: `Reads a configuration as serve would and prints every problem in it, in the
order of the file's lines, as FILE:LINE: FIELD: what is wrong and what would be
valid. Warnings are printed too but do not fail. Exits 0 when the configuration
would start, 1 when it has errors. Nothing is started or contacted.`,
	examples: []string{
		"wellknownd validate -config /etc/wellknownd/wellknownd.yaml",
		"wellknownd validate              # ./wellknownd.yaml, else the built-in config",
	},
	bare: "config",
}

// runValidate reads a configuration and prints every problem in it.
func runValidate(_ context.Context, args []string, stdout, stderr io.Writer) error {
	var config string
	fs := newFlagSet(&validateHelp, stdout)
	fs.configFlag(&config)
	if err := fs.parseFlags(args); err != nil {
		return err
	}
	src, _, problems, err := loadConfig(config)
	if err != nil {
		return err
	}
	file := src.name
	for _, p := range problems {
		fmt.Fprintln(stdout, p.String())
	}
	if n := len(problems.Errors()); n > 0 {
		return fmt.Errorf("%s: %d %s", file, n, plural(n, "error"))
	}
	fmt.Fprintf(stdout, "%s: valid\n", file)
	return nil
}

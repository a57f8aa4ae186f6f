package main

import (
	"fmt"
	"io"
)

// runValidate reads a configuration and prints every problem in it.
func runValidate(args []string, stdout, stderr io.Writer) error {
	var c commonFlags
	fs := newFlagSet("validate", stderr, &c)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	src, _, problems, err := loadConfig(c.config)
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

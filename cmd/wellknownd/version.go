package main

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

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

var versionHelp = commandHelp{
	name:     "version",
	summary:  "print the version",
	about:    `Prints wellknownd's version, the Go version it was built with, and the platform.`,
	examples: []string{"wellknownd version"},
}

func runVersion(_ context.Context, args []string, stdout, _ io.Writer) error {
	if err := newFlagSet(&versionHelp, stdout).parseFlags(args); err != nil {
		return err
	}
	fmt.Fprintln(stdout, versionString())
	return nil
}

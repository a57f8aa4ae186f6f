// Command gen writes docs/configuration-reference.md; `go generate ./config`
// runs it from the config directory, so the repository's root is its parent.
package main

import (
	"fmt"
	"os"

	"github.com/wellknownd/wellknownd/internal/confref"
)

func main() {
	if err := confref.Write(".."); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

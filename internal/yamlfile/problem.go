// Package yamlfile is what the configuration reader and the deployment
// tools share about YAML files a person wrote: a Problem located by file,
// line and field, a document read by dotted path with the line of each
// value, and yaml.v3's syntax errors turned into the line a person should
// look at. It knows no file's schema.
package yamlfile

import (
	"slices"
	"strconv"
	"strings"
)

// Problem is one thing wrong with a file, located as precisely as the file
// allows.
type Problem struct {
	// File is the file's path as given.
	File string
	// Line is 1-based; 0 when the value is a default the file did not set.
	Line int
	// Field is the dotted path of the value, e.g. delegation.support.contacts[0].role.
	Field string
	// Msg says what is wrong and what would be valid.
	Msg string
	// Warning marks a problem that does not stop the daemon.
	Warning bool
}

func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		b.WriteString(":" + strconv.Itoa(p.Line))
	}
	b.WriteString(": ")
	if p.Warning {
		b.WriteString("warning: ")
	}
	if p.Field != "" {
		b.WriteString(p.Field + ": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Error makes a Problem an error, for the loaders that return one.
func (p Problem) Error() string { return p.String() }

// Problems is a list of problems; as an error it holds at least one that is
// not a warning.
type Problems []Problem

func (ps Problems) Error() string {
	lines := make([]string, 0, len(ps))
	for _, p := range ps {
		lines = append(lines, p.String())
	}
	return strings.Join(lines, "\n")
}

// Errors returns the problems that are not warnings.
func (ps Problems) Errors() Problems {
	return slices.DeleteFunc(slices.Clone(ps), func(p Problem) bool { return p.Warning })
}

// Warnings returns the problems that are warnings.
func (ps Problems) Warnings() Problems {
	return slices.DeleteFunc(slices.Clone(ps), func(p Problem) bool { return !p.Warning })
}

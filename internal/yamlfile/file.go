package yamlfile

import (
	"os"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// File is a parsed YAML document read by dotted path, with the line of
// each value, so that what is said about it names the line to change.
type File struct {
	// Path is the file it was read from.
	Path string
	// Root is the document's top node.
	Root *yaml.Node
}

// Empty is the message of the Problem for a file with no document.
const Empty = "is empty"

// Load reads and parses the YAML file at path. A file that cannot be read
// gives the os error; one that does not parse, or is empty, a Problem naming
// the file (and the line of a syntax error).
func Load(path string) (File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return File{}, err
	}
	return Parse(path, data)
}

// Parse parses data, read from path, as Load does.
func Parse(path string, data []byte) (File, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		line, msg := SyntaxLine(err, data)
		return File{}, Problem{File: path, Line: line, Msg: "is not valid YAML: " + msg}
	}
	if len(doc.Content) == 0 {
		return File{}, Problem{File: path, Msg: Empty}
	}
	return File{Path: path, Root: doc.Content[0]}, nil
}

// Get returns the scalar at path and its line (the nearest existing
// parent's line when it is missing).
func (f File) Get(path string) (string, int) {
	n, line := f.Root, f.Root.Line
	for _, k := range strings.Split(path, ".") {
		if n.Kind != yaml.MappingNode {
			return "", line
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == k {
				next, line = n.Content[i+1], n.Content[i].Line
			}
		}
		if next == nil {
			return "", line
		}
		n = next
	}
	if n.Kind != yaml.ScalarNode {
		return "", line
	}
	return n.Value, line
}

// JoinPath is the dotted path of key under parent.
func JoinPath(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

// ParentPath is the path one step up from p: "a.b[2]" → "a.b" → "a" → "".
func ParentPath(p string) string {
	i := strings.LastIndexAny(p, ".[")
	if i < 0 {
		return ""
	}
	return p[:i]
}

// SyntaxLine splits yaml.v3's "yaml: line N: msg" into N and msg, and
// makes N the line a person should look at. yaml.v3 counts its marks from
// 0 and adds the missing 1 for scanner errors only, so a parser error
// (an unclosed [ or {, a key at the wrong indentation) names the line
// before the one at fault. A tab in the indentation is reported at the
// start of the text it interrupts; the tab is on a later line of data.
func SyntaxLine(err error, data []byte) (int, string) {
	s := strings.TrimPrefix(err.Error(), "yaml: ")
	rest, ok := strings.CutPrefix(s, "line ")
	if !ok {
		return 0, s
	}
	num, msg, ok := strings.Cut(rest, ": ")
	if !ok {
		return 0, s
	}
	n, err := strconv.Atoi(num)
	if err != nil {
		return 0, s
	}
	switch {
	case yamlParserErrors[msg]:
		n++
	case strings.HasPrefix(msg, "found a tab character"):
		lines := strings.Split(string(data), "\n")
		for i := n; i < len(lines); i++ { // lines[n] is line n+1
			if indent := lines[i][:len(lines[i])-len(strings.TrimLeft(lines[i], " \t"))]; strings.Contains(indent, "\t") {
				return i + 1, msg
			}
		}
	}
	return n, msg
}

// yamlParserErrors are the messages of yaml.v3's parser (not scanner)
// errors, whose line it reports one too low.
var yamlParserErrors = map[string]bool{
	"did not find expected ',' or ']'":       true,
	"did not find expected ',' or '}'":       true,
	"did not find expected '-' indicator":    true,
	"did not find expected key":              true,
	"did not find expected node content":     true,
	"did not find expected <document start>": true,
	"found undefined tag handle":             true,
	"found incompatible YAML document":       true,
	"found duplicate %YAML directive":        true,
	"found duplicate %TAG directive":         true,
}

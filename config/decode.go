package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"

	"github.com/wellknownd/wellknownd/internal/yamlfile"
	"go.yaml.in/yaml/v3"
)

// decoder turns a YAML document into a Config, field by field, so that each
// problem names its field and line, and so that all of them are found in
// one pass instead of the first only.
type decoder struct {
	file     string
	problems yamlfile.Problems
	// lines maps a field path to the line of its key in the file; a path
	// present here was set by the file rather than left at its default.
	lines map[string]int
}

func (d *decoder) addf(line int, field, format string, args ...any) {
	d.problems = append(d.problems, yamlfile.Problem{File: d.file, Line: line, Field: field, Msg: fmt.Sprintf(format, args...)})
}

// decodeFile decodes data onto dst. It reports syntax errors, unknown
// fields and wrong types; values are validated afterwards. It returns false
// when the file could not be read as YAML at all.
func (d *decoder) decodeFile(data []byte, dst *Config) bool {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			d.addf(0, "", "the file is empty; it needs at least server_name and delegation")
			return false
		}
		line, msg := yamlfile.SyntaxLine(err, data)
		d.addf(line, "", "is not valid YAML: %s", msg)
		return false
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		d.addf(extra.Line, "", "holds more than one YAML document (a '---' line); keep one")
	}
	d.decode(doc.Content[0], reflect.ValueOf(dst).Elem(), "")
	return true
}

var unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()

func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		// "key:" with nothing after it keeps the default, as an absent key would.
		return
	}
	if v.Type() == durationType {
		if dur, err := decodeDuration(n); err != nil {
			d.addf(n.Line, path, "%s", err)
		} else {
			v.SetInt(int64(dur))
		}
		return
	}
	if reflect.PointerTo(v.Type()).Implements(unmarshalerType) {
		if err := n.Decode(v.Addr().Interface()); err != nil {
			d.addf(n.Line, path, "%s", typeErrorText(err))
		}
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		d.decode(n, v.Elem(), path)
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			d.addf(n.Line, path, "must be a mapping of %s", strings.Join(fieldNames(v.Type()), ", "))
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			sub := yamlfile.JoinPath(path, k.Value)
			if first, dup := d.lines[sub]; dup {
				// yaml.v3 reports duplicate keys only when decoding into a
				// map or struct, never into a Node: check here.
				d.addf(k.Line, sub, "is set twice (first on line %d); keep one", first)
				continue
			}
			f, ok := fieldByTag(v, k.Value)
			if !ok {
				d.addf(k.Line, sub, "unknown field%s; valid fields here: %s", suggest(k.Value, fieldNames(v.Type())), strings.Join(fieldNames(v.Type()), ", "))
				continue
			}
			d.lines[sub] = k.Line
			d.decode(val, f, sub)
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.addf(n.Line, path, "must be a list, e.g. [a, b] or one '- item' per line")
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, e := range n.Content {
			sub := path + "[" + strconv.Itoa(i) + "]"
			d.lines[sub] = e.Line
			d.decode(e, s.Index(i), sub)
		}
		v.Set(s)
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			d.addf(n.Line, path, "must be a mapping")
			return
		}
		d.recordLines(n, path)
		m := reflect.New(v.Type())
		if err := n.Decode(m.Interface()); err != nil {
			d.addf(n.Line, path, "%s", typeErrorText(err))
			return
		}
		v.Set(m.Elem())
	default:
		if n.Kind != yaml.ScalarNode {
			d.addf(n.Line, path, "must be a single %s value, not a %s", kindWord(v.Kind()), nodeWord(n.Kind))
			return
		}
		if err := n.Decode(v.Addr().Interface()); err != nil {
			d.addf(n.Line, path, "%s", typeErrorText(err))
		}
	}
}

// recordLines notes the line of every key below a free-form mapping, so that
// validation can point into client_extra.
func (d *decoder) recordLines(n *yaml.Node, path string) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			sub := yamlfile.JoinPath(path, n.Content[i].Value)
			d.lines[sub] = n.Content[i].Line
			d.recordLines(n.Content[i+1], sub)
		}
	case yaml.SequenceNode:
		for i, e := range n.Content {
			sub := path + "[" + strconv.Itoa(i) + "]"
			d.lines[sub] = e.Line
			d.recordLines(e, sub)
		}
	}
}

// line returns the line of path, or of its nearest ancestor set in the file.
func (d *decoder) line(path string) int {
	for p := path; p != ""; p = yamlfile.ParentPath(p) {
		if l, ok := d.lines[p]; ok {
			return l
		}
	}
	return 0
}

func fieldByTag(v reflect.Value, name string) (reflect.Value, bool) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		if tagName(t.Field(i)) == name {
			return v.Field(i), true
		}
	}
	return reflect.Value{}, false
}

func fieldNames(t reflect.Type) []string {
	var names []string
	for i := 0; i < t.NumField(); i++ {
		if n := tagName(t.Field(i)); n != "" && n != "-" {
			names = append(names, n)
		}
	}
	return names
}

func tagName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	return name
}

// typeErrorText strips yaml.v3's "line N: cannot unmarshal !!str `x` into
// int" down to words, since the line and field are printed separately.
func typeErrorText(err error) string {
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msg := te.Errors[0]
		if _, after, ok := strings.Cut(msg, ": "); ok && strings.HasPrefix(msg, "line ") {
			msg = after
		}
		msg = strings.NewReplacer("!!str", "text", "!!int", "number", "!!bool", "true/false", "!!map", "mapping", "!!seq", "list", "!!float", "number").Replace(msg)
		return msg
	}
	return err.Error()
}

func kindWord(k reflect.Kind) string {
	switch k {
	case reflect.String:
		return "text"
	case reflect.Bool:
		return "true/false"
	case reflect.Int, reflect.Int64, reflect.Uint, reflect.Uint64:
		return "number"
	}
	return k.String()
}

func nodeWord(k yaml.Kind) string {
	switch k {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	}
	return "value"
}

// suggest returns ` (did you mean "x"?)` when a valid name is one or two
// edits away from the unknown one.
func suggest(got string, valid []string) string {
	best, bestD := "", 3
	for _, v := range valid {
		if d := editDistance(got, v); d < bestD {
			best, bestD = v, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

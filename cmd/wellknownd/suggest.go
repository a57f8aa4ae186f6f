package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// What a mistyped command line probably meant: the command or flag nearest
// to what was typed, and the flag a stray argument was meant for.

// closest is the candidate nearest to word, or "" when none is near enough
// to be what was meant: at most two edits (a swap of two letters counts as
// one), and fewer than half of word, so that "x" suggests nothing; or a
// prefix of exactly one candidate ("reg" for register).
func closest(word string, candidates []string) string {
	best, bestD := "", 3
	for _, c := range candidates {
		if d := editDistance(strings.ToLower(word), c); d < bestD && 2*d < len(word)+1 {
			best, bestD = c, d
		}
	}
	if best != "" {
		return best
	}
	var prefixed []string
	for _, c := range candidates {
		if len(word) >= 2 && strings.HasPrefix(c, strings.ToLower(word)) {
			prefixed = append(prefixed, c)
		}
	}
	if len(prefixed) == 1 {
		return prefixed[0]
	}
	return ""
}

// editDistance is the optimal string alignment distance: insertions,
// deletions, substitutions and swaps of adjacent letters, each one edit.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	// d[i][j] is the distance between ra[:i] and rb[:j].
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}

// strayHint says which flag a stray argument was probably meant for, as
// the command line to type instead ("-config wellknownd.yaml"), or "".
// flags are the command's flag names; bare is the flag a lone value most
// often belongs to (commandHelp.bare).
func strayHint(arg string, flags []string, bare string) string {
	// A flag written without its dash: "config=x.yaml", "confg".
	name, value, hasValue := strings.Cut(arg, "=")
	if f := closest(name, flags); f != "" && (hasValue || len(name) > 2) {
		if hasValue {
			return "-" + f + " " + shellQuote(value)
		}
		return "-" + f
	}
	if bare == "" {
		return ""
	}
	if strings.Contains(bare, "config") || bare == "compose" {
		// Only a value that looks like the file: "serve extra" is not a
		// configuration file mistyped.
		if !looksLikeFile(arg) {
			return ""
		}
	}
	return "-" + bare + " " + shellQuote(arg)
}

func looksLikeFile(arg string) bool {
	switch strings.ToLower(filepath.Ext(arg)) {
	case ".yaml", ".yml", ".json":
		return true
	}
	st, err := os.Stat(arg)
	return err == nil && st.Mode().IsRegular()
}

// shellQuote quotes s when a shell would split or expand it.
func shellQuote(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t\n'\"\\$`*?[]{}()<>|&;#~!") {
		return s
	}
	return strconv.Quote(s)
}

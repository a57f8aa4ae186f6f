package jssdk

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestRun runs scripts given as text: they import the SDK and the
// scripts/ files, see the environment given, and their lines come back in
// order; a line that is not JSON, or a failing exit, is an error.
func TestRun(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	lines, err := Run(t, ctx, Source(`
import { out } from "./stdio.mjs";
import { createClient } from "matrix-js-sdk";
import { SlidingSync } from "matrix-js-sdk/lib/sliding-sync.js";
console.log("to stderr, not stdout");
out({ type: "hello", client: typeof createClient, sliding: typeof SlidingSync, who: process.env.WHO });
out({ type: "big", s: "x".repeat(200000) });
`), map[string]string{"WHO": "a test"})
	if err != nil {
		t.Fatal(err)
	}
	var hello struct{ Client, Sliding, Who string }
	if len(lines) != 2 || lines[0].Type != "hello" || lines[1].Type != "big" || lines[0].Decode(&hello) != nil {
		t.Fatalf("lines: %v", lines)
	}
	if hello.Client != "function" || hello.Sliding != "function" || hello.Who != "a test" {
		t.Errorf("the script saw %+v", hello)
	}

	for script, want := range map[string]string{
		`console.error("hi"); process.stdout.write("not json\n");`: "not a JSON object",
		`process.exit(3);`: "exit status 3",
	} {
		if _, err := Run(t, ctx, Source(script), nil); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("script %q: error %v; want %q", script, err, want)
		}
	}
}

// TestAwait reads lines as they come: the script waits for a file the
// test writes only after it has seen the first line.
func TestAwait(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	p := Start(t, ctx, Source(`
import { out } from "./stdio.mjs";
import { existsSync } from "node:fs";
out({ type: "waiting" });
const t = setInterval(() => {
    if (existsSync(process.env.GO)) { out({ type: "went" }); clearInterval(t); }
}, 20);
`), map[string]string{"GO": dir + "/go"})
	p.Await("waiting", time.Minute, func(l Line) bool { return l.Type == "waiting" })
	writeFile(t, dir+"/go", nil)
	p.Await("went", time.Minute, func(l Line) bool { return l.Type == "went" })
	if lines, err := p.Wait(); err != nil || len(lines) != 2 {
		t.Fatalf("Wait: %v, %v", lines, err)
	}
}

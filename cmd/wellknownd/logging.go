package main

import (
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"time"
)

// newLogger is the daemon's log, on stderr, in the format and from the
// level asked for.
func newLogger(format, level string, stderr io.Writer) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, usageError{fmt.Sprintf("-log-level %q: use debug, info, warn or error", level)}
	}
	opts := &slog.HandlerOptions{Level: lvl, ReplaceAttr: replaceAttr}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(stderr, opts)), nil
	}
	return nil, usageError{fmt.Sprintf("-log-format %q: use text or json", format)}
}

// replaceAttr makes both formats say the same thing, readably:
//   - a duration is written as Go writes it, "1.5s", "2h0m0s": the text
//     format did, the JSON format wrote nanoseconds (1500000000), which
//     nobody reads right at a glance and nothing says the unit of;
//   - a value that is nil (an error or pointer that was not set) is left
//     out instead of written as <nil> or null.
func replaceAttr(_ []string, a slog.Attr) slog.Attr {
	switch a.Value.Kind() {
	case slog.KindDuration:
		return slog.String(a.Key, a.Value.Duration().String())
	case slog.KindAny:
		v := a.Value.Any()
		if isNil(v) {
			return slog.Attr{}
		}
		// A named duration type (or one boxed as any) is still a duration.
		if d, ok := v.(interface{ Nanoseconds() int64 }); ok {
			return slog.String(a.Key, time.Duration(d.Nanoseconds()).String())
		}
	}
	return a
}

func isNil(v any) bool {
	if v == nil {
		return true
	}
	switch rv := reflect.ValueOf(v); rv.Kind() {
	case reflect.Pointer, reflect.Interface, reflect.Map, reflect.Func, reflect.Chan:
		return rv.IsNil()
	}
	return false
}

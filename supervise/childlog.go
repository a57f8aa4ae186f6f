package supervise

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"slices"
	"strconv"
	"strings"
)

// A supervised process's output line is logged once, as one record of the
// daemon's log. Dendrite (logrus) and most Go programs write structured
// lines of their own: logrus's text `time="…" level=warning msg="…" k=v`,
// slog's text `time=… level=WARN msg=…`, or one JSON object a line. Logged
// as they are, such a line became the message of an info record: its level
// lost (an error looked like info), its message quoted inside a message.
// So a line that states a level is logged at that level with its own
// message and fields; any other line is logged at info, as written.

// childRecord is a line that stated its level: what to log instead of it.
type childRecord struct {
	level slog.Level
	msg   string
	attrs []slog.Attr
}

// parseChildLine reads a structured log line; ok is false when the line
// is not one (no recognised level), and it is then logged as written.
func parseChildLine(line string) (rec childRecord, ok bool) {
	if strings.HasPrefix(line, "{") {
		return parseJSONLine(line)
	}
	return parseLogfmtLine(line)
}

// Keys whose values the daemon's own record replaces: its time, its level,
// its message, and the attributes it adds itself.
var (
	timeKeys    = []string{"time", "ts", "timestamp", "@timestamp"}
	levelKeys   = []string{"level", "lvl", "severity", "@level"}
	messageKeys = []string{"msg", "message", "@message"}
	ownKeys     = []string{"process", "stream"}
)

func parseJSONLine(line string) (childRecord, bool) {
	dec := json.NewDecoder(strings.NewReader(line))
	dec.UseNumber()
	// Keys in the order written: a map would shuffle the fields.
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('{') {
		return childRecord{}, false
	}
	var rec childRecord
	haveLevel := false
	for dec.More() {
		kt, err := dec.Token()
		if err != nil {
			return childRecord{}, false
		}
		k, _ := kt.(string)
		var v any
		if err := dec.Decode(&v); err != nil {
			return childRecord{}, false
		}
		switch {
		case slices.Contains(levelKeys, k) && !haveLevel:
			s, isStr := v.(string)
			lvl, known := childLevel(s)
			if !isStr || !known {
				return childRecord{}, false
			}
			rec.level, haveLevel = lvl, true
		case slices.Contains(messageKeys, k) && rec.msg == "":
			if s, isStr := v.(string); isStr {
				rec.msg = s
			} else {
				rec.attrs = append(rec.attrs, slog.Any(k, v))
			}
		case slices.Contains(timeKeys, k), slices.Contains(ownKeys, k):
		default:
			rec.attrs = append(rec.attrs, slog.Any(k, v))
		}
	}
	if _, err := dec.Token(); err != nil || dec.More() {
		return childRecord{}, false
	}
	return rec, haveLevel
}

func parseLogfmtLine(line string) (childRecord, bool) {
	var rec childRecord
	haveLevel := false
	for s := strings.TrimSpace(line); s != ""; s = strings.TrimLeft(s, " ") {
		eq := strings.IndexByte(s, '=')
		if eq <= 0 || strings.ContainsAny(s[:eq], " \"") {
			return childRecord{}, false
		}
		k, rest := s[:eq], s[eq+1:]
		var v string
		if strings.HasPrefix(rest, `"`) {
			q, err := strconv.QuotedPrefix(rest)
			if err != nil {
				return childRecord{}, false
			}
			v, _ = strconv.Unquote(q)
			rest = rest[len(q):]
		} else {
			end := strings.IndexByte(rest, ' ')
			if end < 0 {
				end = len(rest)
			}
			v, rest = rest[:end], rest[end:]
		}
		if rest != "" && rest[0] != ' ' {
			return childRecord{}, false
		}
		s = rest
		switch {
		case slices.Contains(levelKeys, k) && !haveLevel:
			lvl, known := childLevel(v)
			if !known {
				return childRecord{}, false
			}
			rec.level, haveLevel = lvl, true
		case slices.Contains(messageKeys, k) && rec.msg == "":
			rec.msg = v
		case slices.Contains(timeKeys, k), slices.Contains(ownKeys, k):
		default:
			rec.attrs = append(rec.attrs, slog.String(k, v))
		}
	}
	return rec, haveLevel
}

// childLevel maps the level names of logrus, slog, zap, zerolog and syslog
// onto slog's four. What is worse than an error (fatal, panic, critical)
// is an error: the daemon's log has no level above it.
func childLevel(s string) (slog.Level, bool) {
	s = strings.ToLower(s)
	// slog writes levels between its own as WARN+2, INFO-1.
	if i := strings.IndexAny(s, "+-"); i > 0 {
		s = s[:i]
	}
	switch s {
	// logrus on a terminal writes four letters: TRAC, DEBU, WARN, ERRO…
	case "trace", "trac", "debug", "debu", "dbg":
		return slog.LevelDebug, true
	case "info", "inf", "notice":
		return slog.LevelInfo, true
	case "warn", "warning", "wrn":
		return slog.LevelWarn, true
	case "error", "err", "erro", "fatal", "fata", "panic", "pani", "dpanic", "crit", "critical", "alert", "emerg", "emergency":
		return slog.LevelError, true
	}
	return 0, false
}

// trimLine is a raw output line without its line ending, as valid UTF-8.
func trimLine(line []byte) string {
	return strings.ToValidUTF8(string(bytes.TrimRight(line, "\r\n")), "\uFFFD")
}

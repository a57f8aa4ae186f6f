package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// commandHelp is what "wellknownd COMMAND -h" prints, and the command's line
// in "wellknownd -h". Each command's file declares its own, beside its flags.
type commandHelp struct {
	name string
	// summary is one line: what the command does.
	summary string
	// args is what follows the flags in the usage line, e.g. SERVER_NAME.
	args string
	// about says what the command does and when to use it.
	about string
	// examples are command lines, each with what it does after a #.
	examples []string
	// bare is the flag a lone value on the command line is most often
	// meant for ("wellknownd validate wellknownd.yaml" meant -config).
	bare string
}

// flagSet is a command's flags and its help. Parsing never prints on its
// own: -h prints the help to standard output (exit 0), a mistake is a
// usageError that says what was probably meant (exit 2).
type flagSet struct {
	*flag.FlagSet
	help   *commandHelp
	stdout io.Writer
}

func newFlagSet(h *commandHelp, stdout io.Writer) *flagSet {
	fs := flag.NewFlagSet(h.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return &flagSet{FlagSet: fs, help: h, stdout: stdout}
}

// errHelp is returned when -h printed the help: run returns nil for it.
var errHelp = errors.New("help printed")

// commonFlags are the flags of the commands that read the configuration;
// serve's log flags too.
type commonFlags struct {
	config string
	// logFormat and logLevel are "" unless given: the configuration's
	// log section applies.
	logFormat string
	logLevel  string
}

func (fs *flagSet) configFlag(p *string) {
	fs.StringVar(p, "config", "", "Read the configuration from this file. Without it, ./"+defaultConfigFile+" is read if it exists, else a built-in configuration that serves localhost.")
}

func (fs *flagSet) logFlags(c *commonFlags) {
	fs.StringVar(&c.logFormat, "log-format", "", "Write logs as \"text\" (key=value) or \"json\" (one object a line), to standard error. In both, durations are written as Go writes them (\"1.5s\", \"2h0m0s\"). Default: the configuration's log.format, text unless it says otherwise.")
	fs.StringVar(&c.logLevel, "log-level", "", "Log records at this level and above: debug, info, warn or error. Default: the configuration's log.level, info unless it says otherwise.")
}

// printHelp writes the command's help: usage, what it does, examples, flags.
func (fs *flagSet) printHelp(w io.Writer) {
	h := fs.help
	usage := "wellknownd " + h.name
	hasFlags := false
	fs.VisitAll(func(*flag.Flag) { hasFlags = true })
	if hasFlags {
		usage += " [flags]"
	}
	if h.args != "" {
		usage += " " + h.args
	}
	fmt.Fprintf(w, "Usage: %s\n\n%s\n", usage, strings.TrimSpace(h.about))
	if len(h.examples) > 0 {
		fmt.Fprintln(w, "\nExamples:")
		for _, e := range h.examples {
			fmt.Fprintln(w, "  "+e)
		}
	}
	if hasFlags {
		fmt.Fprintln(w, "\nFlags:")
		fs.SetOutput(w)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
}

// parse parses flags and returns the other arguments. Flags may come after
// them too ("check example.com -json"), except after "--".
func (fs *flagSet) parse(args []string) (positional []string, err error) {
	for {
		if err := fs.Parse(args); err != nil {
			return nil, fs.flagError(err)
		}
		rest := fs.Args()
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(positional, rest...), nil
		}
		if len(rest) == 0 {
			return positional, nil
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}

// parseFlags parses a command's flags; it takes no other arguments.
func (fs *flagSet) parseFlags(args []string) error {
	positional, err := fs.parse(args)
	if err != nil {
		return err
	}
	if len(positional) > 0 {
		return fs.stray(positional[0], "takes no arguments, only flags")
	}
	return nil
}

// stray is the usage error for an argument the command does not take,
// with the flag it was probably meant for.
func (fs *flagSet) stray(arg, why string) error {
	var names []string
	fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
	msg := fmt.Sprintf("%s: unexpected argument %q: %s %s", fs.Name(), arg, fs.Name(), why)
	if hint := strayHint(arg, names, fs.help.bare); hint != "" {
		msg += "; did you mean " + hint + "?"
	} else {
		msg += fmt.Sprintf(" (wellknownd %s -h lists them)", fs.Name())
	}
	return usageError{msg}
}

// flagError turns what the flag package returned into what run returns.
func (fs *flagSet) flagError(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		fs.printHelp(fs.stdout)
		return errHelp
	}
	msg := fs.Name() + ": " + err.Error()
	if name, ok := strings.CutPrefix(err.Error(), "flag provided but not defined: -"); ok {
		var names []string
		fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
		if f := closest(strings.TrimLeft(name, "-"), names); f != "" {
			return usageError{msg + "; did you mean -" + f + "?"}
		}
	}
	return usageError{fmt.Sprintf("%s (wellknownd %s -h lists the flags)", msg, fs.Name())}
}

// required is the usage error for a required flag left out.
func (fs *flagSet) required(flagName, example string) error {
	return usageError{fmt.Sprintf("%s: -%s is required, e.g. %s (wellknownd %s -h says more)", fs.Name(), flagName, example, fs.Name())}
}

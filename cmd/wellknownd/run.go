package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/wellknownd/wellknownd/server"
	"github.com/wellknownd/wellknownd/server/config"
	"github.com/wellknownd/wellknownd/server/sdnotify"
)

// errReported is returned when run has already told the user what went
// wrong, so main only sets the exit status.
var errReported = errors.New("reported")

// usageError is a command line that could not be understood (exit 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

const usage = `Usage: wellknownd <command> [flags]

Commands:
  serve      run the daemon
  validate   check a configuration file and print every problem
  reload     make the running daemon re-read its configuration
  init       write a complete deployment: wellknownd.yaml, Dendrite's config and key, unit, compose
  register   create an account on the supervised Dendrite (shared-secret registration)
  check      test a server's federation and client discovery, and say how to fix what fails
  healthcheck  exit 0 when the running daemon answers /healthz (for container health checks)
  version    print the version

Run 'wellknownd <command> -h' for a command's flags.
`

// defaultConfigFile is read when -config is not given and the file exists.
const defaultConfigFile = "wellknownd.yaml"

// run is the whole program; main only wires it to the process. Tests call
// it in-process with their own arguments and output.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return usageError{"no command given"}
	}
	switch args[0] {
	case "serve":
		return runServe(ctx, args[1:], stderr)
	case "validate":
		return runValidate(args[1:], stdout, stderr)
	case "reload":
		return runReload(ctx, args[1:], stdout, stderr)
	case "register":
		return runRegister(ctx, args[1:], os.Stdin, stdout, stderr)
	case "check":
		return runCheck(ctx, args[1:], stdout, stderr)
	case "init":
		return runInit(args[1:], stdout, stderr)
	case "healthcheck":
		return runHealthcheck(ctx, args[1:], stderr)
	case "version", "-version", "--version":
		fmt.Fprintln(stdout, versionString())
		return nil
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return usageError{fmt.Sprintf("unknown command %q", args[0])}
}

// commonFlags are the flags every command that reads a config takes.
type commonFlags struct {
	config    string
	logFormat string
	logLevel  slog.Level
}

func newFlagSet(name string, stderr io.Writer, c *commonFlags) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.config, "config", "", "Read the configuration from this file. Without it, ./"+defaultConfigFile+" is read if it exists, else a built-in configuration that serves localhost.")
	fs.StringVar(&c.logFormat, "log-format", "text", "Write logs as \"text\" (key=value) or \"json\" (one object a line), to standard error.")
	fs.TextVar(&c.logLevel, "log-level", slog.LevelInfo, "Log records at this level and above: debug, info, warn or error.")
	return fs
}

func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errReported
		}
		return usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("%s: unexpected argument %q", fs.Name(), fs.Arg(0))}
	}
	return nil
}

func newLogger(c commonFlags, stderr io.Writer) (*slog.Logger, error) {
	opts := &slog.HandlerOptions{Level: c.logLevel}
	switch c.logFormat {
	case "text":
		return slog.New(slog.NewTextHandler(stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(stderr, opts)), nil
	}
	return nil, usageError{fmt.Sprintf("-log-format %q: use text or json", c.logFormat)}
}

func runServe(ctx context.Context, args []string, stderr io.Writer) error {
	var c commonFlags
	fs := newFlagSet("serve", stderr, &c)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	log, err := newLogger(c, stderr)
	if err != nil {
		return err
	}
	src, cfg, problems, err := loadConfig(c.config)
	if err != nil {
		return err
	}
	if errs := problems.Errors(); len(errs) > 0 {
		for _, p := range errs {
			fmt.Fprintln(stderr, p.String())
		}
		return fmt.Errorf("%s: %d %s; nothing started", src.name, len(errs), plural(len(errs), "error"))
	}
	// The config's log section applies unless a flag said otherwise.
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if !set["log-format"] {
		c.logFormat = cfg.Log.Format
	}
	if !set["log-level"] {
		c.logLevel.UnmarshalText([]byte(cfg.Log.Level))
	}
	if log, err = newLogger(c, stderr); err != nil {
		return err
	}
	for _, p := range problems.Warnings() {
		log.Warn("config", "problem", p.String())
	}

	notify := sdnotify.FromEnv()
	var srv *server.Server
	// reload re-reads the configuration; on any problem the running one
	// stays, and the problems are both logged and returned (to
	// "wellknownd reload", through the admin listener).
	var reloadMu sync.Mutex
	reload := func(ctx context.Context) error {
		reloadMu.Lock()
		defer reloadMu.Unlock()
		notify.Reloading()
		defer notify.Ready("serving " + strings.Join(srv.Hosts(), ", "))
		log.Info("reloading", "config", src.name)
		next, problems, err := src.load()
		if err != nil {
			log.Error("reload failed; still serving the previous configuration", "err", err)
			return err
		}
		for _, p := range problems.Warnings() {
			log.Warn("config", "problem", p.String())
		}
		if errs := problems.Errors(); len(errs) > 0 {
			for _, p := range errs {
				log.Error("reload failed; still serving the previous configuration", "problem", p.String())
			}
			return fmt.Errorf("%s: %d %s; still serving the previous configuration\n%s", src.name, len(errs), plural(len(errs), "error"), errs.Error())
		}
		if err := srv.Reload(ctx, next); err != nil {
			log.Error("reload failed", "err", err)
			return err
		}
		return nil
	}
	srv, err = server.New(cfg, log,
		server.WithVersion(versionNumber()),
		server.WithReloader(reload),
		server.WithOnServing(func() {
			if err := notify.Ready("serving " + strings.Join(cfg.Hosts, ", ")); err != nil {
				log.Warn("systemd notify", "err", err)
			}
		}))
	if err != nil {
		return err
	}
	// The helpers below end with ctx; run waits for them, so that nothing
	// (a reload, a watchdog pet) outlives the daemon's return.
	ctx, cancel := context.WithCancel(ctx)
	var helpers sync.WaitGroup
	defer helpers.Wait()
	defer cancel()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	helpers.Go(func() {
		for {
			select {
			case <-ctx.Done():
				notify.Stopping()
				return
			case <-hup:
				reload(ctx)
			}
		}
	})
	if iv := sdnotify.WatchdogInterval(); iv > 0 {
		helpers.Go(func() { notify.Watchdog(ctx, iv, srv.Serving) })
	}
	log.Info("starting", "version", versionString(), "config", src.name, "server_name", cfg.ServerName, "hosts", strings.Join(cfg.Hosts, ","))
	return srv.Run(ctx)
}

// configSource is where the configuration comes from: a file, or the
// built-in text. A reload reads the same source again.
type configSource struct {
	name    string
	builtin bool
}

func (s configSource) load() (*config.Config, config.Problems, error) {
	if s.builtin {
		cfg, problems := config.Parse(s.name, []byte(config.BuiltIn))
		return cfg, problems, nil
	}
	return config.Load(s.name)
}

// loadConfig finds (see findConfig) and reads the configuration.
func loadConfig(path string) (configSource, *config.Config, config.Problems, error) {
	src, err := findConfig(path)
	if err != nil {
		return src, nil, nil, err
	}
	cfg, problems, err := src.load()
	return src, cfg, problems, err
}

// findConfig resolves -config: the file given, else ./wellknownd.yaml if
// it exists, else the built-in configuration.
func findConfig(path string) (configSource, error) {
	if path != "" {
		return configSource{name: path}, nil
	}
	if _, err := os.Stat(defaultConfigFile); err == nil {
		return configSource{name: defaultConfigFile}, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return configSource{}, fmt.Errorf("looking for %s: %w", defaultConfigFile, err)
	}
	return configSource{name: "(built-in config)", builtin: true}, nil
}

func runValidate(args []string, stdout, stderr io.Writer) error {
	var c commonFlags
	fs := newFlagSet("validate", stderr, &c)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	src, _, problems, err := loadConfig(c.config)
	if err != nil {
		return err
	}
	file := src.name
	for _, p := range problems {
		fmt.Fprintln(stdout, p.String())
	}
	if n := len(problems.Errors()); n > 0 {
		return fmt.Errorf("%s: %d %s", file, n, plural(n, "error"))
	}
	fmt.Fprintf(stdout, "%s: valid\n", file)
	return nil
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

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

// runReload asks the running daemon, through its admin listener, to
// re-read its configuration, and prints what it answered.
func runReload(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c commonFlags
	fs := newFlagSet("reload", stderr, &c)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	base, err := adminBase(c.config)
	if err != nil {
		return fmt.Errorf("%w; send it SIGHUP instead (systemctl reload wellknownd)", err)
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/reload", nil)
	resp, err := (&http.Client{Timeout: 2 * time.Minute}).Do(req)
	if err != nil {
		return fmt.Errorf("reaching the daemon at %s: %w", base, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		fmt.Fprint(stderr, string(body))
		return errReported
	}
	fmt.Fprint(stdout, string(body))
	return nil
}

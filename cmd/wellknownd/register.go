package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"

	"github.com/wellknownd/wellknownd/config"
	"github.com/wellknownd/wellknownd/internal/dendriteadmin"
)

var registerHelp = commandHelp{
	name:    "register",
	summary: "create an account on the supervised Dendrite (shared-secret registration)",
	about: `Creates an account on the Dendrite that wellknownd supervises, through its
shared-secret registration (the secret is read from its dendrite.yaml), so
public registration never has to be opened. The password is asked on the
terminal, or read from -password-file or a pipe; never from the command line.`,
	examples: []string{
		"wellknownd register -config /var/lib/wellknownd/wellknownd.yaml -user alice -admin",
		"pass show matrix/bob | wellknownd register -user bob",
	},
	bare: "user",
}

// runRegister creates an account on the supervised Dendrite through
// shared-secret registration: public registration never has to open.
func runRegister(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet(&registerHelp, stdout)
	cfgPath := fs.String("config", "", "wellknownd's configuration: its supervised Dendrite's dendrite.yaml holds the secret, upstream.url is where Dendrite listens. Default as for serve.")
	user := fs.String("user", "", "The new account's localpart (alice for @alice:example.com). Required.")
	admin := fs.Bool("admin", false, "Make the account a server admin.")
	passwordFile := fs.String("password-file", "", "Read the password from this file (its first line). Without it, the password is asked on the terminal; it is never taken from the command line, where other users of the machine could read it.")
	dendriteYAML := fs.String("dendrite-config", "", "Read the shared secret from this dendrite.yaml instead of the supervised Dendrite's.")
	if err := fs.parseFlags(args); err != nil {
		return err
	}
	if *user == "" {
		return fs.required("user", "wellknownd register -user alice")
	}
	*user = strings.TrimPrefix(strings.SplitN(*user, ":", 2)[0], "@")
	src, cfg, problems, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	if errs := problems.Errors(); len(errs) > 0 {
		return fmt.Errorf("%s has errors; run wellknownd validate", src.name)
	}
	if *dendriteYAML == "" {
		if *dendriteYAML = cfg.DendriteConfig(); *dendriteYAML == "" {
			return fmt.Errorf("%s supervises no Dendrite with -config; give its dendrite.yaml with -dendrite-config", src.name)
		}
	}
	secret, err := config.RegistrationSecret(*dendriteYAML)
	if err != nil {
		return err
	}
	password, err := readPassword(*passwordFile, stdin, stderr)
	if err != nil {
		return err
	}
	userID, err := dendriteadmin.Register(ctx, cfg.Upstream.URL, cfg.ServerName, secret, *user, password, *admin)
	if err != nil {
		return err
	}
	kind := "user"
	if *admin {
		kind = "admin"
	}
	fmt.Fprintf(stdout, "registered %s (%s)\n", userID, kind)
	return nil
}

func readPassword(file string, stdin io.Reader, stderr io.Writer) (string, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("-password-file: %w", err)
		}
		pw := strings.TrimRight(strings.SplitN(string(b), "\n", 2)[0], "\r")
		if pw == "" {
			return "", fmt.Errorf("-password-file %s is empty", file)
		}
		return pw, nil
	}
	f, ok := stdin.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		// A pipe: read one line, so scripts can do "pass show x | wellknownd register".
		line, err := bufio.NewReader(stdin).ReadString('\n')
		if pw := strings.TrimRight(line, "\r\n"); pw != "" {
			return pw, nil
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return "", err
		}
		return "", errors.New("no password: give -password-file, or run on a terminal to be asked")
	}
	fmt.Fprint(stderr, "Password: ")
	a, err := term.ReadPassword(int(f.Fd()))
	fmt.Fprintln(stderr)
	if err != nil {
		return "", err
	}
	fmt.Fprint(stderr, "Again: ")
	b, err := term.ReadPassword(int(f.Fd()))
	fmt.Fprintln(stderr)
	if err != nil {
		return "", err
	}
	if string(a) != string(b) {
		return "", errors.New("the passwords differ")
	}
	if len(a) == 0 {
		return "", errors.New("empty password")
	}
	return string(a), nil
}

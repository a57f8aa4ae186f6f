package main

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"strings"

	"github.com/wellknownd/wellknownd/config"
	"github.com/wellknownd/wellknownd/internal/yamlfile"
)

// defaultConfigFile is read when -config is not given and the file exists.
const defaultConfigFile = "wellknownd.yaml"

// configSource is where the configuration comes from: a file, or the
// built-in text. A reload reads the same source again.
type configSource struct {
	name    string
	builtin bool
}

func (s configSource) load() (*config.Config, yamlfile.Problems, error) {
	if s.builtin {
		cfg, problems := config.Parse(s.name, []byte(config.BuiltIn))
		return cfg, problems, nil
	}
	return config.Load(s.name)
}

// loadConfig finds (see findConfig) and reads the configuration.
func loadConfig(path string) (configSource, *config.Config, yamlfile.Problems, error) {
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

// adminBase is the URL of the admin listener the config names.
func adminBase(configPath string) (string, error) {
	src, cfg, _, err := loadConfig(configPath)
	if err != nil {
		return "", err
	}
	admin := cfg.Listen.Admin
	if admin == "" || strings.HasSuffix(admin, ":0") {
		return "", errors.New(src.name + " has no fixed listen.admin to reach the daemon at")
	}
	host, port, _ := net.SplitHostPort(admin)
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port), nil
}

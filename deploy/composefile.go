package deploy

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/wellknownd/wellknownd/internal/yamlfile"
	"go.yaml.in/yaml/v3"
)

// composeProject is what adopt reads of an existing compose file: its
// services, and the names of its top-level volumes and networks. It reads
// only; interpolation (${VAR}) is not done, as nothing adopt needs is
// usually written with it.
type composeProject struct {
	path     string
	services []*composeService
	volumes  map[string]bool
}

// composeService is one service of a compose file.
type composeService struct {
	name  string
	line  int
	image string
	// command is the service's command as a list (a string is split on
	// spaces, as compose does for the exec form's absence).
	command []string
	// ports are the entries of ports:, each a short-syntax string or a
	// long-syntax mapping.
	ports []*yaml.Node
	// networks are the networks it joins; "default" when it names none.
	networks    []string
	networkMode string
	// volumes are the sources of its mounts, as written.
	volumes []string
}

// readCompose parses a compose file.
func readCompose(path string) (*composeProject, error) {
	// yamlfile gives a syntax error the line a person should look at.
	f, err := yamlfile.Load(path)
	var problem yamlfile.Problem
	switch {
	case errors.As(err, &problem) && problem.Msg == yamlfile.Empty, err == nil && f.Root.Kind != yaml.MappingNode:
		return nil, yamlfile.Problems{{File: path, Msg: "is not a compose file: it has no services"}}
	case errors.As(err, &problem):
		return nil, yamlfile.Problems{problem}
	case err != nil:
		return nil, err
	}
	p := &composeProject{path: path, volumes: map[string]bool{}}
	for _, kv := range pairs(f.Root) {
		switch kv[0].Value {
		case "volumes":
			for _, v := range pairs(kv[1]) {
				p.volumes[v[0].Value] = true
			}
		case "services":
			for _, s := range pairs(kv[1]) {
				p.services = append(p.services, readService(s[0], s[1]))
			}
		}
	}
	if len(p.services) == 0 {
		return nil, yamlfile.Problems{{File: path, Field: "services", Msg: "is empty or missing: this is not a compose file that runs Dendrite"}}
	}
	return p, nil
}

func readService(key, n *yaml.Node) *composeService {
	s := &composeService{name: key.Value, line: key.Line}
	for _, kv := range pairs(n) {
		v := kv[1]
		switch kv[0].Value {
		case "image":
			s.image = v.Value
		case "command":
			if v.Kind == yaml.ScalarNode {
				s.command = strings.Fields(v.Value)
			}
			for _, a := range v.Content {
				s.command = append(s.command, a.Value)
			}
		case "ports":
			s.ports = v.Content
		case "network_mode":
			s.networkMode = v.Value
		case "networks":
			for _, e := range v.Content {
				if v.Kind == yaml.SequenceNode {
					s.networks = append(s.networks, e.Value)
				}
			}
			for _, e := range pairs(v) {
				s.networks = append(s.networks, e[0].Value)
			}
		case "volumes":
			for _, e := range v.Content {
				if e.Kind == yaml.ScalarNode {
					s.volumes = append(s.volumes, strings.SplitN(e.Value, ":", 2)[0])
					continue
				}
				for _, f := range pairs(e) {
					if f[0].Value == "source" {
						s.volumes = append(s.volumes, f[1].Value)
					}
				}
			}
		}
	}
	if len(s.networks) == 0 && s.networkMode == "" {
		s.networks = []string{"default"}
	}
	return s
}

// pairs returns a mapping's key and value nodes; nothing for other kinds.
func pairs(n *yaml.Node) [][2]*yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	out := make([][2]*yaml.Node, 0, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		out = append(out, [2]*yaml.Node{n.Content[i], n.Content[i+1]})
	}
	return out
}

func (p *composeProject) service(name string) *composeService {
	for _, s := range p.services {
		if s.name == name {
			return s
		}
	}
	return nil
}

// dendriteService finds the service that runs Dendrite: the one named, or
// the one whose image is Dendrite's, or the one that mounts the directory
// of dendrite.yaml. It is an error when none or several do.
func (p *composeProject) dendriteService(named, dendriteYAML string) (*composeService, error) {
	if named != "" {
		if s := p.service(named); s != nil {
			return s, nil
		}
		return nil, yamlfile.Problems{{File: p.path, Field: "services", Msg: fmt.Sprintf("has no service %q (-service)", named)}}
	}
	dir := filepath.Dir(p.path)
	cfgDir, _ := filepath.Abs(filepath.Dir(dendriteYAML))
	var byImage, byMount []*composeService
	for _, s := range p.services {
		if img := strings.ToLower(s.image); strings.Contains(img[strings.LastIndexByte(img, '/')+1:], "dendrite") {
			byImage = append(byImage, s)
		}
		for _, v := range s.volumes {
			if src := resolveSource(dir, v); src == cfgDir || src == filepath.Join(cfgDir, filepath.Base(dendriteYAML)) {
				byMount = append(byMount, s)
				break
			}
		}
	}
	candidates := byImage
	if len(byImage) != 1 && len(byMount) > 0 {
		candidates = byMount
	}
	switch len(candidates) {
	case 1:
		return candidates[0], nil
	case 0:
		return nil, yamlfile.Problems{{File: p.path, Field: "services", Msg: fmt.Sprintf("has no Dendrite service: none runs a dendrite image or mounts %s; name it with -service", cfgDir)}}
	}
	var names []string
	for _, s := range candidates {
		names = append(names, s.name)
	}
	return nil, yamlfile.Problems{{File: p.path, Field: "services", Msg: fmt.Sprintf("has several services that could be Dendrite (%s); name it with -service", strings.Join(names, ", "))}}
}

// resolveSource makes a bind mount's source absolute; a named volume stays
// as it is.
func resolveSource(dir, src string) string {
	switch {
	case strings.HasPrefix(src, "./") || strings.HasPrefix(src, "../") || src == "." || src == "..":
		return filepath.Join(dir, src)
	case strings.HasPrefix(src, "~/"):
		home, _ := os.UserHomeDir()
		return filepath.Join(home, src[2:])
	}
	return filepath.Clean(src)
}

// httpPort is the port of Dendrite's plain HTTP listener in the container:
// its -http-bind-address, else Dendrite's default, 8008.
func (s *composeService) httpPort() (int, error) {
	for i, a := range s.command {
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") {
			continue
		}
		if name == "unix-socket" {
			return 0, fmt.Errorf("service %s: Dendrite listens on a unix socket (-unix-socket); wellknownd proxies to HTTP over TCP: give Dendrite -http-bind-address :8008 instead", s.name)
		}
		if name != "http-bind-address" {
			continue
		}
		if !hasValue && i+1 < len(s.command) {
			value = s.command[i+1]
		}
		_, port, _ := strings.Cut(value, ":")
		if n, err := strconv.Atoi(port); err == nil && n > 0 && n < 65536 {
			return n, nil
		}
		return 0, fmt.Errorf("service %s: -http-bind-address %q is not host:port", s.name, value)
	}
	return 8008, nil
}

// publishedPorts are the host ports a ports: entry publishes: "80",
// "8000-8010:80-90", "127.0.0.1:443:443/tcp", "[::1]:80:80", or the long
// syntax's published. A container port alone publishes a random port (nil).
func publishedPorts(n *yaml.Node) []int {
	var spec string
	switch n.Kind {
	case yaml.ScalarNode:
		spec = n.Value
		if i := strings.LastIndexByte(spec, '/'); i >= 0 {
			spec = spec[:i]
		}
		if strings.HasPrefix(spec, "[") {
			if i := strings.Index(spec, "]:"); i >= 0 {
				spec = spec[i+2:]
			}
		}
		parts := strings.Split(spec, ":")
		if len(parts) < 2 {
			return nil
		}
		spec = parts[len(parts)-2]
	case yaml.MappingNode:
		for _, kv := range pairs(n) {
			if kv[0].Value == "published" {
				spec = kv[1].Value
			}
		}
	}
	lo, hi, isRange := strings.Cut(spec, "-")
	a, err := strconv.Atoi(lo)
	if err != nil {
		return nil
	}
	b := a
	if isRange {
		if b, err = strconv.Atoi(hi); err != nil || b < a || b-a > 65535 {
			return nil
		}
	}
	out := make([]int, 0, b-a+1)
	for p := a; p <= b; p++ {
		out = append(out, p)
	}
	return out
}

package server

import (
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/wellknownd/wellknownd/internal/testing/edgeconf"
	"github.com/wellknownd/wellknownd/internal/testing/freeport"
	"github.com/wellknownd/wellknownd/internal/testing/wait"
)

// TestSelfCheckConnectsWhereMServerSays: m.server names a port that no
// listener of the edge has. The self-check connects there as a remote
// server would: with nothing there it fails (it used to check the https
// listener instead, and pass); with a port mapping to the edge it finds
// this edge's certificate there, and passes.
func TestSelfCheckConnectsWhereMServerSays(t *testing.T) {
	for _, mapped := range []bool{false, true} {
		t.Run(fmt.Sprintf("mapped=%v", mapped), func(t *testing.T) {
			up := newRecorder(t)
			tlsAddr, fedAddr, elsewhere := freeport.Addr(t), freeport.Addr(t), freeport.Addr(t)
			_, tlsPort, _ := net.SplitHostPort(tlsAddr)
			_, port, _ := net.SplitHostPort(elsewhere)
			if mapped {
				forward(t, elsewhere, fedAddr)
			}
			edge := startEdge(t, edgeconf.New(edgeconf.Names("localhost", "localhost:"+port, "https://localhost:"+tlsPort),
				edgeconf.Listen("", tlsAddr, fedAddr, ""), edgeconf.Internal(t.TempDir()), edgeconf.Upstream(up.URL)), onListeners)
			check := `wellknownd_self_check_ok{check="this edge at localhost:` + port + `"}`
			wait.Until(t, "the self-check", 2*time.Minute, func() error {
				if !strings.Contains(edge.adminGET(t, "/metrics"), `wellknownd_self_check_ok{check="client API versions"}`) {
					return fmt.Errorf("not yet")
				}
				return nil
			})
			var line string
			wait.Until(t, "the self-check of localhost:"+port, 10*time.Second, func() error {
				for _, l := range strings.Split(edge.adminGET(t, "/metrics"), "\n") {
					if strings.HasPrefix(l, check) {
						line = l
						return nil
					}
				}
				return fmt.Errorf("no %s yet", check)
			})
			want := check + " 0"
			if mapped {
				want = check + " 1"
			}
			if line != want {
				t.Errorf("%s, want %s", line, want)
			}
		})
	}
}

// forward accepts on addr and copies each connection to and from to, as
// a port mapping does.
func forward(t *testing.T, addr, to string) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				u, err := net.Dial("tcp", to)
				if err != nil {
					return
				}
				defer u.Close()
				go io.Copy(u, c)
				io.Copy(c, u)
			}()
		}
	}()
}

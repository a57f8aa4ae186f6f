package server

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/wellknownd/wellknownd/internal/testing/acmetest"
	"github.com/wellknownd/wellknownd/internal/testing/edgeconf"
	"github.com/wellknownd/wellknownd/internal/testing/freeport"
	"github.com/wellknownd/wellknownd/internal/testing/pgtest"
	"github.com/wellknownd/wellknownd/internal/testing/wait"
)

// sharedEdgeConfig is edge n of several on pg's storage and ca, changed by
// opts.
func sharedEdgeConfig(ca *acmetest.CA, pg *pgtest.Server, n, httpPort, tlsPort int, opts ...edgeconf.Option) string {
	return edgeconf.SharedEdge(n, httpPort, tlsPort, ca.DirectoryURL, ca.APIRootFile, pg.URL, pg.PasswordFile, opts...)
}

// TestSharedStorageEdges: three edges on one PostgreSQL storage order one
// certificate between them, the CA validates it on an edge that did not
// order it, all three serve it; its renewal happens once and reaches all
// three without a restart; and a 30-second PostgreSQL outage leaves all
// three serving, and is seen and recovered from.
func TestSharedStorageEdges(t *testing.T) {
	pg := pgtest.Start(t)
	httpPort, tlsPort := freeport.Port(t), freeport.Port(t)
	// Short-lived certificates, so that a renewal comes within the test.
	ca := acmetest.StartValidity(t, httpPort, tlsPort, time.Minute)
	edge := func(n int) *testEdge {
		return startEdge(t, sharedEdgeConfig(ca, pg, n, httpPort, tlsPort), onListeners, withOptions(WithShortLivedCertificates(time.Second)))
	}
	addr := func(n int) string { return fmt.Sprintf("127.0.0.%d:%d", n, tlsPort) }

	// Edges 1 and 2 start; one of them orders, and the CA holds the
	// validation until edge 3 runs and the name resolves to it alone.
	caught, release := ca.HoldChallenges()
	start := time.Now()
	edges := []*testEdge{edge(1), edge(2)}
	select {
	case <-caught:
	case <-time.After(60 * time.Second):
		t.Fatal("no edge placed an order")
	}
	edges = append(edges, edge(3))
	// Listening before the CA is let go to it.
	wait.TCP(t, fmt.Sprintf("127.0.0.3:%d", httpPort))
	ca.DNS.AddDNSARecord("example.com", []string{"127.0.0.3"})
	release()
	first := waitCert(t, addr(1), "example.com", ca.Roots())
	t.Logf("first certificate after %v", time.Since(start).Round(time.Millisecond))
	for n := 2; n <= 3; n++ {
		if got := waitCert(t, addr(n), "example.com", ca.Roots()); got.SerialNumber.Cmp(first.SerialNumber) != 0 {
			t.Fatalf("edge %d serves serial %s, edge 1 %s", n, got.SerialNumber, first.SerialNumber)
		}
	}
	if n := ca.NewOrders(); n != 1 {
		t.Fatalf("%d orders for one name across three edges", n)
	}

	// The renewal: once, and every edge serves the renewed certificate.
	var renewed string
	wait.Until(t, "every edge serves the renewed certificate", 90*time.Second, func() error {
		serials := map[string]bool{}
		for n := 1; n <= 3; n++ {
			leaf, err := handshake(addr(n), "example.com", ca.Roots())
			if err != nil {
				return err
			}
			serials[leaf.SerialNumber.String()] = true
			renewed = leaf.SerialNumber.String()
		}
		if len(serials) != 1 || serials[first.SerialNumber.String()] {
			return fmt.Errorf("serials served: %v", serials)
		}
		return nil
	})
	if n := ca.NewOrders(); n != 2 {
		t.Fatalf("%d orders after one renewal, want 2", n)
	}
	t.Logf("renewed once (serial %s), on all three edges", renewed)

	// PostgreSQL goes away for 30 seconds: every edge keeps serving, and
	// says the storage is down; then it comes back.
	pg.Stop()
	down := time.Now()
	for time.Since(down) < 30*time.Second {
		for n := 1; n <= 3; n++ {
			if _, err := handshake(addr(n), "example.com", ca.Roots()); err != nil {
				t.Fatalf("edge %d with PostgreSQL down for %v: %v", n, time.Since(down).Round(time.Second), err)
			}
		}
		time.Sleep(time.Second)
	}
	for n, e := range edges {
		if st, ok := e.srv.storageStatus(); !ok || st.Reachable || st.Kind != "postgres" {
			t.Errorf("edge %d status with PostgreSQL down: %+v", n+1, st)
		}
		if !strings.Contains(e.adminGET(t, "/metrics"), `wellknownd_tls_storage_up{kind="postgres"} 0`) {
			t.Errorf("edge %d metrics with PostgreSQL down lack wellknownd_tls_storage_up 0", n+1)
		}
	}
	pg.Start()
	for n, e := range edges {
		wait.Until(t, fmt.Sprintf("edge %d sees PostgreSQL again", n+1), 20*time.Second, func() error {
			if st, _ := e.srv.storageStatus(); !st.Reachable {
				return fmt.Errorf("%+v", st)
			}
			return nil
		})
	}
}

// TestSharedStorageTLSALPN: with tls-alpn-01 alone, the CA's validation
// handshake reaches an edge that did not order, which answers it with the
// challenge certificate from the shared storage.
func TestSharedStorageTLSALPN(t *testing.T) {
	pg := pgtest.Start(t)
	httpPort, tlsPort := freeport.Port(t), freeport.Port(t)
	ca := acmetest.Start(t, httpPort, tlsPort)
	edge := func(n int) {
		startEdge(t, strings.Replace(sharedEdgeConfig(ca, pg, n, httpPort, tlsPort), "challenges: [http-01]", "challenges: [tls-alpn-01]", 1), onListeners)
	}
	caught, release := ca.HoldChallenges()
	edge(1)
	select {
	case <-caught:
	case <-time.After(60 * time.Second):
		t.Fatal("the edge placed no order")
	}
	edge(2)
	// Listening before the CA is let go to it.
	wait.TCP(t, fmt.Sprintf("127.0.0.2:%d", tlsPort))
	ca.DNS.AddDNSARecord("example.com", []string{"127.0.0.2"})
	release()
	first := waitCert(t, fmt.Sprintf("127.0.0.1:%d", tlsPort), "example.com", ca.Roots())
	if got := waitCert(t, fmt.Sprintf("127.0.0.2:%d", tlsPort), "example.com", ca.Roots()); got.SerialNumber.Cmp(first.SerialNumber) != 0 {
		t.Fatalf("edge 2 serves serial %s, edge 1 %s", got.SerialNumber, first.SerialNumber)
	}
	if n := ca.NewOrders(); n != 1 {
		t.Fatalf("%d orders", n)
	}
}

// TestSharedInternalCA: edges in tls.mode internal on one PostgreSQL
// storage make one CA between them, even when they start together, and
// /status says where certificates are kept.
func TestSharedInternalCA(t *testing.T) {
	pg := pgtest.Start(t)
	tlsPort := freeport.Port(t)
	cfg := func(n int) string {
		return edgeconf.New(
			edgeconf.Names("example.com", "example.com:443", "https://example.com"),
			edgeconf.Hosts("example.com"),
			edgeconf.Listen("", fmt.Sprintf("127.0.0.%d:%d", n, tlsPort), "", ""),
			edgeconf.Internal(pg.URL, fmt.Sprintf("storage_password_file: %q", pg.PasswordFile)),
			edgeconf.Upstream("http://127.0.0.1:1"))
	}
	edges := make([]*testEdge, 2)
	done := make(chan struct{})
	for i := range edges {
		go func() { edges[i] = startEdge(t, cfg(i+1), onListeners); done <- struct{}{} }()
	}
	<-done
	<-done
	for i, e := range edges {
		wait.Until(t, fmt.Sprintf("edge %d runs", i+1), 20*time.Second, func() error {
			if e.srv.Certificates() == nil {
				return fmt.Errorf("no certificates yet")
			}
			return nil
		})
	}
	for i, e := range edges {
		roots := e.srv.Certificates().Roots()
		if !roots.Equal(edges[0].srv.Certificates().Roots()) {
			t.Fatalf("edge %d has a CA of its own", i+1)
		}
		waitCert(t, fmt.Sprintf("127.0.0.%d:%d", i+1, tlsPort), "example.com", edges[0].srv.Certificates().Roots())
	}
	if status := edges[1].adminGET(t, "/status"); !strings.Contains(status, `"tls_storage": {
    "kind": "postgres",
    "reachable": true,`) {
		t.Fatalf("/status:\n%s", status)
	}
	if n := pg.Query(`SELECT count(*) FROM wellknownd.certmagic_data WHERE key LIKE 'internal-ca/%'`); n != "2\n" {
		t.Fatalf("internal CA keys in storage: %s", n)
	}
}

// BenchmarkSharedStorageIssuance measures the time to the first
// certificates (two names) with one edge and with three on shared
// PostgreSQL storage, and the lock statements each issuance costs:
//
//	go test ./server -run '^$' -bench SharedStorageIssuance -benchtime 1x
func BenchmarkSharedStorageIssuance(b *testing.B) {
	pg := pgtest.Start(b)
	for _, edges := range []int{1, 3} {
		b.Run(fmt.Sprintf("edges=%d", edges), func(b *testing.B) {
			for i := range b.N {
				// A database of its own: no certificate, account or lock
				// from the run before.
				db := fmt.Sprintf("bench_%d_%d", edges, i)
				pg.Query("CREATE DATABASE " + db)
				shared := *pg
				shared.URL = strings.Replace(pg.URL, "/wellknownd?", "/"+db+"?", 1)
				httpPort, tlsPort := freeport.Port(b), freeport.Port(b)
				ca := acmetest.Start(b, httpPort, tlsPort)
				start := time.Now()
				var started []*testEdge
				for n := 1; n <= edges; n++ {
					cfg := sharedEdgeConfig(ca, &shared, n, httpPort, tlsPort, edgeconf.Hosts("example.com", "matrix.example.com"))
					started = append(started, startEdge(b, cfg, onListeners))
				}
				for n := 1; n <= edges; n++ {
					for _, h := range []string{"example.com", "matrix.example.com"} {
						waitCert(b, fmt.Sprintf("127.0.0.%d:%d", n, tlsPort), h, ca.Roots())
					}
				}
				elapsed := time.Since(start)
				var trips int64
				for _, e := range started {
					st, _ := e.srv.storageStatus()
					trips += st.LockRoundTrips
				}
				for _, e := range started {
					e.stop()
				}
				b.ReportMetric(elapsed.Seconds(), "s-to-first-certs")
				b.ReportMetric(float64(trips)/2, "lock-round-trips/issuance")
				b.ReportMetric(float64(ca.NewOrders())/2, "orders/name")
				ca.Stop()
			}
		})
	}
}

package delegation

import (
	"strings"
	"testing"
)

func TestRenderMatchesWorkerBytes(t *testing.T) {
	// The bytes a Cloudflare Worker's JSON.stringify produced for the same
	// objects: compact, keys in order, no HTML escaping of & < >.
	spec := Spec{
		ServerName:     "example.com",
		Server:         "matrix.example.com:443",
		ClientBaseURL:  "https://matrix.example.com",
		IdentityServer: "https://vector.im",
		ClientExtra: map[string]any{
			"org.matrix.msc3575.proxy": map[string]any{"url": "https://sync.example.com/?a=1&b=<2>"},
			"io.element.e2ee":          map[string]any{"default": false, "secure_backup_required": true},
			"org.matrix.msc4143.rtc_foci": []any{
				map[string]any{"type": "livekit", "livekit_service_url": "https://rtc.example.com"},
			},
			"m.tile_server": map[string]any{"map_style_url": "https://tiles.example.com/style.json"},
			"x.number":      3,
		},
		Support: &Support{
			Contacts:    []Contact{{MatrixID: "@admin:example.com", EmailAddress: "admin@example.com", Role: RoleAdmin}, {EmailAddress: "sec@example.com", Role: RoleSecurity}},
			SupportPage: "https://example.com/support",
		},
	}
	docs, problems := spec.Render()
	if len(problems) != 0 {
		t.Fatal(problems)
	}
	want := map[string]string{
		"server":  `{"m.server":"matrix.example.com:443"}`,
		"client":  `{"io.element.e2ee":{"default":false,"secure_backup_required":true},"m.homeserver":{"base_url":"https://matrix.example.com"},"m.identity_server":{"base_url":"https://vector.im"},"m.tile_server":{"map_style_url":"https://tiles.example.com/style.json"},"org.matrix.msc3575.proxy":{"url":"https://sync.example.com/?a=1&b=<2>"},"org.matrix.msc4143.rtc_foci":[{"livekit_service_url":"https://rtc.example.com","type":"livekit"}],"x.number":3}`,
		"support": `{"contacts":[{"matrix_id":"@admin:example.com","email_address":"admin@example.com","role":"m.role.admin"},{"email_address":"sec@example.com","role":"m.role.security"}],"support_page":"https://example.com/support"}`,
	}
	got := map[string]Document{"server": docs.Server, "client": docs.Client, "support": docs.Support}
	for name, w := range want {
		if string(got[name].Body) != w {
			t.Errorf("%s document:\n got %s\nwant %s", name, got[name].Body, w)
		}
		if tag := got[name].ETag; len(tag) < 10 || tag[0] != '"' || tag[len(tag)-1] != '"' {
			t.Errorf("%s ETag %q is not a quoted strong tag", name, tag)
		}
	}
	if docs.Server.ETag == docs.Client.ETag {
		t.Errorf("server and client documents share ETag %s", docs.Server.ETag)
	}
}

func TestRenderWorkerMinimal(t *testing.T) {
	docs, problems := Spec{ServerName: "example.com", Server: "matrix.example.com:443", ClientBaseURL: "https://matrix.example.com"}.Render()
	if len(problems) != 0 {
		t.Fatal(problems)
	}
	if got, want := string(docs.Client.Body), `{"m.homeserver":{"base_url":"https://matrix.example.com"}}`; got != want {
		t.Errorf("client = %s, want %s", got, want)
	}
	if docs.Support.Body != nil {
		t.Errorf("support rendered without a support spec: %s", docs.Support.Body)
	}
	// The same input renders the same ETag: a reload with an unchanged
	// document must not invalidate caches.
	again, _ := Spec{ServerName: "example.com", Server: "matrix.example.com:443", ClientBaseURL: "https://matrix.example.com"}.Render()
	if again.Client.ETag != docs.Client.ETag {
		t.Errorf("ETag not stable: %s then %s", docs.Client.ETag, again.Client.ETag)
	}
}

func TestSpecCheck(t *testing.T) {
	ok := Spec{ServerName: "example.com", Server: "matrix.example.com:443", ClientBaseURL: "https://matrix.example.com"}
	cases := []struct {
		name   string
		mutate func(*Spec)
		field  string
		want   string
		warn   bool
	}{
		{"server name with scheme", func(s *Spec) { s.ServerName = "https://example.com" }, "server_name", `has a scheme ("https://")`, false},
		{"m.server with scheme", func(s *Spec) { s.Server = "https://matrix.example.com" }, "m.server", `has a scheme ("https://"); a server name is host[:port], e.g. matrix.example.com`, false},
		{"m.server with path", func(s *Spec) { s.Server = "matrix.example.com/x" }, "m.server", "has a path or query", false},
		{"m.server bad port", func(s *Spec) { s.Server = "matrix.example.com:99999" }, "m.server", `has port "99999"; a port is 1 to 65535`, false},
		{"base_url without scheme", func(s *Spec) { s.ClientBaseURL = "matrix.example.com" }, "m.homeserver.base_url", `"matrix.example.com" is not an absolute URL; write it with its scheme, e.g. https://matrix.example.com`, false},
		{"base_url plain http", func(s *Spec) { s.ClientBaseURL = "http://matrix.example.com" }, "m.homeserver.base_url", "is plain http; clients need https (http is accepted only for localhost)", false},
		{"base_url http localhost", func(s *Spec) { s.ClientBaseURL = "http://localhost:8008" }, "m.homeserver.base_url", "is plain http; clients elsewhere than this machine will refuse it", true},
		{"base_url http loopback IP", func(s *Spec) { s.ClientBaseURL = "http://127.0.0.1:8008" }, "m.homeserver.base_url", "is plain http", true},
		{"base_url ftp", func(s *Spec) { s.ClientBaseURL = "ftp://matrix.example.com" }, "m.homeserver.base_url", `has scheme "ftp"; it must be https`, false},
		{"base_url upper-case scheme", func(s *Spec) { s.ClientBaseURL = "HTTPS://matrix.example.com" }, "m.homeserver.base_url", "write it in lower case", false},
		{"base_url with query", func(s *Spec) { s.ClientBaseURL = "https://matrix.example.com/?x=1" }, "m.homeserver.base_url", "has a query or fragment", false},
		{"base_url with user", func(s *Spec) { s.ClientBaseURL = "https://u:p@matrix.example.com" }, "m.homeserver.base_url", "has user information", false},
		{"base_url bad host", func(s *Spec) { s.ClientBaseURL = "https://exa_mple.com" }, "m.homeserver.base_url", `has a bad host: "exa_mple.com" has '_'`, false},
		{"base_url empty", func(s *Spec) { s.ClientBaseURL = "" }, "m.homeserver.base_url", "is empty", false},
		{"identity server http", func(s *Spec) { s.IdentityServer = "http://vector.im" }, "m.identity_server.base_url", "is plain http", false},
		{"extra overrides homeserver", func(s *Spec) { s.ClientExtra = map[string]any{"m.homeserver": map[string]any{"base_url": "https://x"}} }, "extra.m.homeserver", "is written from delegation.client_base_url; set it there, not in client_extra", false},
		{"extra overrides identity", func(s *Spec) { s.ClientExtra = map[string]any{"m.identity_server": "x"} }, "extra.m.identity_server", "is written from delegation.identity_server", false},
		{"extra sliding sync no url", func(s *Spec) {
			s.ClientExtra = map[string]any{"org.matrix.msc3575.proxy": map[string]any{"uri": "https://x"}}
		}, "extra.org.matrix.msc3575.proxy.url", "is empty", false},
		{"extra sliding sync not object", func(s *Spec) { s.ClientExtra = map[string]any{"org.matrix.msc3575.proxy": "https://x"} }, "extra.org.matrix.msc3575.proxy", `must be an object with "url"`, false},
		{"extra non-string keys", func(s *Spec) { s.ClientExtra = map[string]any{"x.y": map[any]any{1: 2}} }, "extra.x.y", "which JSON cannot hold", false},
		{"extra nested bad value", func(s *Spec) { s.ClientExtra = map[string]any{"x.y": []any{1, map[any]any{1: 2}}} }, "extra.x.y[1]", "which JSON cannot hold", false},
		{"support empty", func(s *Spec) { s.Support = &Support{} }, "support", "has neither contacts nor a support_page; the spec requires at least one", false},
		{"support contact without address", func(s *Spec) { s.Support = &Support{Contacts: []Contact{{Role: RoleAdmin}}} }, "support.contacts[0]", "has neither matrix_id nor email_address", false},
		{"support bad role", func(s *Spec) { s.Support = &Support{Contacts: []Contact{{EmailAddress: "a@b.c", Role: "admin"}}} }, "support.contacts[0].role", `"admin" is neither m.role.admin, m.role.security nor namespaced`, false},
		{"support unknown m. role", func(s *Spec) {
			s.Support = &Support{Contacts: []Contact{{EmailAddress: "a@b.c", Role: "m.role.owner"}}}
		}, "support.contacts[0].role", `"m.role.owner" is not a role the spec defines`, false},
		{"support no role", func(s *Spec) { s.Support = &Support{Contacts: []Contact{{EmailAddress: "a@b.c"}}} }, "support.contacts[0].role", "is empty; use m.role.admin", false},
		{"support bad matrix id", func(s *Spec) {
			s.Support = &Support{Contacts: []Contact{{MatrixID: "admin:example.com", Role: RoleAdmin}}}
		}, "support.contacts[0].matrix_id", `must start with '@'`, false},
		{"support matrix id no server", func(s *Spec) { s.Support = &Support{Contacts: []Contact{{MatrixID: "@admin", Role: RoleAdmin}}} }, "support.contacts[0].matrix_id", `has no ':server_name'`, false},
		{"support matrix id bad server", func(s *Spec) {
			s.Support = &Support{Contacts: []Contact{{MatrixID: "@admin:https://x", Role: RoleAdmin}}}
		}, "support.contacts[0].matrix_id", `server name has a scheme`, false},
		{"support bad email", func(s *Spec) {
			s.Support = &Support{Contacts: []Contact{{EmailAddress: "Admin <a@b.c>", Role: RoleAdmin}}}
		}, "support.contacts[0].email_address", "is not a bare e-mail address", false},
		{"support bad page", func(s *Spec) { s.Support = &Support{SupportPage: "example.com/support"} }, "support.support_page", "must start with http:// or https://", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := ok
			tc.mutate(&s)
			errs := s.Check()
			if len(errs) != 1 {
				t.Fatalf("Check() = %v, want exactly one problem", errs)
			}
			e := errs[0]
			if e.Field != tc.field || !strings.Contains(e.Err.Error(), tc.want) || e.Warning != tc.warn {
				t.Fatalf("Check() = {%s: %v warning=%v}, want {%s: …%s… warning=%v}", e.Field, e.Err, e.Warning, tc.field, tc.want, tc.warn)
			}
			docs, problems := s.Render()
			if len(problems) != 1 || problems[0].Error() != e.Error() || problems[0].Warning != e.Warning {
				t.Fatalf("Render() reported %v, want what Check() did: %v", problems, e)
			}
			if tc.warn && docs.Server.Body == nil {
				t.Fatalf("Render() rendered nothing on a warning: %v", e)
			}
			if !tc.warn && docs.Server.Body != nil {
				t.Fatalf("Render() rendered despite %v", e)
			}
		})
	}
	if errs := ok.Check(); len(errs) != 0 {
		t.Fatalf("valid spec: %v", errs)
	}
	valid := ok
	valid.Support = &Support{Contacts: []Contact{{MatrixID: "@a:example.com", Role: "org.example.role.billing"}}}
	if errs := valid.Check(); len(errs) != 0 {
		t.Fatalf("namespaced role refused: %v", errs)
	}
}

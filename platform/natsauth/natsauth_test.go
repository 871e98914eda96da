package natsauth_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/takumo/audit/platform/natsauth"
)

// Identities are created once, mode 0600 in a 0700 directory, and read
// back unchanged on the next start.
func TestLoadOrCreateDirKeepsIdentities(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	first, created, err := natsauth.LoadOrCreateDir(dir)
	if err != nil || !created {
		t.Fatalf("first load: created=%v err=%v", created, err)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("directory mode %v (%v)", fi.Mode().Perm(), err)
	}
	for _, r := range natsauth.Roles {
		fi, err := os.Stat(filepath.Join(dir, natsauth.SeedFile(r)))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: mode %v (%v)", r, fi.Mode().Perm(), err)
		}
		if !strings.HasPrefix(first[r].Public, "U") {
			t.Fatalf("%s: public key %q", r, first[r].Public)
		}
	}
	again, created, err := natsauth.LoadOrCreateDir(dir)
	if err != nil || created {
		t.Fatalf("second load: created=%v err=%v", created, err)
	}
	for _, r := range natsauth.Roles {
		if again[r].Public != first[r].Public {
			t.Errorf("%s changed across loads", r)
		}
	}
	if err := natsauth.WriteSeedFile(filepath.Join(dir, natsauth.SeedFile(natsauth.Producer)), first[natsauth.Producer]); err == nil {
		t.Error("WriteSeedFile replaced an existing file")
	}
	if err := os.WriteFile(filepath.Join(dir, natsauth.SeedFile(natsauth.API)), []byte("not a seed"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := natsauth.LoadOrCreateDir(dir); err == nil || !strings.Contains(err.Error(), "api") {
		t.Errorf("a broken seed file: %v", err)
	}
}

// Every identity but the producer's has an inbox of its own, and no role
// but admin may subscribe to another role's inbox.
func TestInboxesAreSeparate(t *testing.T) {
	seen := map[string]bool{}
	for _, r := range natsauth.Roles {
		p := r.InboxPrefix()
		if seen[p] {
			t.Errorf("%s shares inbox prefix %s", r, p)
		}
		seen[p] = true
		perms, err := natsauth.PermissionsOf(r)
		if err != nil {
			t.Fatal(err)
		}
		if r != natsauth.Admin && !slices.Equal(perms.SubscribeAllow, []string{p + ".>"}) {
			t.Errorf("%s subscribes to %v", r, perms.SubscribeAllow)
		}
	}
}

// The configuration written for an external nats-server gives every user
// the same permissions the embedded server uses, and that server refuses
// anonymous clients and enforces them.
func TestServerConfigMatchesTheEmbeddedUsers(t *testing.T) {
	keys, err := natsauth.NewKeyring()
	if err != nil {
		t.Fatal(err)
	}
	conf, err := natsauth.ServerConfig(keys)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "nats-server.conf")
	full := "listen: 127.0.0.1:-1\njetstream { store_dir: " + strconvQuote(filepath.Join(dir, "js")) + " }\n" + conf
	if err := os.WriteFile(path, []byte(full), 0o600); err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(path)
	if err != nil {
		t.Fatalf("nats-server rejects the configuration: %v\n%s", err, conf)
	}
	want, err := natsauth.ServerUsers(keys)
	if err != nil {
		t.Fatal(err)
	}
	if len(opts.Nkeys) != len(want) {
		t.Fatalf("%d users in the file, want %d", len(opts.Nkeys), len(want))
	}
	for i, u := range opts.Nkeys {
		w := want[i]
		if u.Nkey != w.Nkey {
			t.Fatalf("user %d is %s, want %s", i, u.Nkey, w.Nkey)
		}
		for _, pair := range [][2][]string{
			{u.Permissions.Publish.Allow, w.Permissions.Publish.Allow},
			{u.Permissions.Publish.Deny, w.Permissions.Publish.Deny},
			{u.Permissions.Subscribe.Allow, w.Permissions.Subscribe.Allow},
			{u.Permissions.Subscribe.Deny, w.Permissions.Subscribe.Deny},
		} {
			got, exp := slices.Sorted(slices.Values(pair[0])), slices.Sorted(slices.Values(pair[1]))
			if !slices.Equal(got, exp) {
				t.Errorf("user %d: %v, want %v", i, got, exp)
			}
		}
	}
	opts.NoSigs, opts.NoLog = true, true
	srv, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	defer func() { srv.Shutdown(); srv.WaitForShutdown() }()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("server not ready")
	}
	if nc, err := nats.Connect(srv.ClientURL()); err == nil {
		nc.Close()
		t.Fatal("anonymous client accepted")
	}
	seedFile := filepath.Join(dir, "producer.nk")
	if err := natsauth.WriteSeedFile(seedFile, keys[natsauth.Producer]); err != nil {
		t.Fatal(err)
	}
	popts, err := natsauth.ClientConfig{CredsFile: seedFile}.Options(natsauth.Producer)
	if err != nil {
		t.Fatal(err)
	}
	violations := make(chan error, 10)
	nc, err := nats.Connect(srv.ClientURL(), append(popts, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { violations <- err }))...)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, err := nc.SubscribeSync("audit.events.>"); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-violations:
		if !strings.Contains(err.Error(), `Subscription to "audit.events.>"`) {
			t.Fatalf("violation: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the producer subscribed to every event")
	}
	if _, err := (natsauth.ClientConfig{}).Options(natsauth.Producer); err != natsauth.ErrNoCredentials {
		t.Fatalf("no credentials file: %v", err)
	}
}

func strconvQuote(s string) string { return `"` + strings.ReplaceAll(s, `"`, `\"`) + `"` }

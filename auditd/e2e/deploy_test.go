package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/takumo/audit/platform/natsauth"
)

// The cluster deployment's NATS configuration (deploy/cluster) parses as
// a clustered node with JetStream, every role's nkey, authenticated routes
// to the three nodes, and no monitoring port; its routes.conf is the one
// the command in docker-compose.yml writes, run here with bash.
func TestClusterDeploymentNATSConfig(t *testing.T) {
	compose, err := os.ReadFile("../../deploy/cluster/docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	// The routes.conf command of the header: from P=... to the redirect.
	var cmd []string
	in := false
	for _, line := range strings.Split(string(compose), "\n") {
		line = strings.TrimPrefix(strings.TrimPrefix(line, "#"), "   ")
		if strings.HasPrefix(line, "P=") {
			in = true
		}
		if in {
			cmd = append(cmd, line)
			if strings.Contains(line, "> deploy/nats-auth/routes.conf") {
				break
			}
		}
	}
	if len(cmd) == 0 {
		t.Fatal("docker-compose.yml names no command for routes.conf")
	}
	dir := t.TempDir()
	script := strings.ReplaceAll(strings.Join(cmd, "\n"), "deploy/nats-auth/routes.conf", filepath.Join(dir, "routes.conf"))
	if out, err := exec.Command("bash", "-c", script).CombinedOutput(); err != nil {
		t.Fatalf("routes.conf command: %v\n%s", err, out)
	}
	base, err := os.ReadFile("../../deploy/cluster/nats.conf")
	if err != nil {
		t.Fatal(err)
	}
	keys, err := natsauth.NewKeyring()
	if err != nil {
		t.Fatal(err)
	}
	auth, err := natsauth.ServerConfig(keys)
	if err != nil {
		t.Fatal(err)
	}
	conf := strings.ReplaceAll(string(base), "/data", filepath.Join(dir, "js"))
	for name, body := range map[string]string{"nats.conf": conf, "auth.conf": auth} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("NATS_SERVER_NAME", "nats2")
	opts, err := server.ProcessConfigFile(filepath.Join(dir, "nats.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if opts.ServerName != "nats2" || opts.Cluster.Name != "audit" || !opts.JetStream || opts.HTTPPort != 0 || len(opts.Nkeys) != len(natsauth.Roles) {
		t.Errorf("server %q, cluster %q, jetstream %v, monitoring port %d, users %d", opts.ServerName, opts.Cluster.Name, opts.JetStream, opts.HTTPPort, len(opts.Nkeys))
	}
	if opts.Cluster.Username != "route" || len(opts.Cluster.Password) != 48 || len(opts.Routes) != 3 {
		t.Fatalf("route user %q, password of %d characters, %d routes", opts.Cluster.Username, len(opts.Cluster.Password), len(opts.Routes))
	}
	for _, r := range opts.Routes {
		if p, _ := r.User.Password(); r.User.Username() != "route" || p != opts.Cluster.Password {
			t.Errorf("route %s does not carry the route credentials", r.Host)
		}
	}
	for _, want := range []string{`AUDIT_STREAM_REPLICAS: "3"`, "AUDIT_CLICKHOUSE_CLUSTER: audit", "nats://nats1:4222,nats://nats2:4222,nats://nats3:4222"} {
		if !strings.Contains(string(compose), want) {
			t.Errorf("deploy/cluster/docker-compose.yml lacks %s", want)
		}
	}
	if regexp.MustCompile(`"(4222|6222):`).Match(compose) {
		t.Error("deploy/cluster/docker-compose.yml publishes a NATS port")
	}
}

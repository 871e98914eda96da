package natstest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/takumo/audit/platform/natsauth"
	"github.com/takumo/audit/platform/natsembed"
)

// Cluster is a NATS cluster of servers running in the test process, each
// listening on loopback with its own JetStream store directory, client
// port and route port. Every node accepts the same nkey identities
// (natsauth, as a single server does) and authenticates routes with a
// user and password made for the cluster. A node can be stopped and
// started again on the same ports and store, as a restarted machine would
// be. Everything is stopped when the test ends. Its methods are safe for
// concurrent use.
type Cluster struct {
	// Keys are the identities every node accepts.
	Keys natsauth.Keyring

	t     testing.TB
	mu    sync.Mutex
	nodes []*clusterNode
}

type clusterNode struct {
	cfg natsembed.Config
	srv *natsembed.Server // nil while stopped
}

// ClusterName is the name of the clusters StartCluster starts.
const ClusterName = "audit-test"

// StartCluster starts an n-node cluster and waits until JetStream has a
// meta leader that every node follows.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	keys, err := natsauth.NewKeyring()
	if err != nil {
		t.Fatal(err)
	}
	users, err := natsauth.ServerUsers(keys)
	if err != nil {
		t.Fatal(err)
	}
	secret := make([]byte, 16)
	_, _ = rand.Read(secret)
	c := &Cluster{Keys: keys, t: t}
	client, route := freePorts(t, n), freePorts(t, n)
	for i := range n {
		var routes []string
		for j := range n {
			if j != i {
				routes = append(routes, fmt.Sprintf("127.0.0.1:%d", route[j]))
			}
		}
		c.nodes = append(c.nodes, &clusterNode{cfg: natsembed.Config{
			StoreDir:   t.TempDir(),
			Listen:     fmt.Sprintf("127.0.0.1:%d", client[i]),
			ServerName: fmt.Sprintf("n%d", i+1),
			Users:      users,
			Cluster: &natsembed.Cluster{Name: ClusterName, Listen: fmt.Sprintf("127.0.0.1:%d", route[i]), Routes: routes,
				Username: "route", Password: hex.EncodeToString(secret)},
		}})
	}
	// Start the nodes together: each waits for its routes before it is
	// ready for clients.
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = c.start(i) }()
	}
	wg.Wait()
	t.Cleanup(func() {
		for i := range c.nodes {
			c.Stop(i)
		}
	})
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	c.WaitReady(t, time.Minute)
	return c
}

// freePorts returns n loopback ports that were free a moment ago.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	ports := make([]int, n)
	var lns []net.Listener
	for i := range ports {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		ports[i] = ln.Addr().(*net.TCPAddr).Port
	}
	for _, ln := range lns {
		ln.Close()
	}
	return ports
}

func (c *Cluster) start(i int) error {
	c.mu.Lock()
	nd := c.nodes[i]
	running := nd.srv != nil
	cfg := nd.cfg
	c.mu.Unlock()
	if running {
		return nil
	}
	srv, err := natsembed.Start(cfg)
	if err != nil {
		return fmt.Errorf("natstest: node %s: %w", cfg.ServerName, err)
	}
	mu.Lock()
	keyrings[srv] = c.Keys
	mu.Unlock()
	c.mu.Lock()
	nd.srv = srv
	c.mu.Unlock()
	return nil
}

// Len is the number of nodes.
func (c *Cluster) Len() int { return len(c.nodes) }

// Name is node i's server name, what JetStream reports as a stream's
// leader or replica.
func (c *Cluster) Name(i int) string { return c.nodes[i].cfg.ServerName }

// Index returns the index of the node named name, -1 if none is.
func (c *Cluster) Index(name string) int {
	for i, nd := range c.nodes {
		if nd.cfg.ServerName == name {
			return i
		}
	}
	return -1
}

// Server returns node i, nil while it is stopped.
func (c *Cluster) Server(i int) *natsembed.Server {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[i].srv
}

// URL lists every node's client URL, comma separated: what a client is
// given to fail over between nodes (AUDIT_NATS_URL).
func (c *Cluster) URL() string {
	urls := make([]string, len(c.nodes))
	for i, nd := range c.nodes {
		urls[i] = "nats://" + nd.cfg.Listen
	}
	return strings.Join(urls, ",")
}

// Stop shuts node i down; its store directory and ports are kept for
// Restart. Stopping a stopped node does nothing. The server stops without
// handing over the leadership of its streams first, so the remaining
// nodes elect new leaders as after a crash.
func (c *Cluster) Stop(i int) {
	c.mu.Lock()
	nd := c.nodes[i]
	srv := nd.srv
	nd.srv = nil
	c.mu.Unlock()
	if srv == nil {
		return
	}
	srv.Close()
	mu.Lock()
	delete(keyrings, srv)
	mu.Unlock()
}

// Restart starts node i again with its name, ports and store.
func (c *Cluster) Restart(t testing.TB, i int) {
	t.Helper()
	if err := c.start(i); err != nil {
		t.Fatal(err)
	}
}

// WaitReady waits until every running node's JetStream follows a meta
// leader.
func (c *Cluster) WaitReady(t testing.TB, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ready := true
		for i := range c.nodes {
			if s := c.Server(i); s != nil && !s.JetStreamReady() {
				ready = false
			}
		}
		if ready {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("natstest: cluster JetStream not ready after %s", timeout)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// Connect opens a TCP connection to the cluster as id — to any node, and
// to another when that one goes away, reconnecting for ever — with its
// JetStream context, both closed when the test ends.
func (c *Cluster) Connect(t testing.TB, id natsauth.Identity, opts ...nats.Option) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	auth, err := natsauth.Options(id)
	if err != nil {
		t.Fatal(err)
	}
	all := append([]nats.Option{nats.Name(t.Name() + "/" + string(id.Role)), nats.MaxReconnects(-1),
		nats.ReconnectWait(100 * time.Millisecond)}, auth...)
	nc, err := nats.Connect(c.URL(), append(all, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

// StreamLeader returns the index of the node leading stream, waiting up
// to timeout for the stream to have a leader.
func (c *Cluster) StreamLeader(t testing.TB, js jetstream.JetStream, stream string, timeout time.Duration) int {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		s, err := js.Stream(ctx, stream)
		var info *jetstream.StreamInfo
		if err == nil {
			info, err = s.Info(ctx)
		}
		cancel()
		if err == nil && info.Cluster != nil && info.Cluster.Leader != "" {
			if i := c.Index(info.Cluster.Leader); i >= 0 {
				return i
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("natstest: stream %s has no leader after %s (last error: %v)", stream, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

package natstest_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/takumo/audit/platform/natsauth"
	"github.com/takumo/audit/platform/natstest"
	"github.com/takumo/audit/platform/topology"
)

// A three-node cluster keeps an R3 stream writable when its leader stops,
// and the stopped node catches up when it is started again.
func TestClusterSurvivesItsStreamLeader(t *testing.T) {
	c := natstest.StartCluster(t, 3)
	_, admin := c.Connect(t, c.Keys[natsauth.Admin])
	cfg := topology.Config{Replicas: 3}
	cfg.SetDefaults()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := topology.Ensure(ctx, admin, cfg); err != nil {
		t.Fatal(err)
	}
	_, js := c.Connect(t, c.Keys[natsauth.Producer])
	publish := func(id string) error {
		pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
		defer pcancel()
		_, err := js.Publish(pctx, "audit.events.org_a.auth.login", []byte(id), jetstream.WithMsgID(id))
		return err
	}
	if err := publish("first"); err != nil {
		t.Fatal(err)
	}
	leader := c.StreamLeader(t, admin, topology.EventsStream, 10*time.Second)
	c.Stop(leader)
	stopped := time.Now()
	for publish("second") != nil {
		if time.Since(stopped) > 30*time.Second {
			t.Fatal("no publish accepted within 30s of the leader stopping")
		}
	}
	t.Logf("stream leader %s stopped: publishing resumed after %s", c.Name(leader), time.Since(stopped).Round(time.Millisecond))
	if now := c.StreamLeader(t, admin, topology.EventsStream, 10*time.Second); now == leader {
		t.Fatalf("node %s still leads after it stopped", c.Name(now))
	}
	c.Restart(t, leader)
	c.WaitReady(t, 30*time.Second)
	s, err := admin.Stream(ctx, topology.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		info, err := s.Info(ctx)
		if err == nil && info.Cluster != nil && len(info.Cluster.Replicas) == 2 {
			current := 0
			for _, r := range info.Cluster.Replicas {
				if r.Current {
					current++
				}
			}
			if current == 2 && info.State.Msgs == 2 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the restarted node did not catch up: %+v %v", info, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

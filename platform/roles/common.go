package roles

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/takumo/audit/platform/chdb"
	"github.com/takumo/audit/platform/eventstore"
	"github.com/takumo/audit/platform/eventstore/embedded"
	"github.com/takumo/audit/platform/eventstore/server"
	"github.com/takumo/audit/platform/lifecycle"
	"github.com/takumo/audit/platform/natsembed"
	"github.com/takumo/audit/platform/orgsettings"
	"github.com/takumo/audit/platform/topology"
	"github.com/takumo/audit/producer"
)

// NewOps serves p.Health on p.HTTPAddr. It starts first and stops last.
// No write timeout: exports stream for as long as they take.
func NewOps() Constructor {
	return func(p *Process) lifecycle.Stage {
		var srv *http.Server
		errc := make(chan error, 1)
		return lifecycle.Stage{
			Start: func(context.Context) error {
				ln, err := net.Listen("tcp", p.HTTPAddr)
				if err != nil {
					return fmt.Errorf("AUDIT_HTTP_ADDR: %w", err)
				}
				p.mu.Lock()
				p.addr = ln.Addr()
				p.mu.Unlock()
				srv = &http.Server{Handler: p.Health, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 16 << 10}
				go func() { errc <- srv.Serve(ln) }()
				return nil
			},
			Run: func(ctx context.Context) error {
				select {
				case <-ctx.Done():
					return nil
				case err := <-errc:
					return fmt.Errorf("http: %w", err)
				}
			},
			Stop: func(ctx context.Context) error {
				if err := srv.Shutdown(ctx); err != nil {
					_ = srv.Close()
					return err
				}
				return nil
			},
		}
	}
}

// EmbeddedBus runs a NATS server inside the process (auditd).
type EmbeddedBus struct {
	// StoreDir holds JetStream's files.
	StoreDir string
	// Listen is the client listener for other processes; empty for none.
	Listen string
}

// NewBus connects to cfg.NATSURL, or, when it is empty and embedded is
// not nil, starts an embedded server and connects in process.
func NewBus(cfg BusConfig, embedded *EmbeddedBus) Constructor {
	return func(p *Process) lifecycle.Stage {
		var srv *natsembed.Server
		var nc *nats.Conn
		return lifecycle.Stage{
			Start: func(context.Context) error {
				var err error
				switch {
				case cfg.NATSURL != "":
					nc, err = nats.Connect(cfg.NATSURL, nats.Name("audit-"+p.Name), nats.MaxReconnects(-1))
					if err != nil {
						return fmt.Errorf("nats %s: %w", cfg.NATSURL, err)
					}
				case embedded != nil:
					srv, err = natsembed.Start(natsembed.Config{StoreDir: embedded.StoreDir, Listen: embedded.Listen})
					if err != nil {
						return err
					}
					if nc, err = srv.Connect(p.Name); err != nil {
						srv.Close()
						return fmt.Errorf("nats: %w", err)
					}
					p.Log.Debug("embedded NATS server started", zap.String("url", srv.ClientURL()))
				default:
					return errors.New("AUDIT_NATS_URL is required")
				}
				js, err := jetstream.New(nc)
				if err != nil {
					return fmt.Errorf("jetstream: %w", err)
				}
				p.mu.Lock()
				p.JS = js
				p.conns = func(string) (*nats.Conn, error) { return nc, nil }
				p.mu.Unlock()
				p.Health.AddCheck("nats", func(context.Context) error {
					if !nc.IsConnected() {
						return fmt.Errorf("not connected (%s)", nc.Status())
					}
					return nil
				})
				return nil
			},
			Stop: func(ctx context.Context) error {
				_ = nc.Drain()
				for nc.IsDraining() && ctx.Err() == nil {
					time.Sleep(10 * time.Millisecond)
				}
				nc.Close()
				if srv != nil {
					srv.Close()
				}
				return nil
			},
		}
	}
}

// BusDescription describes where the bus is, for the start-up log line.
func BusDescription(cfg BusConfig, listen string) string {
	switch {
	case cfg.NATSURL != "":
		return cfg.NATSURL
	case listen != "":
		return "embedded, nats://" + listen
	}
	return "embedded, in-process"
}

// EmbeddedStore is the embedded ClickHouse engine (auditd).
type EmbeddedStore struct {
	// Lib is libchdb.so; empty uses chdb.DefaultLibPath.
	Lib string
	// Dir holds the engine's data.
	Dir string
}

// NewStore opens the event store: a ClickHouse server at
// cfg.ClickHouseURL (writes) and cfg.ClickHouseReadURL (reads), or the
// embedded engine when no URL is set and embedded is not nil. migrate
// applies the schema (the ingestor and auditd); the query service never
// migrates.
func NewStore(cfg StoreConfig, migrate bool, embed *EmbeddedStore) Constructor {
	return func(p *Process) lifecycle.Stage {
		var closers []func()
		return lifecycle.Stage{
			Start: func(ctx context.Context) error {
				log := p.Log.Named("store")
				open := func(url, what string) (*eventstore.Store, error) {
					s, err := server.OpenStore(ctx, server.Config{URL: url, Database: cfg.ClickHouseDB, Cluster: cfg.ClickHouseCluster, Logger: log})
					if err != nil {
						return nil, fmt.Errorf("clickhouse server (%s): %w", what, err)
					}
					closers = append(closers, func() { _ = s.Close() })
					return s, nil
				}
				switch {
				case cfg.ClickHouseURL != "" || cfg.ClickHouseReadURL != "":
					if cfg.ClickHouseURL != "" {
						w, err := open(cfg.ClickHouseURL, "AUDIT_CLICKHOUSE_URL")
						if err != nil {
							return err
						}
						if migrate {
							if err := w.Migrate(ctx); err != nil {
								return err
							}
						}
						p.Writer, p.Events = w, w
					} else if migrate {
						return errors.New("AUDIT_CLICKHOUSE_URL is required: this process writes events")
					}
					if cfg.ClickHouseReadURL != "" {
						r, err := open(cfg.ClickHouseReadURL, "AUDIT_CLICKHOUSE_READ_URL")
						if err != nil {
							return err
						}
						p.Events = r
					}
				case embed != nil:
					lib := embed.Lib
					if lib == "" {
						lib = chdb.DefaultLibPath()
					}
					sess, err := chdb.Open(lib, embed.Dir)
					if err != nil {
						if errors.Is(err, chdb.ErrLibraryMissing) {
							return fmt.Errorf("the embedded ClickHouse engine is not installed: %w", err)
						}
						return fmt.Errorf("embedded clickhouse: %w", err)
					}
					closers = append(closers, func() { _ = sess.Close() })
					s, err := eventstore.New(embedded.New(sess, embedded.Options{}), eventstore.Config{Database: cfg.ClickHouseDB, Logger: log})
					if err != nil {
						return err
					}
					closers = append(closers, func() { _ = s.Close() })
					if err := s.Migrate(ctx); err != nil {
						return err
					}
					p.Writer, p.Events = s, s
				default:
					return errors.New("AUDIT_CLICKHOUSE_URL (or AUDIT_CLICKHOUSE_READ_URL for reads only) is required")
				}
				p.Health.AddCheck("clickhouse", p.Events.Ping)
				return nil
			},
			Stop: func(context.Context) error {
				for i := len(closers) - 1; i >= 0; i-- {
					closers[i]()
				}
				return nil
			},
		}
	}
}

// StoreDescription describes the store for the start-up log line.
func StoreDescription(cfg StoreConfig, dir string) string {
	if cfg.ClickHouseURL != "" || cfg.ClickHouseReadURL != "" {
		return "server"
	}
	return "embedded, " + filepath.Clean(dir)
}

// NewTopology creates or updates the shared streams and consumers in the
// owner; every other process waits for them (with backoff) and reports
// drift. It also sets p.KV and p.Verifier and exports the consumers' lag.
func NewTopology(cfg TopologyConfig) Constructor {
	return func(p *Process) lifecycle.Stage {
		return lifecycle.Stage{Start: func(ctx context.Context) error {
			t := cfg.Topology()
			if err := t.Validate(); err != nil {
				return fmt.Errorf("topology: %w", err)
			}
			p.Verifier = topology.NewVerifier(p.JS, p.Log.Named("topology"), p.Registry)
			p.Registry.MustRegister(topology.NewLagCollector(p.JS))
			if p.Owner {
				p.KV = p.JS
				return topology.Ensure(ctx, p.JS, t)
			}
			p.KV = topology.Bind(p.JS, p.Verifier)
			_, err := p.Verifier.Verify(ctx, t.Objects())
			return err
		}}
	}
}

// NewSettings opens the org settings store (bucket AUDIT_ORG_SETTINGS).
func NewSettings(cfg SettingsConfig, topo TopologyConfig) Constructor {
	return func(p *Process) lifecycle.Stage {
		return lifecycle.Stage{
			Start: func(ctx context.Context) error {
				if err := cfg.Validate(); err != nil {
					return err
				}
				s, err := orgsettings.Open(ctx, p.KV, topo.StreamReplicas, orgsettings.Plan(cfg.DefaultPlan), p.Log.Named("orgsettings"))
				if err != nil {
					return err
				}
				p.Settings = s
				return nil
			},
			Stop: func(context.Context) error {
				p.Settings.Close()
				return nil
			},
		}
	}
}

// NewRecorder opens the producer the services record their own actions
// with (exports, settings and management changes).
func NewRecorder() Constructor {
	return func(p *Process) lifecycle.Stage {
		return lifecycle.Stage{
			Start: func(context.Context) error {
				r, err := producer.New(p.JS)
				if err != nil {
					return err
				}
				p.Recorder = r
				return nil
			},
			Stop: func(ctx context.Context) error { return p.Recorder.Close(ctx) },
		}
	}
}

// Shared returns the constructors of the roles every binary runs the same
// way: ops, bus, topology, settings and recorder. Binaries add the store
// and their own roles.
func Shared(bus BusConfig, embedded *EmbeddedBus, topo TopologyConfig, settings SettingsConfig) map[string]Constructor {
	return map[string]Constructor{
		Ops:      NewOps(),
		Bus:      NewBus(bus, embedded),
		Topology: NewTopology(topo),
		Settings: NewSettings(settings, topo),
		Recorder: NewRecorder(),
	}
}

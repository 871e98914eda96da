package roles

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/takumo/audit/platform/chdb"
	"github.com/takumo/audit/platform/eventstore"
	"github.com/takumo/audit/platform/eventstore/embedded"
	"github.com/takumo/audit/platform/eventstore/server"
	"github.com/takumo/audit/platform/ingestapi"
	"github.com/takumo/audit/platform/lifecycle"
	"github.com/takumo/audit/platform/natsauth"
	"github.com/takumo/audit/platform/natsembed"
	"github.com/takumo/audit/platform/orgsettings"
	"github.com/takumo/audit/platform/topology"
	"github.com/takumo/audit/producer"
	"github.com/takumo/audit/schemas"
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
	// KeysDir holds every role's nkey seed (natsauth.LoadOrCreateDir),
	// created on first start; the server accepts only these identities.
	KeysDir string
	// TLSCert and TLSKey make the listener require TLS.
	TLSCert, TLSKey string
}

// NewBus connects to cfg.NATSURL with the credentials of
// cfg.NATSCreds, or, when the URL is empty and embedded is not nil,
// starts an embedded server that accepts only the identities of
// embedded.KeysDir. A seed file gives the process one connection; a
// directory of seeds (auditd) or the embedded server give each identity
// its own (Process.Identity).
func NewBus(cfg BusConfig, embedded *EmbeddedBus) Constructor {
	return func(p *Process) lifecycle.Stage {
		var srv *natsembed.Server
		var mu sync.Mutex
		conns := map[natsauth.Role]*nats.Conn{}
		var all []*nats.Conn
		return lifecycle.Stage{
			Start: func(context.Context) error {
				var dial func(r natsauth.Role) (*nats.Conn, error)
				single := false
				name := func(r natsauth.Role) string { return "audit-" + p.Name + "/" + string(r) }
				switch {
				case cfg.NATSURL != "":
					if cfg.NATSCreds == "" {
						return errors.New("AUDIT_NATS_CREDS is required with AUDIT_NATS_URL: the NATS server accepts no anonymous client")
					}
					fi, err := os.Stat(cfg.NATSCreds)
					if err != nil {
						return fmt.Errorf("AUDIT_NATS_CREDS: %w", err)
					}
					single = !fi.IsDir()
					dial = func(r natsauth.Role) (*nats.Conn, error) {
						file := cfg.NATSCreds
						if !single {
							file = filepath.Join(cfg.NATSCreds, natsauth.SeedFile(r))
						}
						opts, err := natsauth.ClientConfig{CredsFile: file, CAFile: cfg.NATSCA}.Options(r)
						if err != nil {
							return nil, fmt.Errorf("AUDIT_NATS_CREDS: %w", err)
						}
						nc, err := nats.Connect(cfg.NATSURL, append(opts, nats.Name(name(r)), nats.MaxReconnects(-1))...)
						if err != nil {
							return nil, fmt.Errorf("nats %s as %s: %w", cfg.NATSURL, r, err)
						}
						return nc, nil
					}
				case embedded != nil:
					keys, created, err := natsauth.LoadOrCreateDir(embedded.KeysDir)
					if err != nil {
						return err
					}
					users, err := natsauth.ServerUsers(keys)
					if err != nil {
						return err
					}
					srv, err = natsembed.Start(natsembed.Config{StoreDir: embedded.StoreDir, Listen: embedded.Listen,
						Users: users, TLSCert: embedded.TLSCert, TLSKey: embedded.TLSKey})
					if err != nil {
						return err
					}
					p.Log.Debug("embedded NATS server started", zap.String("url", srv.ClientURL()),
						zap.String("identities", embedded.KeysDir), zap.Bool("created", created))
					dial = func(r natsauth.Role) (*nats.Conn, error) {
						opts, err := natsauth.Options(keys[r])
						if err != nil {
							return nil, err
						}
						nc, err := srv.Connect(name(r), opts...)
						if err != nil {
							return nil, fmt.Errorf("nats as %s: %w", r, err)
						}
						return nc, nil
					}
				default:
					return errors.New("AUDIT_NATS_URL is required")
				}
				open := func(role string) (*nats.Conn, error) {
					id := p.Identity(role)
					if single {
						own := p.Identity(Topology)
						// The log writer's rights belong to tlog alone: no
						// other identity can stand in for it.
						if id == natsauth.Tlog && own != natsauth.Tlog && !p.Owner {
							return nil, fmt.Errorf("AUDIT_NATS_CREDS is one identity (%s) but role %s connects as %s: set it to a directory holding %s and %s",
								own, role, id, natsauth.SeedFile(own), natsauth.SeedFile(id))
						}
						id = own
					}
					mu.Lock()
					defer mu.Unlock()
					if nc := conns[id]; nc != nil {
						return nc, nil
					}
					nc, err := dial(id)
					if err != nil {
						return nil, err
					}
					// Permission violations arrive asynchronously: a role
					// doing what its identity may not.
					nc.SetErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
						p.Log.Warn("nats", zap.String("identity", string(id)), zap.Error(err))
					})
					conns[id] = nc
					all = append(all, nc)
					return nc, nil
				}
				p.mu.Lock()
				p.conns = open
				p.mu.Unlock()
				js, err := p.JetStream(Topology)
				if err != nil {
					return err
				}
				p.mu.Lock()
				p.JS = js
				p.mu.Unlock()
				p.Health.AddCheck("nats", func(context.Context) error {
					mu.Lock()
					defer mu.Unlock()
					for id, nc := range conns {
						if !nc.IsConnected() {
							return fmt.Errorf("%s: not connected (%s)", id, nc.Status())
						}
					}
					return nil
				})
				return nil
			},
			Stop: func(ctx context.Context) error {
				mu.Lock()
				defer mu.Unlock()
				for _, nc := range all {
					_ = nc.Drain()
				}
				for _, nc := range all {
					for nc.IsDraining() && ctx.Err() == nil {
						time.Sleep(10 * time.Millisecond)
					}
					nc.Close()
				}
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
					s, err := server.OpenStore(ctx, server.Config{URL: url, Database: cfg.ClickHouseDB, Cluster: cfg.ClickHouseCluster, Logger: log, RetentionGrace: cfg.RetentionGrace})
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
					s, err := eventstore.New(embedded.New(sess, embedded.Options{}), eventstore.Config{Database: cfg.ClickHouseDB, Logger: log, RetentionGrace: cfg.RetentionGrace})
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

// StorageHint adds, to an error of a stream the NATS server refused for
// lack of storage (topology.ErrStorage), the settings that size the
// streams.
func StorageHint(err error) error {
	if !errors.Is(err, topology.ErrStorage) {
		return err
	}
	return fmt.Errorf("%w (the streams' sizes: AUDIT_STREAM_MAX_BYTES, AUDIT_FANOUT_MAX_BYTES, AUDIT_WEBHOOK_QUEUE_MAX_BYTES and "+
		"AUDIT_WEBHOOK_ATTEMPTS_MAX_BYTES; by default the streams of auditd reserve 18 GiB in all, 1 GiB of dead letters included; "+
		"the embedded NATS server keeps its store under AUDIT_DATA_DIR)", err)
}

// NewTopology creates or updates the shared streams and consumers in the
// owner; every other process waits for them (with backoff) and reports
// drift. It also sets p.Verifier (Buckets uses it) and exports the consumers' lag.
//
// In the owner it keeps them: every AUDIT_TOPOLOGY_REPAIR_INTERVAL, and at
// once when a reader of the process reports an object missing
// (Verifier.Missing), it recreates what was deleted and sets drifted
// settings back (topology.Verifier.Repair) for every object the process
// applied (Require included).
func NewTopology(cfg TopologyConfig) Constructor {
	return func(p *Process) lifecycle.Stage {
		return lifecycle.Stage{
			Start: func(ctx context.Context) error {
				t := cfg.Topology()
				if err := t.Validate(); err != nil {
					return fmt.Errorf("topology: %w", err)
				}
				p.Verifier = topology.NewVerifier(p.JS, p.Log.Named("topology"), p.Registry)
				p.Registry.MustRegister(topology.NewLagCollector(p.JS))
				if p.Owner {
					p.notice = make(chan struct{}, 1)
					p.Verifier.OnMissing = p.noticeMissing
					d, err := topology.WatchDeletions(p.JS.Conn())
					if err != nil {
						return fmt.Errorf("topology: watching stream deletions: %w", err)
					}
					p.Verifier.Deletions = d
					if err := topology.EnsureWhenAvailable(ctx, p.JS, t, cfg.StartWait, p.Log.Named("topology")); err != nil {
						return StorageHint(err)
					}
					// The service keys of the HTTP ingest API: only the api
					// identity reads and writes them (package natsauth).
					keys := ingestapi.KeysBucketConfig(t.Replicas)
					if _, err := p.JS.CreateOrUpdateKeyValue(ctx, keys); err != nil {
						return fmt.Errorf("topology: bucket %s: %w", ingestapi.KeysBucket, err)
					}
					p.keep(t.Objects().Add(topology.Objects{Buckets: []jetstream.KeyValueConfig{keys}}))
					return nil
				}
				_, err := p.Verifier.Verify(ctx, t.Objects())
				return err
			},
			Run: func(ctx context.Context) error {
				defer p.Verifier.Deletions.Close()
				if !p.Owner || cfg.RepairInterval <= 0 {
					<-ctx.Done()
					return nil
				}
				p.keepTopology(ctx, cfg.RepairInterval)
				return nil
			},
		}
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
				kv, err := p.Buckets(Settings)
				if err != nil {
					return err
				}
				s, err := orgsettings.Open(ctx, kv, topo.StreamReplicas, orgsettings.Plan(cfg.DefaultPlan), p.Log.Named("orgsettings"))
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
				js, err := p.JetStream(Recorder)
				if err != nil {
					return err
				}
				r, err := producer.New(js)
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

// NewCatalog loads the action catalog: the built-in actions, plus those of
// cfg.CatalogFile when set. A bad file stops start-up with the file, line
// and problem.
func NewCatalog(cfg CatalogConfig) Constructor {
	return func(p *Process) lifecycle.Stage {
		return lifecycle.Stage{Start: func(context.Context) error {
			if cfg.CatalogFile == "" {
				p.Catalog = schemas.NewCatalog()
				return nil
			}
			c, err := schemas.ReadCatalogFile(cfg.CatalogFile)
			if err != nil {
				return fmt.Errorf("AUDIT_CATALOG_FILE: %w", err)
			}
			p.Catalog = c
			p.Log.Info("action catalog loaded", zap.String("file", cfg.CatalogFile), zap.Int("actions", len(c.Actions())))
			return nil
		}}
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

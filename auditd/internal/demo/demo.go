// Package demo emits a continuing stream of realistic audit events for a
// few demo organizations, through the producer like any service would, so
// a new installation has something to look at.
package demo

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"go.uber.org/zap"

	"github.com/takumo/audit/platform/orgsettings"
	"github.com/takumo/audit/producer"
	"github.com/takumo/audit/schemas"
)

// Config sets the pace.
type Config struct {
	// Rate is events per second across all demo organizations.
	Rate float64
	// Seed makes the sequence reproducible; zero picks one from the clock.
	Seed uint64
}

// Org is a demo organization and its plan.
type Org struct {
	ID   string
	Plan orgsettings.Plan
}

// Orgs are the demo organizations, one per viewable plan and one Free.
var Orgs = []Org{
	{ID: "org_acme", Plan: orgsettings.Enterprise},
	{ID: "org_globex", Plan: orgsettings.Pro},
	{ID: "org_initech", Plan: orgsettings.Developer},
	{ID: "org_hooli", Plan: orgsettings.Free},
}

// SettingsWriter stores org settings.
type SettingsWriter interface {
	Put(ctx context.Context, s orgsettings.Settings) error
}

// Run registers the demo organizations' plans, then emits events at the
// configured rate until ctx ends.
func Run(ctx context.Context, cfg Config, js producer.Publisher, settings SettingsWriter, log *zap.Logger) error {
	if cfg.Rate <= 0 {
		return errors.New("demo: rate must be positive")
	}
	for _, o := range Orgs {
		if err := settings.Put(ctx, orgsettings.Settings{OrgID: o.ID, Plan: o.Plan}); err != nil {
			return fmt.Errorf("demo: settings of %s: %w", o.ID, err)
		}
	}
	p, err := producer.New(js)
	if err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = p.Close(cctx)
	}()
	seed := cfg.Seed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	g := NewGenerator(seed)
	tick := time.NewTicker(time.Duration(float64(time.Second) / cfg.Rate))
	defer tick.Stop()
	log.Info("demo events flowing", zap.Float64("per_second", cfg.Rate), zap.Int("orgs", len(Orgs)))
	var sent int
	for {
		select {
		case <-ctx.Done():
			log.Info("demo stopped", zap.Int("emitted", sent))
			return nil
		case <-tick.C:
		}
		ev := g.Next()
		if _, err := p.EmitAsync(ctx, ev); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			log.Warn("demo event refused", zap.String("action", ev.Action), zap.Error(err))
			continue
		}
		sent++
	}
}

// Generator produces plausible events: people sign in (and sometimes
// fail), invite and promote colleagues, rotate API keys, edit policies,
// tighten security and change billing. Not safe for concurrent use.
type Generator struct {
	r      *rand.Rand
	people [][]schemas.Actor
	keySeq int
}

var names = []struct{ first, last string }{
	{"Ada", "Lovelace"}, {"Grace", "Hopper"}, {"Alan", "Turing"}, {"Edsger", "Dijkstra"},
	{"Barbara", "Liskov"}, {"Ken", "Thompson"}, {"Margaret", "Hamilton"}, {"Dennis", "Ritchie"},
	{"Frances", "Allen"}, {"Leslie", "Lamport"}, {"Radia", "Perlman"}, {"Niklaus", "Wirth"},
}

var userAgents = []string{
	"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
	"Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
	"takumo-cli/2.4.1 (linux; amd64)",
}

// NewGenerator returns a generator for the demo organizations.
func NewGenerator(seed uint64) *Generator {
	g := &Generator{r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
	for oi, o := range Orgs {
		var staff []schemas.Actor
		for i := range 5 + oi {
			n := names[(oi*3+i)%len(names)]
			a := producer.User(fmt.Sprintf("usr_%s_%d", o.ID[4:], i+1), n.first+" "+n.last,
				fmt.Sprintf("%s.%s@%s.example", lower(n.first), lower(n.last), o.ID[4:]))
			a.IP = fmt.Sprintf("198.51.100.%d", 10+oi*20+i)
			a.UserAgent = userAgents[(oi+i)%len(userAgents)]
			staff = append(staff, a)
		}
		g.people = append(g.people, staff)
	}
	return g
}

func lower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

func pick[T any](r *rand.Rand, xs []T) T { return xs[r.IntN(len(xs))] }

// Next returns the next event. Sign-ins dominate, as they do in real logs.
func (g *Generator) Next() schemas.Event {
	oi := g.r.IntN(len(Orgs))
	org := Orgs[oi].ID
	staff := g.people[oi]
	actor := pick(g.r, staff)
	other := pick(g.r, staff)
	member := producer.Member(other.ID, other.Name, other.Email)
	roles := []string{"viewer", "member", "admin", "billing_admin"}
	ev := g.event(org, actor, member, roles)
	ev.Context = schemas.Context{RequestID: fmt.Sprintf("req_%016x", g.r.Uint64()), Source: "dashboard"}
	return ev
}

func (g *Generator) event(org string, actor schemas.Actor, member schemas.Target, roles []string) schemas.Event {
	r := g.r
	switch n := r.IntN(100); {
	case n < 30:
		return producer.AuthLogin(org, actor, pick(r, []string{"password", "sso", "passkey"}))
	case n < 38:
		return producer.AuthLoginFailed(org, actor, "password", pick(r, []string{"invalid_password", "mfa_required", "account_locked"}))
	case n < 43:
		return producer.AuthLogout(org, actor)
	case n < 46:
		return producer.AuthMFAEnrolled(org, actor, pick(r, []string{"totp", "webauthn"}))
	case n < 48:
		return producer.AuthMFAChallengeFailed(org, actor, "totp", "invalid_code")
	case n < 52:
		// One invitation, one address: the target's name and the details'
		// email are the same person.
		email := fmt.Sprintf("new.hire%d@example.com", r.IntN(1000))
		return producer.MemberInvited(org, actor, producer.Invitation(fmt.Sprintf("inv_%06d", r.IntN(1e6)), email), email, pick(r, roles))
	case n < 57:
		from := pick(r, roles)
		to := pick(r, roles)
		for to == from {
			to = pick(r, roles)
		}
		return producer.MemberRoleChanged(org, actor, member, from, to)
	case n < 59:
		return producer.MemberRemoved(org, actor, member, pick(r, roles))
	case n < 60:
		return producer.MemberSuspended(org, actor, member, "offboarding")
	case n < 66:
		g.keySeq++
		return producer.APIKeyCreated(org, actor, producer.APIKey(fmt.Sprintf("key_%05d", g.keySeq), pick(r, []string{"ci-deploy", "metrics-export", "terraform"})),
			fmt.Sprintf("tk_live_%04x", r.IntN(1<<16)), pick(r, [][]string{{"events.read"}, {"events.read", "events.write"}, {"admin"}}))
	case n < 69:
		return producer.APIKeyRotated(org, actor, producer.APIKey(fmt.Sprintf("key_%05d", r.IntN(g.keySeq+1)), "ci-deploy"), fmt.Sprintf("tk_live_%04x", r.IntN(1<<16)), fmt.Sprintf("tk_live_%04x", r.IntN(1<<16)))
	case n < 71:
		return producer.APIKeyDeleted(org, actor, producer.APIKey(fmt.Sprintf("key_%05d", r.IntN(g.keySeq+1)), "terraform"))
	case n < 76:
		return producer.PolicyUpdated(org, actor, producer.Policy(fmt.Sprintf("pol_%d", r.IntN(20)), pick(r, []string{"Production access", "Data retention", "Break-glass"})), 1+r.IntN(30))
	case n < 78:
		return producer.PolicyCreated(org, actor, producer.Policy(fmt.Sprintf("pol_%d", 20+r.IntN(100)), "Contractor access"), 1)
	case n < 81:
		return producer.SecurityIPAllowlistUpdated(org, actor, []string{fmt.Sprintf("203.0.113.%d/32", r.IntN(255))}, nil)
	case n < 83:
		return producer.SecurityMFAEnforcementChanged(org, actor, r.IntN(2) == 0)
	case n < 84:
		return producer.SecurityDomainVerified(org, actor, org[4:]+".example")
	case n < 88:
		return producer.OrganizationSettingsUpdated(org, actor, pick(r, []string{"default_region", "session_timeout_minutes", "display_name"}), "old", "new")
	case n < 90:
		return producer.BillingPaymentMethodUpdated(org, actor, pick(r, []string{"visa", "mastercard", "amex"}), fmt.Sprintf("%04d", r.IntN(10000)))
	case n < 93:
		return producer.BillingCreditsPurchased(org, actor, int64(100*(1+r.IntN(50))), "USD")
	case n < 95:
		return producer.BillingInvoicePaid(org, producer.System("billing"), producer.Invoice(fmt.Sprintf("in_%08d", r.IntN(1e8))), int64(1000+r.IntN(90000)), "USD")
	case n < 97:
		return producer.OrganizationRenamed(org, actor, org[4:], org[4:]+" Inc.")
	default:
		return producer.AuthSessionRevoked(org, actor, producer.Session(fmt.Sprintf("ses_%012x", r.Uint64()>>16)))
	}
}

package cli

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/takumo/audit/platform/tlog"
	"github.com/takumo/audit/platform/tlog/witness"
)

const verifyUsage = `usage:
  auditctl verify --export FILE --checkpoint FILE [--checkpoint OLDER ...] [--edges FILE] --key VKEY
      recompute an export (NDJSON with log_index and integrity) and check it against
      the signed checkpoint of the largest size; older checkpoints narrow down a mismatch
  auditctl verify consistency --old FILE --new FILE --proof FILE --key VKEY
      check that an older checkpoint is a prefix of a newer one
  auditctl verify inclusion --entry FILE --checkpoint FILE --proof FILE --key VKEY
      check one exported event's inclusion proof

--key (repeatable; without it, AUDIT_TLOG_VERIFIER_KEYS comma separated) is a checkpoint
verifier key "<name>+<hash>+<base64>"; list every key the log has used so checkpoints
signed before a rotation verify. --origin checks the log's origin "<deployment>/<org>".
A checkpoint file is the signed note, or a checkpoint record as a webhook or SIEM
destination received it (the webhook body, the JSON record or HEC/OCSF object
holding it, or the note in base64 as CEF and LEEF carry it).
`

// runVerify checks exports, checkpoints and proofs offline: it reads only
// files and never contacts the server.
func runVerify(args []string, env Env) error {
	if len(args) > 0 {
		switch args[0] {
		case "consistency":
			return runVerifyConsistency(args[1:], env)
		case "inclusion":
			return runVerifyInclusion(args[1:], env)
		}
	}
	fs := newVerifyFlagSet("verify", env)
	var cps repeated
	export := fs.String("export", "", "export file (NDJSON), - for stdin")
	fs.Var(&cps, "checkpoint", "signed checkpoint file (repeatable)")
	edges := fs.String("edges", "", "range edges (JSON) when the export is not the whole log")
	keys, origin := verifyKeys(fs, env)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *export == "" || len(cps) == 0 {
		return fmt.Errorf("%w: --export and --checkpoint are required\n%s", errUsage, verifyUsage)
	}
	vs, err := keys.verifiers()
	if err != nil {
		return err
	}
	var all []tlog.Checkpoint
	for _, p := range cps {
		c, err := openCheckpoint(vs, p, *origin)
		if err != nil {
			return err
		}
		all = append(all, c)
	}
	slices.SortFunc(all, func(a, b tlog.Checkpoint) int { return cmpSize(a.Size, b.Size) })
	opts := tlog.VerifyOptions{Checkpoint: all[len(all)-1], Earlier: all[:len(all)-1]}
	for _, c := range all[1:] {
		if c.Origin != all[0].Origin {
			return fmt.Errorf("checkpoints of different logs: %q and %q", all[0].Origin, c.Origin)
		}
	}
	if *edges != "" {
		var e tlog.Edges
		if err := readJSON(*edges, &e); err != nil {
			return err
		}
		opts.Edges = &e
	}
	in := os.Stdin
	if *export != "-" {
		f, err := os.Open(*export)
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	}
	rep, err := tlog.VerifyExport(in, opts)
	if errors.Is(err, tlog.ErrExport) {
		// A line the verifier cannot read unambiguously is a verdict too.
		fmt.Fprintln(env.Stdout, "NOT verified:", err)
		return errVerification
	}
	if err != nil {
		return err
	}
	fmt.Fprintln(env.Stdout, rep.String())
	if rep.Problem != nil {
		return errVerification
	}
	return nil
}

// errVerification makes the exit status 1 after the verdict is printed.
var errVerification = errors.New("verification failed")

func cmpSize(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func runVerifyConsistency(args []string, env Env) error {
	fs := newVerifyFlagSet("verify consistency", env)
	oldF := fs.String("old", "", "older signed checkpoint")
	newF := fs.String("new", "", "newer signed checkpoint")
	proofF := fs.String("proof", "", "consistency proof (JSON)")
	keys, origin := verifyKeys(fs, env)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *oldF == "" || *newF == "" || *proofF == "" {
		return fmt.Errorf("%w: --old, --new and --proof are required\n%s", errUsage, verifyUsage)
	}
	vs, err := keys.verifiers()
	if err != nil {
		return err
	}
	older, err := openCheckpoint(vs, *oldF, *origin)
	if err != nil {
		return err
	}
	newer, err := openCheckpoint(vs, *newF, *origin)
	if err != nil {
		return err
	}
	var p tlog.ConsistencyProofData
	if err := readJSON(*proofF, &p); err != nil {
		return err
	}
	if p.Size1 != older.Size || p.Size2 != newer.Size {
		return fmt.Errorf("the proof is for sizes %d and %d, the checkpoints are %d and %d", p.Size1, p.Size2, older.Size, newer.Size)
	}
	if err := tlog.VerifyConsistency(older, newer, p.Hashes); err != nil {
		fmt.Fprintf(env.Stdout, "NOT consistent: checkpoint size %d root %x is not a prefix of size %d root %x: %v\n",
			older.Size, older.Root, newer.Size, newer.Root, err)
		return errVerification
	}
	fmt.Fprintf(env.Stdout, "consistent: checkpoint size %d root %x is a prefix of size %d root %x (%s)\n",
		older.Size, older.Root, newer.Size, newer.Root, newer.Origin)
	return nil
}

func runVerifyInclusion(args []string, env Env) error {
	fs := newVerifyFlagSet("verify inclusion", env)
	entryF := fs.String("entry", "", "one exported event (a line of an export)")
	cpF := fs.String("checkpoint", "", "signed checkpoint")
	proofF := fs.String("proof", "", "inclusion proof (JSON)")
	keys, origin := verifyKeys(fs, env)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *entryF == "" || *cpF == "" || *proofF == "" {
		return fmt.Errorf("%w: --entry, --checkpoint and --proof are required\n%s", errUsage, verifyUsage)
	}
	vs, err := keys.verifiers()
	if err != nil {
		return err
	}
	cp, err := openCheckpoint(vs, *cpF, *origin)
	if err != nil {
		return err
	}
	line, err := os.ReadFile(*entryF)
	if err != nil {
		return err
	}
	x, err := tlog.ParseEntry([]byte(strings.TrimSpace(string(line))))
	if err != nil {
		return err
	}
	var p tlog.InclusionProofData
	if err := readJSON(*proofF, &p); err != nil {
		return err
	}
	if x.LogIndex == nil {
		fmt.Fprintf(env.Stdout, "NOT included: event %s has no log_index\n", x.Event.ID)
		return errVerification
	}
	if p.LogIndex != *x.LogIndex || p.TreeSize != cp.Size {
		return fmt.Errorf("the proof is for index %d in a tree of %d, the event has index %d and the checkpoint size %d", p.LogIndex, p.TreeSize, *x.LogIndex, cp.Size)
	}
	leaf, err := tlog.EntryLeaf(x)
	if err == nil {
		err = tlog.VerifyInclusion(cp, *x.LogIndex, leaf, p.Hashes)
	}
	if err != nil {
		fmt.Fprintf(env.Stdout, "NOT included: event %s at index %d does not verify against checkpoint size %d: %v\n", x.Event.ID, *x.LogIndex, cp.Size, err)
		return errVerification
	}
	fmt.Fprintf(env.Stdout, "included: event %s at index %d, leaf %s, in checkpoint size %d root %x (%s)\n",
		x.Event.ID, *x.LogIndex, hex.EncodeToString(leaf), cp.Size, cp.Root, cp.Origin)
	return nil
}

func newVerifyFlagSet(name string, env Env) *flag.FlagSet {
	fs := newFlagSet(name, env)
	fs.Usage = func() { fmt.Fprint(env.Stderr, verifyUsage) }
	return fs
}

// repeated is a repeatable string flag.
type repeated []string

func (m *repeated) String() string { return strings.Join(*m, ",") }
func (m *repeated) Set(s string) error {
	*m = append(*m, s)
	return nil
}

// keyFlags are the trusted verifier keys: those named with --key, or
// when there is none, those of AUDIT_TLOG_VERIFIER_KEYS. The flags replace
// the environment rather than add to it, so the keys named on the command
// line are the only ones trusted.
type keyFlags struct{ keys, env repeated }

func verifyKeys(fs *flag.FlagSet, env Env) (*keyFlags, *string) {
	k := &keyFlags{}
	for _, s := range strings.Split(env.Getenv("AUDIT_TLOG_VERIFIER_KEYS"), ",") {
		if s = strings.TrimSpace(s); s != "" {
			k.env = append(k.env, s)
		}
	}
	fs.Var(&k.keys, "key", "checkpoint verifier key (repeatable; replaces AUDIT_TLOG_VERIFIER_KEYS)")
	origin := fs.String("origin", "", `expected log origin "<deployment>/<org>"`)
	return k, origin
}

func (k *keyFlags) verifiers() (*tlog.Verifiers, error) {
	keys := k.keys
	if len(keys) == 0 {
		keys = k.env
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%w: name the checkpoint key with --key or AUDIT_TLOG_VERIFIER_KEYS", errUsage)
	}
	return tlog.NewVerifiers(keys...)
}

func openCheckpoint(vs *tlog.Verifiers, path, origin string) (tlog.Checkpoint, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return tlog.Checkpoint{}, err
	}
	c, err := vs.OpenCheckpoint(witness.ExtractNote(b), origin)
	if err != nil {
		return tlog.Checkpoint{}, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

package natsauth

import (
	"fmt"
	"slices"
)

// Role is a bus identity.
type Role string

// The roles.
const (
	Admin      Role = "admin"
	Producer   Role = "producer"
	Ingestor   Role = "ingestor"
	Dispatcher Role = "webhook-dispatcher"
	Forwarder  Role = "siem-forwarder"
	API        Role = "api"
	Tlog       Role = "tlog"
)

// Roles lists every role, admin first.
var Roles = []Role{Admin, Producer, Ingestor, Dispatcher, Forwarder, API, Tlog}

// ParseRole returns the role named s.
func ParseRole(s string) (Role, error) {
	if slices.Contains(Roles, Role(s)) {
		return Role(s), nil
	}
	return "", fmt.Errorf("natsauth: unknown role %q (want one of %v)", s, Roles)
}

// InboxPrefix is the reply inbox prefix of the role's connections:
// _INBOX for the producer (the NATS default), _INBOX_<role> for the others,
// whose replies carry events or settings the producer must not read.
func (r Role) InboxPrefix() string {
	if r == Producer {
		return "_INBOX"
	}
	return "_INBOX_" + string(r)
}

// Names of the streams, consumers, buckets and subjects the permissions
// refer to. They mirror the constants of the packages that declare them
// (platform/topology, platform/orgsettings, webhook-dispatcher/dispatcher
// and endpoints, siem-forwarder/destinations); a test in auditd checks that
// they agree.
const (
	EventsStream       = "AUDIT_EVENTS"
	FanoutStream       = "AUDIT_FANOUT"
	DeadLetterStream   = "AUDIT_DEAD_LETTER"
	DeliveriesStream   = "AUDIT_WEBHOOK_DELIVERIES"
	AttemptsStream     = "AUDIT_WEBHOOK_ATTEMPTS"
	IngestorConsumer   = "ingestor"
	FanoutSource       = "fanout"
	DispatcherConsumer = "webhook-dispatcher"
	// TlogConsumer is the consumer through which earlier versions' log
	// writer read AUDIT_EVENTS; the log writer may only delete it.
	TlogConsumer = "tlog"

	SettingsBucket     = "AUDIT_ORG_SETTINGS"
	EndpointsBucket    = "AUDIT_WEBHOOK_ENDPOINTS"
	DestinationsBucket = "AUDIT_SIEM_DESTINATIONS"
	StatusBucket       = "AUDIT_SIEM_STATUS"
	ServiceKeysBucket  = "AUDIT_SERVICE_KEYS"
	RetriesBucket      = "AUDIT_WEBHOOK_RETRIES"
	TlogLeaseBucket    = "AUDIT_TLOG_LEASE"

	EventsSubjects = "audit.events.>"
	// CheckpointsSubjects are the signed checkpoints the log writer
	// publishes into AUDIT_FANOUT; no role but admin (the process running
	// the log writer) may publish there.
	CheckpointsSubjects = "audit.checkpoints.>"
	DeliveriesSubjects  = "audit.webhook.deliveries.>"
	AttemptsSubjects    = "audit.webhook.attempts.>"
	deadLetterPrefix    = "audit.dead_letter."
	// webhookDisabledAction is the one action the dispatcher records.
	webhookDisabledAction = "audit.webhook_disabled"
	// ownRecordsSubjects are the log's own records (the audit category:
	// settings changes, retention cuts and purges, erasures, destination
	// and key changes), which the api and the dispatcher write and a
	// producer may not.
	ownRecordsSubjects = "audit.events.*.audit.*"
)

// Permissions is what one identity may publish and subscribe to. A deny
// entry wins over an allow entry.
type Permissions struct {
	PublishAllow   []string
	PublishDeny    []string
	SubscribeAllow []string
	SubscribeDeny  []string
}

const jsAPI = "$JS.API."

// stream lets a role verify that a stream exists (read its configuration
// and state, never its messages).
func streamInfo(stream string) string { return jsAPI + "STREAM.INFO." + stream }

// acks are the acknowledgement subjects of one consumer of stream (every
// consumer of it when consumer is "*"), in both forms the server
// subscribes to: $JS.ACK.<stream>.<consumer> followed by exactly five
// tokens (delivery count, stream and consumer sequences, timestamp,
// pending), and $JS.ACK.<domain>.<account>.<stream>.<consumer> followed
// by at least five. The token counts matter: a looser pattern such as
// $JS.ACK.*.*.<stream>.> also matches $JS.ACK.<other stream>.<other
// consumer>.<stream>.<seq>..., which the server routes to the other
// consumer, taking the chosen sequence as the one acknowledged.
func acks(stream, consumer string) []string {
	return []string{
		"$JS.ACK." + stream + "." + consumer + ".*.*.*.*.*",
		"$JS.ACK.*.*." + stream + "." + consumer + ".*.*.*.*.>",
	}
}

// consume is what reading a stream through one named pull consumer takes:
// its info, its next-message requests and acknowledgements.
func consume(stream, consumer string) []string {
	return append([]string{
		jsAPI + "CONSUMER.INFO." + stream + "." + consumer,
		jsAPI + "CONSUMER.MSG.NEXT." + stream + "." + consumer,
	}, acks(stream, consumer)...)
}

// kvRead is what binding, getting and watching a bucket takes: stream
// info, direct and stored-message gets, and the watcher's ephemeral
// ordered consumer (create, info, delete, flow control).
func kvRead(bucket string) []string {
	s := "KV_" + bucket
	return []string{
		streamInfo(s),
		jsAPI + "DIRECT.GET." + s,
		jsAPI + "DIRECT.GET." + s + ".>",
		jsAPI + "STREAM.MSG.GET." + s,
		jsAPI + "CONSUMER.CREATE." + s,
		jsAPI + "CONSUMER.CREATE." + s + ".>",
		jsAPI + "CONSUMER.INFO." + s + ".*",
		jsAPI + "CONSUMER.DELETE." + s + ".*",
		"$JS.FC." + s + ".>",
		"$JS.FC.*.*." + s + ".>",
	}
}

// kvWrite is what putting, updating and deleting keys of a bucket takes.
func kvWrite(bucket string) string { return "$KV." + bucket + ".>" }

// fanoutByOrg is creating consumers on AUDIT_FANOUT filtered on one org's
// events and checkpoints, audit.*.<org_id>.> (the SIEM destinations'
// consumers).
var fanoutByOrg = jsAPI + "CONSUMER.CREATE." + FanoutStream + ".*.audit.*.*.>"

// dispatcherOnFanout denies every action on the dispatcher's consumer of
// AUDIT_FANOUT to the roles that manage SIEM consumers there.
var dispatcherOnFanout = []string{
	jsAPI + "CONSUMER.CREATE." + FanoutStream + "." + DispatcherConsumer,
	jsAPI + "CONSUMER.CREATE." + FanoutStream + "." + DispatcherConsumer + ".>",
	jsAPI + "CONSUMER.DELETE." + FanoutStream + "." + DispatcherConsumer,
	jsAPI + "CONSUMER.MSG.NEXT." + FanoutStream + "." + DispatcherConsumer,
	"$JS.ACK." + FanoutStream + "." + DispatcherConsumer + ".>",
	"$JS.ACK.*.*." + FanoutStream + "." + DispatcherConsumer + ".>",
}

// verifyShared lets a service check the shared topology exists without
// changing it.
var verifyShared = []string{
	streamInfo(EventsStream),
	streamInfo(DeadLetterStream),
	streamInfo(FanoutStream),
	jsAPI + "CONSUMER.INFO." + EventsStream + "." + IngestorConsumer,
	jsAPI + "CONSUMER.INFO." + EventsStream + "." + FanoutSource,
}

// PermissionsOf returns the role's permissions.
func PermissionsOf(r Role) (Permissions, error) {
	inbox := []string{r.InboxPrefix() + ".>"}
	switch r {
	case Admin:
		return Permissions{PublishAllow: []string{">"}, SubscribeAllow: []string{">"}}, nil
	case Producer:
		return Permissions{PublishAllow: []string{EventsSubjects}, PublishDeny: []string{ownRecordsSubjects}, SubscribeAllow: inbox}, nil
	case Ingestor:
		p := Permissions{SubscribeAllow: inbox}
		p.PublishAllow = append(p.PublishAllow, verifyShared...)
		p.PublishAllow = append(p.PublishAllow, consume(EventsStream, IngestorConsumer)...)
		p.PublishAllow = append(p.PublishAllow, deadLetterPrefix+IngestorConsumer)
		p.PublishAllow = append(p.PublishAllow, kvRead(SettingsBucket)...)
		return p, nil
	case Dispatcher:
		p := Permissions{SubscribeAllow: inbox}
		p.PublishAllow = append(p.PublishAllow, verifyShared...)
		p.PublishAllow = append(p.PublishAllow, consume(FanoutStream, DispatcherConsumer)...)
		p.PublishAllow = append(p.PublishAllow,
			streamInfo(DeliveriesStream),
			streamInfo(AttemptsStream),
			DeliveriesSubjects,
			AttemptsSubjects,
			jsAPI+"CONSUMER.CREATE."+DeliveriesStream+".>",
			jsAPI+"CONSUMER.INFO."+DeliveriesStream+".*",
			jsAPI+"CONSUMER.DELETE."+DeliveriesStream+".*",
			jsAPI+"CONSUMER.MSG.NEXT."+DeliveriesStream+".*",
			jsAPI+"STREAM.PURGE."+DeliveriesStream,
			kvWrite(EndpointsBucket),
			kvWrite(RetriesBucket),
			"audit.events.*."+webhookDisabledAction,
		)
		p.PublishAllow = append(p.PublishAllow, acks(DeliveriesStream, "*")...)
		p.PublishAllow = append(p.PublishAllow, kvRead(EndpointsBucket)...)
		p.PublishAllow = append(p.PublishAllow, kvRead(RetriesBucket)...)
		p.PublishAllow = append(p.PublishAllow, kvRead(SettingsBucket)...)
		return p, nil
	case Forwarder:
		p := Permissions{SubscribeAllow: inbox}
		p.PublishAllow = append(p.PublishAllow, verifyShared...)
		p.PublishAllow = append(p.PublishAllow,
			fanoutByOrg,
			jsAPI+"CONSUMER.INFO."+FanoutStream+".*",
			jsAPI+"CONSUMER.MSG.NEXT."+FanoutStream+".*",
			deadLetterPrefix+"*",
			kvWrite(StatusBucket),
		)
		p.PublishAllow = append(p.PublishAllow, acks(FanoutStream, "*")...)
		p.PublishAllow = append(p.PublishAllow, kvRead(DestinationsBucket)...)
		p.PublishAllow = append(p.PublishAllow, kvRead(StatusBucket)...)
		p.PublishAllow = append(p.PublishAllow, kvRead(SettingsBucket)...)
		p.PublishDeny = append(p.PublishDeny, dispatcherOnFanout...)
		p.PublishDeny = append(p.PublishDeny, deadLetterPrefix+IngestorConsumer, deadLetterPrefix+DispatcherConsumer)
		return p, nil
	case Tlog:
		p := Permissions{SubscribeAllow: inbox}
		p.PublishAllow = append(p.PublishAllow, verifyShared...)
		// A stored event an earlier version left unlogged is confirmed
		// against its message before it is logged (logwriter's catch-up),
		// which then removes the earlier log writer's consumer
		// (logwriter.LegacyConsumer).
		p.PublishAllow = append(p.PublishAllow, jsAPI+"STREAM.MSG.GET."+EventsStream, kvWrite(TlogLeaseBucket))
		p.PublishAllow = append(p.PublishAllow, jsAPI+"CONSUMER.DELETE."+EventsStream+"."+TlogConsumer)
		// The signed checkpoints it sends to the orgs' witnesses.
		p.PublishAllow = append(p.PublishAllow, CheckpointsSubjects)
		p.PublishAllow = append(p.PublishAllow, kvRead(TlogLeaseBucket)...)
		return p, nil
	case API:
		p := Permissions{SubscribeAllow: inbox}
		p.PublishAllow = append(p.PublishAllow, verifyShared...)
		p.PublishAllow = append(p.PublishAllow,
			EventsSubjects,
			fanoutByOrg,
			jsAPI+"CONSUMER.INFO."+FanoutStream+".*",
			jsAPI+"CONSUMER.DELETE."+FanoutStream+".*",
			streamInfo(DeliveriesStream),
			streamInfo(AttemptsStream),
			DeliveriesSubjects,
			AttemptsSubjects,
			jsAPI+"STREAM.MSG.GET."+AttemptsStream,
			jsAPI+"DIRECT.GET."+AttemptsStream,
			jsAPI+"DIRECT.GET."+AttemptsStream+".>",
			jsAPI+"CONSUMER.CREATE."+AttemptsStream+".>",
			jsAPI+"CONSUMER.INFO."+AttemptsStream+".*",
			jsAPI+"CONSUMER.DELETE."+AttemptsStream+".*",
			jsAPI+"CONSUMER.MSG.NEXT."+AttemptsStream+".*",
			// The management API checks that the dispatcher's objects
			// exist; it never reads or writes retry positions.
			streamInfo("KV_"+RetriesBucket),
		)
		for _, b := range []string{SettingsBucket, EndpointsBucket, DestinationsBucket, StatusBucket, ServiceKeysBucket} {
			p.PublishAllow = append(p.PublishAllow, kvWrite(b))
			p.PublishAllow = append(p.PublishAllow, kvRead(b)...)
		}
		p.PublishDeny = append(p.PublishDeny, dispatcherOnFanout...)
		return p, nil
	}
	return Permissions{}, fmt.Errorf("natsauth: unknown role %q", r)
}

package schemas

import "time"

// Hard limits of the v1 envelope. Catalog.Validate enforces all of them;
// Decode enforces MaxEventBytes before parsing. String lengths are counted
// in bytes of UTF-8 (for ASCII text, one byte per character), the unit that
// storage, the broker and every consumer agree on.
//
// LIMITS.md in this directory publishes the same table; keep them in step.
const (
	// MaxEventBytes bounds the canonical encoding of an event (Canonical)
	// and the input accepted by Decode.
	MaxEventBytes = 32 << 10

	// MaxOrgIDLen bounds org_id, which must also match [A-Za-z0-9_-]+ so
	// that it is a single NATS subject token.
	MaxOrgIDLen = 64
	// MaxActionLen bounds action, "<resource>.<verb>".
	MaxActionLen = 128
	// MaxCategoryLen bounds category names.
	MaxCategoryLen = 32

	// MaxActorIDLen bounds actor.id.
	MaxActorIDLen = 256
	// MaxNameLen bounds actor.name and targets[].name.
	MaxNameLen = 256
	// MaxEmailLen bounds actor.email (RFC 5321 path limit).
	MaxEmailLen = 320
	// MaxUserAgentLen bounds actor.user_agent.
	MaxUserAgentLen = 512

	// MaxTargets bounds the number of targets of one event.
	MaxTargets = 20
	// MaxTargetTypeLen bounds targets[].type.
	MaxTargetTypeLen = 64
	// MaxTargetIDLen bounds targets[].id.
	MaxTargetIDLen = 256

	// MaxReasonLen bounds reason.
	MaxReasonLen = 1024

	// MaxDetailsKeys bounds the number of keys of the details object and of
	// every object nested in it.
	MaxDetailsKeys = 50
	// MaxDetailsKeyLen bounds every key in details; keys must also match
	// [A-Za-z0-9_-]+.
	MaxDetailsKeyLen = 40
	// MaxDetailsStringLen bounds every string value in details, including
	// strings inside lists and nested objects.
	MaxDetailsStringLen = 1024
	// MaxDetailsArrayLen bounds every array in details.
	MaxDetailsArrayLen = 256
	// MaxDetailsDepth bounds nesting in details. The details object itself
	// is level 1, so {"a":{"b":{"c":{"d":1}}}} is at the limit.
	MaxDetailsDepth = 4

	// MaxContextLen bounds context.request_id, context.trace_id and
	// context.source.
	MaxContextLen = 128

	// MaxFutureSkew is how far ahead of the validating clock occurred_at may
	// be before the event is rejected.
	MaxFutureSkew = 24 * time.Hour
	// MinOccurredYear is the earliest year accepted for occurred_at.
	MinOccurredYear = 2000
)

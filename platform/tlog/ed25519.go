package tlog

import (
	"crypto/ed25519"
	"errors"
)

// ed25519Public returns the public key of an Ed25519 seed.
func ed25519Public(seed []byte) ([]byte, error) {
	if len(seed) != ed25519.SeedSize {
		return nil, errors.New("tlog: Ed25519 seed has the wrong size")
	}
	return ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey), nil
}

package app

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/takumo/audit/platform/secretbox"
)

// devSecretKeyFile holds the development key set sealing webhook secrets
// and SIEM credentials when AUDIT_SECRET_KEYS is not set.
// legacyDevKeyFile is where earlier versions kept it (webhook secrets
// only); its key is adopted so secrets sealed with it still open.
const (
	devSecretKeyFile = "dev-secret-keys"
	legacyDevKeyFile = "dev-webhook-key"
)

// devSecretKeys returns the development key set kept in dataDir, creating
// it (or adopting the legacy webhook key) on first use.
func devSecretKeys(dataDir string) (string, error) {
	path := filepath.Join(dataDir, devSecretKeyFile)
	b, err := os.ReadFile(path)
	if err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("development secret keys: %w", err)
	}
	keys := "dev:" + secretbox.NewKey()
	if b, err := os.ReadFile(filepath.Join(dataDir, legacyDevKeyFile)); err == nil && strings.TrimSpace(string(b)) != "" {
		keys = strings.TrimSpace(string(b))
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return devSecretKeys(dataDir)
	}
	if err != nil {
		return "", fmt.Errorf("development secret keys: %w", err)
	}
	defer f.Close()
	if _, err := f.WriteString(keys + "\n"); err != nil {
		return "", fmt.Errorf("development secret keys: %w", err)
	}
	return keys, nil
}

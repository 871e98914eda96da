package chdb

import (
	"os"
	"path/filepath"
)

// LibVersion is the chDB library release this package is built and tested
// against (npm package @chdb/lib-linux-x64-gnu).
const LibVersion = "26.7.3-stable.1"

// LibPathEnv names the environment variable that overrides the library path.
const LibPathEnv = "AUDIT_CHDB_LIB"

// FetchHint is the setup step that installs the library where DefaultLibPath
// looks for it.
const FetchHint = "run `make chdb` (scripts/fetch-chdb.sh) or set " + LibPathEnv

// DefaultLibPath returns the path of libchdb.so for this process: the value
// of AUDIT_CHDB_LIB when set, otherwise the cache location that
// scripts/fetch-chdb.sh writes to,
// ${AUDIT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/takumo-audit}/chdb/<LibVersion>/libchdb.so.
//
// It reads the environment, so call it from main or test set-up and pass the
// result down. It does not check that the file exists; Open does.
func DefaultLibPath() string {
	if p := os.Getenv(LibPathEnv); p != "" {
		return p
	}
	root := os.Getenv("AUDIT_CACHE_DIR")
	if root == "" {
		cache := os.Getenv("XDG_CACHE_HOME")
		if cache == "" {
			home, err := os.UserHomeDir()
			if err != nil || home == "" {
				home = "."
			}
			cache = filepath.Join(home, ".cache")
		}
		root = filepath.Join(cache, "takumo-audit")
	}
	return filepath.Join(root, "chdb", LibVersion, "libchdb.so")
}

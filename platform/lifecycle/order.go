package lifecycle

import (
	"fmt"
	"slices"
	"strings"
)

// Order returns targets and everything they depend on, transitively, each
// after its dependencies. deps maps a stage name to the names it depends
// on; a name missing from deps has no dependencies. Among stages free to
// go in either order, deps' declaration order is not available (maps are
// unordered), so ties break by the order targets and dependencies are
// listed, which keeps the result deterministic.
func Order(deps map[string][]string, targets ...string) ([]string, error) {
	var out []string
	state := map[string]int{} // 0 unseen, 1 visiting, 2 done
	var visit func(name string, path []string) error
	visit = func(name string, path []string) error {
		switch state[name] {
		case 2:
			return nil
		case 1:
			return fmt.Errorf("lifecycle: dependency cycle: %s", strings.Join(append(path, name), " -> "))
		}
		state[name] = 1
		for _, d := range deps[name] {
			if err := visit(d, append(slices.Clone(path), name)); err != nil {
				return err
			}
		}
		state[name] = 2
		out = append(out, name)
		return nil
	}
	for _, t := range targets {
		if err := visit(t, nil); err != nil {
			return nil, err
		}
	}
	return out, nil
}

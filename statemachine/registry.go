package statemachine

import (
	"errors"
	"fmt"
	"sort"
	"sync"
)

// ErrUnknownVersion is returned for an instance pinned to a workflow version
// this process does not have.
var ErrUnknownVersion = errors.New("workflow version not registered")

// Registry holds the workflow definitions a process knows, every version side
// by side, and the default version of each workflow for new instances.
type Registry struct {
	mu       sync.RWMutex
	defs     map[defKey]*Definition
	defaults map[string]int
}

// defKey identifies a definition in the registry.
type defKey struct {
	name    string
	version int
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{defs: map[defKey]*Definition{}, defaults: map[string]int{}}
}

// Register validates d and adds it. The highest registered version of a
// workflow becomes its default unless SetDefault says otherwise.
func (r *Registry) Register(d *Definition) error {
	if err := d.compile(); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	k := defKey{d.Name, d.Version}
	if _, dup := r.defs[k]; dup {
		return fmt.Errorf("%s registered twice", d.Key())
	}
	r.defs[k] = d
	if d.Version > r.defaults[d.Name] {
		r.defaults[d.Name] = d.Version
	}
	return nil
}

// MustRegister is Register for definitions built into the binary; it panics
// on an invalid definition, which is a programming error.
func (r *Registry) MustRegister(defs ...*Definition) *Registry {
	for _, d := range defs {
		if err := r.Register(d); err != nil {
			panic(err)
		}
	}
	return r
}

// SetDefault makes version the one new instances of name start under.
func (r *Registry) SetDefault(name string, version int) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.defs[defKey{name, version}]; !ok {
		return fmt.Errorf("%s/v%d: %w", name, version, ErrUnknownVersion)
	}
	r.defaults[name] = version
	return nil
}

// Get returns the definition of name at version.
func (r *Registry) Get(name string, version int) (*Definition, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	d, ok := r.defs[defKey{name, version}]
	if !ok {
		return nil, fmt.Errorf("%s/v%d: %w", name, version, ErrUnknownVersion)
	}
	return d, nil
}

// Default returns the definition new instances of name start under.
func (r *Registry) Default(name string) (*Definition, error) {
	r.mu.RLock()
	v, ok := r.defaults[name]
	r.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%s: %w", name, ErrUnknownVersion)
	}
	return r.Get(name, v)
}

// All returns every definition, sorted by name and version.
func (r *Registry) All() []*Definition {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]*Definition, 0, len(r.defs))
	for _, d := range r.defs {
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].Version < out[j].Version
	})
	return out
}

// Queues returns every queue any registered step runs on.
func (r *Registry) Queues() []string {
	seen := map[string]bool{}
	var out []string
	for _, d := range r.All() {
		for i := range d.States {
			q := d.QueueOf(&d.States[i])
			if q != "" && !seen[q] {
				seen[q] = true
				out = append(out, q)
			}
		}
	}
	sort.Strings(out)
	return out
}

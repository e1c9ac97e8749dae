package statemachine

import (
	"context"
	"embed"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"
)

//go:embed scripts/*.lua
var scriptFiles embed.FS

// scripts holds every Lua script the store runs, loaded from scripts/*.lua.
type scripts struct {
	create, claim, transition, renew, release *redis.Script
	idemBind, dueClaim, watch, heartbeat      *redis.Script
	all                                       []*redis.Script
}

func loadScripts() *scripts {
	s := &scripts{}
	for _, e := range []struct {
		file string
		dst  **redis.Script
	}{
		{"create.lua", &s.create},
		{"claim.lua", &s.claim},
		{"transition.lua", &s.transition},
		{"renew.lua", &s.renew},
		{"release.lua", &s.release},
		{"idempotency_bind.lua", &s.idemBind},
		{"due_claim.lua", &s.dueClaim},
		{"watch.lua", &s.watch},
		{"heartbeat.lua", &s.heartbeat},
	} {
		src, err := scriptFiles.ReadFile("scripts/" + e.file)
		if err != nil {
			panic(fmt.Sprintf("embedded script %s: %v", e.file, err))
		}
		*e.dst = redis.NewScript(string(src))
		s.all = append(s.all, *e.dst)
	}
	return s
}

// load loads every script into Redis so that pipelines can use EVALSHA.
func (s *scripts) load(ctx context.Context, c redis.Scripter) error {
	for _, sc := range s.all {
		if err := sc.Load(ctx, c).Err(); err != nil {
			return fmt.Errorf("loading scripts: %w", err)
		}
	}
	return nil
}

func isNoScript(err error) bool {
	return err != nil && strings.HasPrefix(err.Error(), "NOSCRIPT")
}

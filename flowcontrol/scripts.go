package flowcontrol

import (
	"embed"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// The Lua scripts of flow control; each documents its KEYS, ARGV and
// return value in its header. Every change of flow-control state in Redis
// is one of them, or a redis_rate call.
//
//go:embed scripts/*.lua
var scriptFiles embed.FS

var (
	gateScript     = loadScript("gate.lua")
	recordScript   = loadScript("record.lua")
	acquireScript  = loadScript("acquire.lua")
	releaseScript  = loadScript("release.lua")
	renewScript    = loadScript("renew.lua")
	dropScript     = loadScript("drop.lua")
	unindexScript  = loadScript("unindex.lua")
	lockScript     = loadScript("lock.lua")
	scheduleScript = loadScript("schedule.lua")
	lineScript     = loadScript("line.lua")
	unplaceScript  = loadScript("unplace.lua")
)

func loadScript(name string) *redis.Script {
	src, err := scriptFiles.ReadFile("scripts/" + name)
	if err != nil {
		panic(fmt.Sprintf("embedded script %s: %v", name, err))
	}
	return redis.NewScript(string(src))
}

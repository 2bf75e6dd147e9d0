package store

import (
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/rtemu-dev/rtemu/sandbox"
)

// sandboxCache keeps decoded sandbox records by id, so the reads every
// request makes (GET, exec, the SSH gateway's lookups) skip SQLite and the
// JSON of the data column: together they were most of a GET's cost
// (BENCHMARKS.md). Every write of a sandbox goes through this Store (one
// writer), which updates or drops the entry, so the cache is as current as
// the database is to this process. A second process writing the same file
// (only the bench does, inserting) is not seen for ids already cached.
//
// A read that misses records the write generation before its query and
// fills the entry only if no write happened meanwhile, so a record read
// before a write cannot overwrite that write's entry.
type sandboxCache struct {
	mu   sync.Mutex
	gen  uint64
	byID map[string]*sandbox.Sandbox
}

// maxCached bounds the cache; past it the cache starts again empty.
const maxCached = 8192

func (c *sandboxCache) get(id string) (*sandbox.Sandbox, uint64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	sb, ok := c.byID[id]
	if !ok {
		return nil, c.gen, false
	}
	return cloneSandbox(sb), c.gen, true
}

// fill caches a record read at generation gen, unless a write came since.
func (c *sandboxCache) fill(sb *sandbox.Sandbox, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	c.putLocked(sb)
}

// wrote records a write of one sandbox (nil sb: its entry is dropped).
func (c *sandboxCache) wrote(id string, sb *sandbox.Sandbox) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	delete(c.byID, id)
	if sb != nil {
		c.putLocked(sb)
	}
}

// clear drops every entry (a write of many sandboxes).
func (c *sandboxCache) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.byID = nil
}

func (c *sandboxCache) putLocked(sb *sandbox.Sandbox) {
	if c.byID == nil || len(c.byID) >= maxCached {
		c.byID = map[string]*sandbox.Sandbox{}
	}
	c.byID[sb.ID] = cloneSandbox(sb)
}

// cloneSandbox copies a record deeply: callers change what they are given.
func cloneSandbox(sb *sandbox.Sandbox) *sandbox.Sandbox {
	out := *sb
	out.Tags = slices.Clone(sb.Tags)
	out.Env = maps.Clone(sb.Env)
	out.Mounts = slices.Clone(sb.Mounts)
	out.Metadata = slices.Clone(sb.Metadata)
	out.SSHKeys = slices.Clone(sb.SSHKeys)
	out.PausedAt = cloneTime(sb.PausedAt)
	out.ResumedAt = cloneTime(sb.ResumedAt)
	out.DestroyedAt = cloneTime(sb.DestroyedAt)
	out.LastActivityAt = cloneTime(sb.LastActivityAt)
	return &out
}

func cloneTime(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	c := *t
	return &c
}

// decodeCache keeps, by sandbox id, the decoded form of the last tags and
// data columns read, so a list of hundreds of records decodes only the
// records whose columns changed: the JSON of the data column was two thirds
// of scanning a list (BENCHMARKS.md). It is keyed by the columns' text, so
// it is right whoever wrote the row.
type decodeCache struct {
	mu   sync.Mutex
	byID map[string]*decodedCols
}

type decodedCols struct {
	tags, data string
	tagList    []string
	rec        record
}

func (c *decodeCache) get(id, tags, data string) (*decodedCols, bool) {
	if c == nil {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	d, ok := c.byID[id]
	if !ok || d.tags != tags || d.data != data {
		return nil, false
	}
	return d, true
}

func (c *decodeCache) put(id string, d *decodedCols) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byID == nil || len(c.byID) >= maxCached {
		c.byID = map[string]*decodedCols{}
	}
	c.byID[id] = d
}

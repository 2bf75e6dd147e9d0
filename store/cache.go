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

// listCache keeps the last lists read (the query and its arguments, with
// the rows it gave), valid while nothing has been committed to the database
// since: a list of 500 read again spent most of its time in SQLite
// (BENCHMARKS.md), and a dashboard, an SDK polling or the idle sweep (every
// 250 ms) reads the same list over and over while nothing happens. The
// version is SQLite's data_version as one connection of the store's own
// sees it (Store.dataVersion): it moves with every commit of any
// connection, this process's or another's.
type listCache struct {
	mu      sync.Mutex
	version int64
	entries map[string]listEntry
}

type listEntry struct {
	rows []*sandbox.Sandbox
	more bool
}

// maxLists bounds the lists kept for one data version (distinct filters).
const maxLists = 16

// get returns copies of a list read at data version v.
func (c *listCache) get(key string, v int64) ([]*sandbox.Sandbox, bool, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok || c.version != v {
		return nil, false, false
	}
	out := make([]*sandbox.Sandbox, len(e.rows))
	for i, sb := range e.rows {
		out[i] = cloneSandbox(sb)
	}
	return out, e.more, true
}

// put keeps a list read at data version v, read before the query (whose
// rows the caller gets and may change: the cache keeps copies). A list of
// an older version than the cache's, from a slow reader, replaces what the
// cache has: then the next reader misses, and no reader gets a list older
// than its version.
func (c *listCache) put(key string, v int64, rows []*sandbox.Sandbox, more bool) {
	kept := make([]*sandbox.Sandbox, len(rows))
	for i, sb := range rows {
		kept[i] = cloneSandbox(sb)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if v != c.version || c.entries == nil || len(c.entries) >= maxLists {
		c.version, c.entries = v, map[string]listEntry{}
	}
	c.entries[key] = listEntry{rows: kept, more: more}
}

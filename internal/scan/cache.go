package scan

import (
	"container/list"
	"crypto/sha256"
	"sync"
)

// Digest is the SHA-256 of a stream, computed while it is spooled.
type Digest [sha256.Size]byte

// VerdictCache remembers clamd's verdicts on streams by their content, for
// every client: a campaign that sends one attachment ten thousand times is
// scanned once (clamd itself caches only clean results, per process, and
// forgets them at every reload).
//
// What keeps a hit honest:
//   - the key is the object's SHA-256; the cache serves only while the
//     gateway knows which database clamd runs (Resume), and a change of it
//     flushes everything (Pause, at the first sign of a change, before
//     clamd loads it);
//   - a verdict is stored only if no change began between the lookup that
//     missed and the store (the generation), so that a scan by the old
//     database cannot land in the new database's cache;
//   - only definite verdicts are stored: OK and FOUND, never an error; an
//     object clamd stopped at a limit only for a client whose on_limits is
//     block; and what is stored is clamd's own reply, to which each client's
//     on_limits is applied again on a hit, so that policies never leak into
//     each other.
//
// It is bounded by entries and by bytes (the replies plus a fixed cost per
// entry), least recently used first out.
type VerdictCache struct {
	maxEntries int
	maxBytes   int64

	mu      sync.Mutex
	gen     uint64 // bumped by Pause and Resume; a store must see the gen its lookup saw
	serving bool   // false until Resume, and from Pause to the next Resume
	bytes   int64
	lru     *list.List // of *cached, most recent at the front
	byKey   map[Digest]*list.Element
}

type cached struct {
	key Digest
	res Result
}

// entryCost is what an entry costs beyond its reply's bytes: the key twice
// (map and list), the list element, the map bucket's share, the Result.
const entryCost = 160

// NewVerdictCache bounds a cache to maxEntries and maxBytes; nil (no
// cache) when either is 0 or less. It serves nothing until Resume.
func NewVerdictCache(maxEntries int, maxBytes int64) *VerdictCache {
	if maxEntries <= 0 || maxBytes <= 0 {
		return nil
	}
	return &VerdictCache{maxEntries: maxEntries, maxBytes: maxBytes, lru: list.New(), byKey: map[Digest]*list.Element{}}
}

// Pause flushes the cache and stops it serving and storing: the database
// is changing, or the gateway no longer knows what clamd has loaded.
func (c *VerdictCache) Pause() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.serving = false
	c.lru.Init()
	clear(c.byKey)
	c.bytes = 0
}

// Resume starts serving again: clamd runs the database the gateway has
// just seen loaded. Scans that began before do not store their verdicts.
func (c *VerdictCache) Resume() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.serving = true
}

// Generation is the cache's generation, for ResumeIf.
func (c *VerdictCache) Generation() uint64 {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

// ResumeIf resumes the cache unless it was paused or resumed since gen
// was read: a change of the database seen meanwhile keeps it paused.
func (c *VerdictCache) ResumeIf(gen uint64) bool {
	if c == nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return false
	}
	c.gen++
	c.serving = true
	return true
}

// lookup returns the stored reply for key, and the generation a later
// store must present; ok is false on a miss or while paused.
func (c *VerdictCache) lookup(key Digest) (res Result, gen uint64, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.serving {
		return Result{}, 0, false // gen 0 is never current: nothing is stored
	}
	if e, hit := c.byKey[key]; hit {
		c.lru.MoveToFront(e)
		return e.Value.(*cached).res, c.gen, true
	}
	return Result{}, c.gen, false
}

// store keeps clamd's reply (before on_limits) for key, if it is a definite
// verdict (see VerdictCache) and the database has not changed since gen.
func (c *VerdictCache) store(key Digest, gen uint64, res Result, onLimits string) {
	if !cacheable(res, onLimits) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.serving || gen != c.gen {
		return
	}
	if _, there := c.byKey[key]; there {
		return
	}
	c.byKey[key] = c.lru.PushFront(&cached{key: key, res: res})
	c.bytes += cost(res)
	for c.lru.Len() > c.maxEntries || c.bytes > c.maxBytes {
		c.evict(c.lru.Back())
	}
}

func (c *VerdictCache) evict(e *list.Element) {
	v := c.lru.Remove(e).(*cached)
	delete(c.byKey, v.key)
	c.bytes -= cost(v.res)
}

// Size is the cache's entries and bytes, for metrics.
func (c *VerdictCache) Size() (entries int, bytes int64) {
	if c == nil {
		return 0, 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len(), c.bytes
}

// cacheable: a clean or infected verdict of the stream as a whole; an
// object stopped at a limit only when the client that asked blocks it
// (LimitsBlock), the one policy under which it is the FOUND clamd gave.
func cacheable(res Result, onLimits string) bool {
	switch {
	case res.Verdict == Clean:
		return res.Reply == StreamObject+": OK"
	case res.Verdict != Infected:
		return false
	case IsLimits(res.Threat):
		return onLimits == LimitsBlock || onLimits == ""
	}
	return true
}

func cost(res Result) int64 { return entryCost + int64(len(res.Reply)+len(res.Threat)) }

package integration

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spanpipe/spanpipe/dropalerts"
	"github.com/spanpipe/spanpipe/schema"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestChaosSoak: for SPANPIPE_IT_CHAOS_MINUTES (3) minutes, spans are produced at
// SPANPIPE_IT_CHAOS_RATE records per second (1% of them poison) into a 6-partition
// topic on a 1-broker cluster of the test's own, while a seeded random schedule kills
// consumers (SIGKILL, restarted on the same DuckDB file), restarts the broker, makes
// one member's sink hang, fail (retryable) or reject (permanent), adds and removes
// members, and deletes records from partitions while their consumers are paused
// behind hung sinks (kadm DeleteRecords: what retention does, at a moment the test
// chooses). A hang longer than the rebalance timeout is followed by a join, so that the
// hung member is revoked partitions it cannot flush, and that member is kept to the
// end. Then the faults are cleared, the group drains, and a ledger built from
// what Kafka acknowledged to the producer accounts for every record:
//   - a span is stored (in the union of the DuckDB files, never twice in one file), or
//     dead-lettered with its reason (sink-rejected, retry-exhausted), or its offset is
//     inside the range of a retention-expired drop event;
//   - a poison record is a decode-error dead letter, or inside a retention range;
//   - nothing else is stored or dead-lettered, no retention event claims offsets that
//     were not deleted, and every dead-letter reason has drop events counting at least
//     its dead letters;
//   - the group commits the end of every partition (SPANPIPE_IT_CHAOS_DRAIN, 3m): a
//     record still uncommitted after that is held back by a member that stopped
//     storing.
//
// The seed (printed; SPANPIPE_IT_CHAOS_SEED replays it) fixes the schedule, its
// targets and durations, and which records are poison; the machine's timing is not
// replayed, so a failing seed reproduces the same faults in the same order. Records
// stored and also dead-lettered are counted, not failed: under at-least-once delivery
// a member that stored a batch and died before committing hands it to another member,
// whose sink may reject it; duplicates across DuckDB files (one per process slot)
// are the same redelivery, counted too.
func TestChaosSoak(t *testing.T) {
	minutes := chaosMinutes()
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("SPANPIPE_IT_CHAOS_SEED"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("SPANPIPE_IT_CHAOS_SEED=%q: want an unsigned integer", v)
		}
		seed = n
	}
	replay := fmt.Sprintf("SPANPIPE_IT_CHAOS_SEED=%d SPANPIPE_IT_CHAOS_MINUTES=%g go test -count=1 -v -run TestChaosSoak ./integration/", seed, minutes)
	t.Logf("chaos seed %d; replay: %s", seed, replay)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("chaos seed %d failed; replay: %s", seed, replay)
		}
	})
	duration := time.Duration(minutes * float64(time.Minute))
	rate := float64(envInt("SPANPIPE_IT_CHAOS_RATE", 100))
	plan := chaosPlan(seed, duration)
	t.Logf("schedule (%d actions):\n%s", len(plan), planString(plan))

	l := ownLauncher(t, 1)
	s := newScenario(t, l.bootstrap, chaosPartitions)
	s.env = append(s.env,
		"SPANPIPE_KAFKA_REBALANCE_TIMEOUT="+chaosRebalanceTimeout.String(),
		"SPANPIPE_KAFKA_SHUTDOWN_TIMEOUT=10s",
		// A small buffer: a hung sink pauses fetching within seconds.
		"SPANPIPE_PIPELINE_MAX_BATCH_SIZE=100",
		"SPANPIPE_PIPELINE_MAX_BUFFER_SIZE=400",
		"SPANPIPE_KAFKA_MAX_POLL_RECORDS=200",
	)
	c := &chaos{s: s, l: l, members: make(map[int]*consumerProc), done: make(map[chaosKind]int), deleted: make(map[int32]int64), armed: make(map[int]time.Time)}
	for _, slot := range []int{0, 1} {
		c.join(slot)
	}
	s.waitAssigned(c.running()...)

	start := time.Now()
	prod := startChaosProducer(t, s, seed, rate)
	var last time.Time
	for _, a := range plan {
		due := latest(start.Add(a.at), last.Add(a.settle))
		if a.kind == chaosClear {
			// A fault lasts its duration even when the schedule runs late.
			due = latest(due, c.armed[a.slot])
		}
		select {
		case <-t.Context().Done():
			t.Fatal("test ended during the schedule")
		case <-time.After(time.Until(due)):
		}
		s.checkAlive()
		t.Logf("%s: %s", time.Since(start).Round(100*time.Millisecond), a)
		c.do(t.Context(), a)
		last = time.Now()
	}
	if d := time.Until(start.Add(duration)); d > 0 {
		time.Sleep(d) // the rest of the soak: producing with whatever members run
	}
	led := prod.stop()
	if led.errors > 0 {
		t.Logf("%d records were not acknowledged (left out of the ledger), first error: %v", led.errors, led.firstErr)
	}
	c.clearFaults()
	if len(c.running()) == 0 {
		c.join(0)
	}

	// Drain: the group commits the end of every partition, or the ledger says which
	// records it still holds back.
	drainStart := time.Now()
	drainBy := drainStart.Add(envDuration("SPANPIPE_IT_CHAOS_DRAIN", 3*time.Minute))
	drained := false
	for !drained && time.Now().Before(drainBy) {
		s.checkAlive()
		if lag, _, _ := s.mustLag(); lag == 0 {
			drained = true
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	drainTook := time.Since(drainStart)
	if !drained {
		lag, _, _ := s.mustLag()
		t.Errorf("the group did not commit the end of every partition within %s of the chaos ending: %d records uncommitted", time.Since(drainStart).Round(time.Second), lag)
	}
	s.stopAll()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	committed, err := s.committed(ctx)
	cancel()
	if err != nil {
		t.Fatalf("committed offsets: %v", err)
	}

	res := checkLedger(t, s, led, c, committed)
	procs := s.all()
	rss, _ := peaks(procs)
	logFigures(t, "seed", seed, "minutes", minutes, "actions", len(plan), "done", c.counts(),
		"emitted", len(led.acked), "spans", res.spans, "poison", res.poison, "produce_errors", led.errors,
		"stored", res.stored, "rows", res.rows, "duplicates", res.rows-res.distinct, "file_duplicates", res.fileDupes,
		"dead_lettered_decode_error", res.deadLettered[dropalerts.ReasonDecodeError],
		"dead_lettered_sink_rejected", res.deadLettered[dropalerts.ReasonSinkRejected],
		"dead_lettered_retry_exhausted", res.deadLettered[dropalerts.ReasonRetryExhausted],
		"dead_letter_copies", res.letterCopies,
		"lost_to_retention", res.retention, "poison_lost_to_retention", res.poisonRetention,
		"deleted_records", res.deleted, "stored_and_dead_lettered", res.both,
		"silently_lost", res.silent, "deleted_unreported", res.deletedUnreported, "uncommitted", res.stalled,
		"processes", len(procs), "drain", drainTook.Round(time.Second), "duration", time.Since(start).Round(time.Second),
		"peak_rss", rss)
}

const (
	chaosPartitions = 6
	chaosSlots      = 4 // DuckDB files; at most one running process per file
	chaosMaxMembers = 3
	// chaosRebalanceTimeout is the members' kafka.rebalance_timeout: shorter than the
	// longest hangs, so that a revoke can time out behind one.
	chaosRebalanceTimeout = 15 * time.Second
)

// chaosMinutes is SPANPIPE_IT_CHAOS_MINUTES (default 3; fractions allowed).
func chaosMinutes() float64 {
	v := os.Getenv("SPANPIPE_IT_CHAOS_MINUTES")
	if v == "" {
		return 3
	}
	m, err := strconv.ParseFloat(v, 64)
	if err != nil || m <= 0 {
		panic(fmt.Sprintf("SPANPIPE_IT_CHAOS_MINUTES=%q: want a positive number of minutes", v))
	}
	return m
}

// ------------------------------------------------------------------ the schedule

type chaosKind string

const (
	chaosKill      chaosKind = "kill-9"         // SIGKILL a member, restart it on its file
	chaosBroker    chaosKind = "broker-restart" // SIGKILL the broker, start it again
	chaosHang      chaosKind = "sink-hang"      // a member's sink blocks for dur
	chaosError     chaosKind = "sink-error"     // a member's sink fails (retryable) for dur
	chaosReject    chaosKind = "sink-reject"    // a member's sink rejects (permanent) for dur
	chaosJoin      chaosKind = "join"           // a member starts on a free file
	chaosLeave     chaosKind = "leave"          // a member stops (SIGTERM)
	chaosRetention chaosKind = "retention"      // hang every sink, delete the partitions' records, release
	chaosClear     chaosKind = "sink-clear"     // the end of a sink fault
)

// chaosCost is about how long an action blocks the schedule on a loaded 2-core
// machine (a broker restart waits for the broker, a leave for the drain), so that
// the schedule fits the soak's duration.
var chaosCost = map[chaosKind]time.Duration{
	chaosBroker: 20 * time.Second, chaosRetention: 10 * time.Second,
	chaosLeave: 5 * time.Second, chaosJoin: 3 * time.Second, chaosKill: 3 * time.Second,
}

// faultDurations bounds how long each sink fault lasts: hangs often outlast the 15s
// rebalance timeout, errors sometimes the ~7.5s retry schedule.
var faultDurations = map[chaosKind][2]time.Duration{
	chaosHang:   {5 * time.Second, 50 * time.Second},
	chaosError:  {2 * time.Second, 15 * time.Second},
	chaosReject: {time.Second, 4 * time.Second},
}

// faultMode is what a sink fault writes into the slot's SPANPIPE_FAULT_FILE
// (internal/app/fault_hook.go).
var faultMode = map[chaosKind]string{chaosHang: "hang", chaosError: "error", chaosReject: "reject"}

type chaosAction struct {
	at         time.Duration // after the start of producing
	kind       chaosKind
	slot       int
	dur        time.Duration // sink faults
	partitions []int32       // retention
	// settle is the least time after the previous action ran, however late the
	// schedule is: a join after a long hang waits until the hung member's writer
	// queue is full.
	settle time.Duration
}

func (a chaosAction) String() string {
	switch a.kind {
	case chaosBroker:
		return string(a.kind)
	case chaosRetention:
		return fmt.Sprintf("%s partitions %v", a.kind, a.partitions)
	case chaosHang, chaosError, chaosReject:
		return fmt.Sprintf("%s slot %d for %s", a.kind, a.slot, a.dur)
	}
	return fmt.Sprintf("%s slot %d", a.kind, a.slot)
}

func planString(plan []chaosAction) string {
	var b strings.Builder
	for _, a := range plan {
		fmt.Fprintf(&b, "  %6s %s\n", a.at.Round(100*time.Millisecond), a)
	}
	return b.String()
}

// chaosPlan draws the schedule from seed alone. It tracks which slots run and which
// have a sink fault, so that every action is possible when it runs (the test's
// actions are the only thing that changes membership). The first actions are one of
// each kind, in random order (one that is not possible yet is tried again after the
// others), so that even a short soak has them all.
func chaosPlan(seed uint64, duration time.Duration) []chaosAction {
	rng := rand.New(rand.NewPCG(seed, 1))
	kinds := []chaosKind{chaosKill, chaosBroker, chaosHang, chaosError, chaosReject, chaosJoin, chaosLeave, chaosRetention}
	weighted := []chaosKind{chaosKill, chaosKill, chaosKill, chaosBroker, chaosHang, chaosHang, chaosHang, chaosHang,
		chaosError, chaosError, chaosError, chaosReject, chaosReject, chaosJoin, chaosJoin, chaosLeave, chaosLeave,
		chaosRetention, chaosRetention}
	first := slices.Clone(kinds)
	rng.Shuffle(len(first), func(i, j int) { first[i], first[j] = first[j], first[i] })
	between := func(lo, hi time.Duration) time.Duration { return lo + time.Duration(rng.Int64N(int64(hi-lo))) }

	running := map[int]bool{0: true, 1: true}
	faultEnds := make(map[int]time.Duration) // slot -> when its fault is cleared
	// Slots that had a hang longer than the rebalance timeout: their member is never
	// killed or stopped, so that it lives through the revoke it cannot flush and, if it
	// stops storing after it, holds its partitions back until the drain at the end,
	// where the ledger sees it. A kill would hide that: redelivery heals it.
	kept := make(map[int]bool)
	pick := func(ok func(int) bool) (int, bool) {
		var c []int
		for i := range chaosSlots {
			if ok(i) {
				c = append(c, i)
			}
		}
		if len(c) == 0 {
			return 0, false
		}
		return c[rng.IntN(len(c))], true
	}
	healthy := func(at time.Duration) func(int) bool {
		return func(i int) bool { return running[i] && faultEnds[i] <= at }
	}
	movable := func(at time.Duration) func(int) bool {
		return func(i int) bool { return running[i] && !kept[i] }
	}

	var plan []chaosAction
	end := duration - 15*time.Second // the last seconds produce with the faults gone
	var next chaosKind               // what a long hang asks for next
	for at := 5 * time.Second; at < end; {
		kind := weighted[rng.IntN(len(weighted))]
		fromFirst := len(first) > 0
		if fromFirst {
			kind = first[0]
		}
		a := chaosAction{at: at, kind: kind}
		if next != "" {
			kind, next, fromFirst = next, "", false
			a.kind, a.settle = kind, 5*time.Second
		}
		ok := true
		switch kind {
		case chaosKill:
			if a.slot, ok = pick(movable(at)); !ok && len(running) < chaosMaxMembers {
				a.kind, ok = chaosJoin, true // a member to kill later
			}
		case chaosHang, chaosError, chaosReject:
			r := faultDurations[kind]
			a.slot, ok = pick(healthy(at))
			ok = ok && end-at >= r[0]
			a.dur = min(between(r[0], r[1]), end-at).Round(100 * time.Millisecond)
			if ok {
				faultEnds[a.slot] = at + a.dur
				plan = append(plan, chaosAction{at: at + a.dur, kind: chaosClear, slot: a.slot})
				if kind == chaosHang && a.dur > chaosRebalanceTimeout {
					// A member joins while this one hangs: the hung member must give
					// up partitions it cannot flush within the rebalance timeout
					// (issue 10, defect 1).
					next = chaosJoin
					kept[a.slot] = true
				}
			}
		case chaosJoin:
			if len(running) >= chaosMaxMembers {
				a.kind = chaosLeave
			}
		case chaosLeave:
			if len(running) <= 1 {
				a.kind = chaosJoin
			}
		case chaosRetention:
			ps := rng.Perm(chaosPartitions)[:1+rng.IntN(2)]
			for _, p := range ps {
				a.partitions = append(a.partitions, int32(p))
			}
			slices.Sort(a.partitions)
		}
		switch a.kind {
		case chaosJoin:
			a.slot, ok = pick(func(i int) bool { return !running[i] })
			if ok {
				running[a.slot] = true
			}
		case chaosLeave:
			a.slot, ok = pick(movable(at))
			if ok {
				delete(running, a.slot)
			}
		}
		if ok {
			plan = append(plan, a)
		}
		if fromFirst { // done, or tried again after the others
			if ok && a.kind == first[0] {
				first = first[1:]
			} else {
				first = append(first[1:], first[0])
			}
		}
		at += chaosCost[a.kind] + between(3*time.Second, 6*time.Second)
	}
	slices.SortStableFunc(plan, func(a, b chaosAction) int { return int(a.at - b.at) })
	return plan
}

// ----------------------------------------------------------------- carrying it out

// chaos runs the schedule against the scenario's members (one slot = one DuckDB file
// and one fault file) and the broker.
type chaos struct {
	s       *scenario
	l       *launcher
	members map[int]*consumerProc // running, by slot
	started int
	done    map[chaosKind]int
	// deleted is, per partition, the highest log start offset a DeleteRecords set:
	// the records below it were deleted. (Kafka may serve them again after the broker
	// restarts without checkpointing the log start, so the end state cannot say.)
	deleted map[int32]int64
	armed   map[int]time.Time // slot -> when its sink fault may be cleared
}

func latest(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func (c *chaos) faultPath(slot int) string {
	return filepath.Join(c.s.dir, fmt.Sprintf("c%d.fault", slot))
}

func (c *chaos) join(slot int) {
	c.started++
	c.members[slot] = c.s.startConsumer(fmt.Sprintf("c%d-%d", slot, c.started), c.s.db(slot),
		"SPANPIPE_FAULT_FILE="+c.faultPath(slot))
}

func (c *chaos) running() []*consumerProc {
	var out []*consumerProc
	for _, slot := range slices.Sorted(maps.Keys(c.members)) {
		out = append(out, c.members[slot])
	}
	return out
}

func (c *chaos) setFault(slot int, mode string) {
	if err := os.WriteFile(c.faultPath(slot), []byte(mode+"\n"), 0o644); err != nil {
		c.s.t.Fatal(err)
	}
}

func (c *chaos) clearFault(slot int) {
	if err := os.Remove(c.faultPath(slot)); err != nil && !os.IsNotExist(err) {
		c.s.t.Fatal(err)
	}
}

func (c *chaos) clearFaults() {
	for slot := range chaosSlots {
		c.clearFault(slot)
	}
}

func (c *chaos) counts() string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(c.done)) {
		parts = append(parts, fmt.Sprintf("%s:%d", k, c.done[k]))
	}
	return strings.Join(parts, ",")
}

func (c *chaos) do(ctx context.Context, a chaosAction) {
	t := c.s.t
	t.Helper()
	c.done[a.kind]++
	switch a.kind {
	case chaosKill:
		c.members[a.slot].kill()
		c.join(a.slot)
	case chaosBroker:
		if err := c.l.kill(ctx, 1); err != nil {
			t.Fatal(err)
		}
		if err := c.l.restartNode(ctx, 1); err != nil {
			t.Fatalf("restart the broker: %v\n%s", err, c.l.serverLog(1, 40))
		}
	case chaosHang, chaosError, chaosReject:
		c.setFault(a.slot, faultMode[a.kind])
		c.armed[a.slot] = time.Now().Add(a.dur)
	case chaosClear:
		c.clearFault(a.slot)
	case chaosJoin:
		c.join(a.slot)
	case chaosLeave:
		c.members[a.slot].stop()
		delete(c.members, a.slot)
	case chaosRetention:
		c.retention(ctx, a.partitions)
	}
}

// retention hangs the sink of every running member that has no fault, waits until
// they pause fetching (their buffers full) or 8s pass (a member whose writer queue is
// full stops polling without pausing: it is behind all the same), deletes the given partitions'
// records up to their end offsets, and releases the sinks: the members are behind,
// their fetch positions below the new log start.
func (c *chaos) retention(ctx context.Context, partitions []int32) {
	t := c.s.t
	var hung []int
	for slot := range c.members {
		if _, err := os.Stat(c.faultPath(slot)); os.IsNotExist(err) {
			c.setFault(slot, "hang")
			hung = append(hung, slot)
		}
	}
	start := time.Now()
	paused := 0
	for time.Since(start) < 8*time.Second {
		paused = 0
		for _, slot := range hung {
			if m, err := c.members[slot].scrape(); err == nil && m.sum("spanpipe_consumer_paused_partitions") > 0 {
				paused++
			}
		}
		if paused == len(hung) {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Logf("%d of %d hung members paused fetching after %s", paused, len(hung), time.Since(start).Round(100*time.Millisecond))
	ends, err := c.s.endOffsets(ctx)
	if err != nil {
		t.Fatalf("end offsets: %v", err)
	}
	var to kadm.Offsets
	for _, p := range partitions {
		to.AddOffset(c.s.topic, p, ends[p], -1)
	}
	resp, err := c.s.adm.DeleteRecords(ctx, to)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		t.Fatalf("delete records %v: %v", partitions, err)
	}
	resp.Each(func(d kadm.DeleteRecordsResponse) {
		c.deleted[d.Partition] = max(c.deleted[d.Partition], d.LowWatermark)
		t.Logf("deleted %s[%d] below %d", d.Topic, d.Partition, d.LowWatermark)
	})
	time.Sleep(2 * time.Second) // the members stay behind for a moment
	for _, slot := range hung {
		c.clearFault(slot)
	}
}

// ------------------------------------------------------------------ the producer

// recAt is a record's place in the topic.
type recAt struct {
	partition int32
	offset    int64
}

// ledgerEntry is an acknowledged record: the span it carries, or poison.
type ledgerEntry struct {
	key    spanKey
	poison bool
}

// chaosLedger is what Kafka acknowledged to the producer.
type chaosLedger struct {
	acked     map[recAt]ledgerEntry
	attempted map[spanKey]bool // every span produced, acknowledged or not
	errors    int              // records whose produce failed
	firstErr  error
}

type chaosProducer struct {
	cancel context.CancelFunc
	done   chan struct{}
	cl     *kgo.Client
	mu     sync.Mutex
	led    chaosLedger
	sent   atomic.Int64
}

// startChaosProducer produces rate records per second, one span_ended span each, 1%
// poison (chosen by the seed), until stop. It records the partition and offset Kafka
// acknowledged for every record, which is how the ledger maps retention ranges and
// dead letters back to spans.
func startChaosProducer(t *testing.T, s *scenario, seed uint64, rate float64) *chaosProducer {
	p := &chaosProducer{
		done: make(chan struct{}),
		led:  chaosLedger{acked: make(map[recAt]ledgerEntry), attempted: make(map[spanKey]bool)},
		cl: newClient(t, s.brokers, kgo.DefaultProduceTopic(s.topic),
			kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)), kgo.ProducerLinger(5*time.Millisecond),
			kgo.RecordDeliveryTimeout(5*time.Minute)),
	}
	ctx, cancel := context.WithCancel(t.Context())
	p.cancel = cancel
	rng := rand.New(rand.NewPCG(seed, 2))
	go func() {
		defer close(p.done)
		start := time.Now()
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Until(start.Add(time.Duration(float64(i) / rate * float64(time.Second))))):
			}
			key := spanKey{fmt.Sprintf("%016x%016x", rng.Uint64(), rng.Uint64()), fmt.Sprintf("%016x", rng.Uint64())}
			entry := ledgerEntry{key: key, poison: rng.IntN(100) == 0}
			r := &kgo.Record{Key: []byte(key.trace)}
			if entry.poison {
				r.Value = poison(i)
			} else {
				r.Value = endedSpan(key.trace, key.span)
				r.Headers = []kgo.RecordHeader{{Key: schema.HeaderCodec, Value: []byte(schema.CodecJSON)}}
				p.mu.Lock()
				p.led.attempted[key] = true
				p.mu.Unlock()
			}
			// Not ctx: stopping the producer must not fail what it already holds.
			p.cl.Produce(context.Background(), r, func(r *kgo.Record, err error) {
				p.mu.Lock()
				defer p.mu.Unlock()
				if err != nil {
					p.led.errors++
					if p.led.firstErr == nil {
						p.led.firstErr = err
					}
					return
				}
				p.led.acked[recAt{r.Partition, r.Offset}] = entry
				p.sent.Add(1)
			})
		}
	}()
	return p
}

// stop stops producing, waits for every record's acknowledgement, and returns the
// ledger.
func (p *chaosProducer) stop() chaosLedger {
	p.cancel()
	<-p.done
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	_ = p.cl.Flush(ctx)
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.led
}

// ------------------------------------------------------------------ the ledger

type ledgerResult struct {
	spans, poison, stored, both                 int
	rows, distinct, fileDupes                   int64
	deadLettered                                map[dropalerts.Reason]int
	letterCopies                                int
	retention, poisonRetention                  int
	deleted, silent, deletedUnreported, stalled int
}

// checkLedger accounts for every acknowledged record (see TestChaosSoak) and fails the
// test for every record that is unaccounted for, with examples.
func checkLedger(t *testing.T, s *scenario, led chaosLedger, c *chaos, committed map[int32]int64) ledgerResult {
	t.Helper()
	res := ledgerResult{deadLettered: make(map[dropalerts.Reason]int)}
	view := readStores(t, s.dbs())
	res.rows, res.distinct, res.fileDupes = view.rows, view.distinct(), view.fileDupes
	if view.fileDupes != 0 {
		t.Errorf("%d duplicate (trace_id, span_id) rows inside single DuckDB files, want 0", view.fileDupes)
	}
	deletedBelow := c.deleted

	drops := s.readDropTopic()
	if drops.other != 0 {
		t.Errorf("%d records on the drop topic that are neither dead letters nor drop events", drops.other)
	}
	letters := make(map[recAt]map[dropalerts.Reason]int)
	var problems []string
	problem := func(format string, a ...any) { problems = append(problems, fmt.Sprintf(format, a...)) }
	for _, l := range drops.letters {
		info, err := dropalerts.ParseDeadLetter(l.Headers)
		if err != nil {
			problem("unreadable dead letter: %v", err)
			continue
		}
		where := recAt{info.SourcePartition, info.SourceOffset}
		entry, ok := led.acked[where]
		switch {
		case info.SourceTopic != s.topic:
			problem("dead letter from topic %q", info.SourceTopic)
			continue
		case !ok:
			problem("dead letter of %v, which the producer never had acknowledged", where)
			continue
		case entry.poison != (info.Reason == dropalerts.ReasonDecodeError):
			problem("dead letter of %v (poison %v) with reason %s", where, entry.poison, info.Reason)
		case info.Reason == dropalerts.ReasonSinkRejected && c.done[chaosReject] == 0,
			info.Reason == dropalerts.ReasonRetryExhausted && c.done[chaosError] == 0,
			!slices.Contains([]dropalerts.Reason{dropalerts.ReasonDecodeError, dropalerts.ReasonSinkRejected, dropalerts.ReasonRetryExhausted}, info.Reason):
			problem("dead letter of %v with reason %s, which no fault of the schedule causes", where, info.Reason)
		}
		if letters[where] == nil {
			letters[where] = make(map[dropalerts.Reason]int)
		} else {
			res.letterCopies++
		}
		letters[where][info.Reason]++
	}
	// Drop events: every dead-letter reason counted, every retention range deleted.
	type span struct{ first, last int64 }
	retained := make(map[int32][]span)
	for _, ev := range drops.events {
		if ev.Reason != dropalerts.ReasonRetentionExpired || ev.Component != dropalerts.ComponentConsumer {
			continue
		}
		src := ev.Source
		switch {
		case src == nil || src.Topic != s.topic:
			problem("retention-expired drop event without a source range of %s: %+v", s.topic, src)
		case src.LastOffset >= deletedBelow[src.Partition] || src.FirstOffset > src.LastOffset:
			problem("retention-expired drop event for %s[%d] offsets %d-%d, but only offsets below %d were deleted",
				src.Topic, src.Partition, src.FirstOffset, src.LastOffset, deletedBelow[src.Partition])
		default:
			retained[src.Partition] = append(retained[src.Partition], span{src.FirstOffset, src.LastOffset})
		}
	}
	inRetention := func(w recAt) bool {
		return slices.ContainsFunc(retained[w.partition], func(r span) bool { return w.offset >= r.first && w.offset <= r.last })
	}

	var silent, deletedUnreported, stalled []string
	good := make(map[spanKey]bool)
	for w, e := range led.acked {
		deleted := w.offset < deletedBelow[w.partition]
		if deleted {
			res.deleted++
		}
		dl := len(letters[w]) > 0
		for reason := range letters[w] {
			res.deadLettered[reason]++
		}
		if e.poison {
			res.poison++
			switch {
			case dl:
			case inRetention(w):
				res.poisonRetention++
			default:
				missingRecord(w, e, deleted, committed, &silent, &deletedUnreported, &stalled)
			}
			continue
		}
		res.spans++
		good[e.key] = true
		_, stored := view.spans[e.key]
		switch {
		case stored && dl:
			res.stored++
			res.both++
		case stored:
			res.stored++
		case dl:
		case inRetention(w):
			res.retention++
		default:
			missingRecord(w, e, deleted, committed, &silent, &deletedUnreported, &stalled)
		}
	}
	var extra []string
	for k := range view.spans {
		if !good[k] && !led.attempted[k] {
			extra = append(extra, k.String())
		}
	}
	for _, reason := range slices.Sorted(maps.Keys(res.deadLettered)) {
		if got, want := drops.count(dropalerts.ComponentConsumer, reason), res.deadLettered[reason]; got < want {
			problem("drop events count %d %s records, but %d records have %s dead letters", got, reason, want, reason)
		}
	}
	res.silent, res.deletedUnreported, res.stalled = len(silent), len(deletedUnreported), len(stalled)
	reportList(t, "records committed over, but neither stored, dead-lettered nor reported lost (silent loss)", silent)
	reportList(t, "records deleted by retention with no retention-expired drop event (silent loss)", deletedUnreported)
	reportList(t, "records never stored nor dead-lettered and still uncommitted (a stalled member)", stalled)
	reportList(t, "spans stored that the producer never sent", extra)
	reportList(t, "ledger problems", problems)
	return res
}

// missingRecord files a record that is neither stored nor dead-lettered nor inside a
// retention range by what happened to it.
func missingRecord(w recAt, e ledgerEntry, deleted bool, committed map[int32]int64, silent, deletedUnreported, stalled *[]string) {
	what := fmt.Sprintf("%s[%d]@%d", e.key, w.partition, w.offset)
	if e.poison {
		what = fmt.Sprintf("poison [%d]@%d", w.partition, w.offset)
	}
	switch {
	case deleted:
		*deletedUnreported = append(*deletedUnreported, what)
	case w.offset >= committed[w.partition]:
		*stalled = append(*stalled, what)
	default:
		*silent = append(*silent, what)
	}
}

// TestChaosPlan: the schedule is a function of the seed (so a failing seed replays),
// every action is possible when it runs, and a 3-minute soak has every kind of fault.
// No broker: this checks the test's own generator.
func TestChaosPlan(t *testing.T) {
	for seed := range uint64(200) {
		plan := chaosPlan(seed, 3*time.Minute)
		if !slices.EqualFunc(plan, chaosPlan(seed, 3*time.Minute), func(a, b chaosAction) bool { return a.String() == b.String() && a.at == b.at }) {
			t.Fatalf("seed %d: two plans differ", seed)
		}
		running := map[int]bool{0: true, 1: true}
		faulted := make(map[int]bool)
		kept := make(map[int]bool)
		kinds := make(map[chaosKind]bool)
		for i, a := range plan {
			bad := func(why string) {
				t.Fatalf("seed %d, action %d (%s at %s): %s\n%s", seed, i, a, a.at, why, planString(plan))
			}
			if i > 0 && a.at < plan[i-1].at {
				bad("out of order")
			}
			kinds[a.kind] = true
			switch a.kind {
			case chaosKill:
				if !running[a.slot] || kept[a.slot] {
					bad("kills a slot that does not run, or one that had a long hang")
				}
			case chaosLeave:
				if !running[a.slot] || len(running) == 1 || kept[a.slot] {
					bad("stops a slot that does not run, the last member, or one that had a long hang")
				}
				delete(running, a.slot)
			case chaosJoin:
				if running[a.slot] || len(running) == chaosMaxMembers {
					bad("starts a slot that runs, or too many members")
				}
				running[a.slot] = true
			case chaosHang, chaosError, chaosReject:
				if !running[a.slot] || faulted[a.slot] || a.dur <= 0 {
					bad("faults a slot that does not run or already has a fault")
				}
				faulted[a.slot] = true
				if a.kind == chaosHang && a.dur > chaosRebalanceTimeout {
					kept[a.slot] = true
				}
			case chaosClear:
				if !faulted[a.slot] {
					bad("clears a fault that is not armed")
				}
				delete(faulted, a.slot)
			}
		}
		if len(faulted) != 0 {
			t.Fatalf("seed %d: faults never cleared on slots %v", seed, faulted)
		}
		if len(kinds) != len(faultMode)+len(chaosCost)+1 {
			t.Fatalf("seed %d: a 3-minute plan has only %v", seed, kinds)
		}
	}
}

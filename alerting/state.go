package alerting

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spanpipe/spanpipe/dropalerts"
	"github.com/twmb/franz-go/pkg/kgo"
)

// This file is the alerter's state machine. It does no I/O and takes the time as an
// argument, so its tests need neither Kafka nor sleeps.
//
// Delivery and commits. Every drop event read gets a sequence number (one counter for
// the process). An alert key remembers, per receiver, the highest sequence number
// that receiver has acknowledged in a post. Each source partition keeps a queue of the
// events read from it that are not yet handled; an event is handled when every
// receiver acknowledged a post that included it, or when it left its window without
// its key reaching the threshold (there is nothing to deliver). The committable offset
// of a partition is the offset of its first unhandled event, or the next offset to
// read when none is left: an event's offset is never committed before the alert state
// that includes it was delivered everywhere.

// alertKey is what one alert is about.
type alertKey struct {
	reason, signal, sink, component string
}

type topicPartition struct {
	topic     string
	partition int32
}

// arrival is one or more drop events for a key read at about the same time.
type arrival struct {
	at      time.Time
	seq     uint64 // the newest event's
	records int64
}

const (
	maxInstances = 5
	maxSources   = 8
	maxLabelLen  = 128
)

type offsetRange struct{ first, last int64 }

// alertState is one key: its window, its alert if open, and what receivers have.
type alertState struct {
	key     alertKey
	id      uint64 // unique per incarnation of a key
	gone    bool   // forgotten: everything it had was handled
	last    uint64 // seq of the newest event
	expired uint64 // events with seq <= expired left the window without alerting

	window        []arrival
	windowRecords int64

	firing      bool
	resolved    bool // quiet period over; the resolve is not yet delivered everywhere
	created     time.Time
	startsAt    time.Time
	endsAt      time.Time
	lastArrival time.Time

	// Totals since this incarnation began.
	events, records     int64
	firstTime, lastTime time.Time
	lastError           string
	instances           []string
	samples             []string
	sources             map[topicPartition]offsetRange
	moreSources         int
	deadLetterTopic     string
	deadLetters         int64

	acked        []uint64 // per receiver: highest seq delivered
	resolveAcked []bool   // per receiver: the resolve was delivered
}

// partState tracks one partition of the drop topic.
type partState struct {
	next      int64 // offset after the newest record read
	committed int64 // last committed offset; -1 before the first commit
	queue     []pendingEvent
}

// pendingEvent is one drop event not yet handled. Entries are not merged, even for
// one key: a merged entry would take the newest event's seq, and under a steady
// trickle of drops the front of the queue would never become handled.
type pendingEvent struct {
	offset int64
	st     *alertState
	seq    uint64
}

// aggregator is the state machine. It is not safe for concurrent use.
type aggregator struct {
	cfg     *Config
	nrecv   int
	seq     uint64
	nextID  uint64
	alerts  map[alertKey]*alertState
	parts   map[topicPartition]*partState
	pending int // entries in all queues
}

func newAggregator(cfg *Config, receivers int) *aggregator {
	return &aggregator{cfg: cfg, nrecv: receivers, alerts: make(map[alertKey]*alertState), parts: make(map[topicPartition]*partState)}
}

func (a *aggregator) part(tp topicPartition) *partState {
	ps := a.parts[tp]
	if ps == nil {
		ps = &partState{committed: -1}
		a.parts[tp] = ps
	}
	return ps
}

// observe records a record that needs no delivery (a dead letter, an unreadable event).
func (a *aggregator) observe(tp topicPartition, offset int64) {
	ps := a.part(tp)
	ps.next = max(ps.next, offset+1)
}

// ingest adds one drop event read at now from tp at offset.
func (a *aggregator) ingest(now time.Time, tp topicPartition, offset int64, ev *dropalerts.Event) {
	key := a.keyFor(ev)
	st := a.alerts[key]
	if st == nil {
		a.nextID++
		st = &alertState{
			key: key, id: a.nextID, created: now,
			acked: make([]uint64, a.nrecv), resolveAcked: make([]bool, a.nrecv),
		}
		a.alerts[key] = st
	}
	a.seq++
	s := a.seq
	st.last = s
	recs := max(int64(1), int64(ev.Count))

	// Window: merge arrivals closer than 1/64 of the window, so that its length stays
	// bounded however many events arrive.
	if n := len(st.window); n > 0 && now.Sub(st.window[n-1].at) < a.cfg.Window/64 {
		st.window[n-1].seq = s
		st.window[n-1].records = satAdd(st.window[n-1].records, recs)
	} else {
		st.window = append(st.window, arrival{at: now, seq: s, records: recs})
	}
	st.windowRecords = satAdd(st.windowRecords, recs)

	st.events++
	st.records = satAdd(st.records, recs)
	if t := ev.FirstTime; !t.IsZero() && (st.firstTime.IsZero() || t.Before(st.firstTime)) {
		st.firstTime = t
	}
	last := ev.LastTime
	if last.IsZero() {
		last = ev.FirstTime
	}
	if last.After(st.lastTime) {
		st.lastTime = last
	}
	if ev.Error != "" {
		st.lastError = ev.Error
	}
	if ev.Instance != "" && len(st.instances) < maxInstances && !slices.Contains(st.instances, ev.Instance) {
		st.instances = append(st.instances, ev.Instance)
	}
	for _, id := range ev.SampleTraceIDs {
		if len(st.samples) >= dropalerts.MaxSampleTraceIDs {
			break
		}
		if id != "" && !slices.Contains(st.samples, id) {
			st.samples = append(st.samples, id)
		}
	}
	if src := ev.Source; src != nil {
		stp := topicPartition{src.Topic, src.Partition}
		if r, ok := st.sources[stp]; ok {
			st.sources[stp] = offsetRange{min(r.first, src.FirstOffset), max(r.last, src.LastOffset)}
		} else if len(st.sources) < maxSources {
			if st.sources == nil {
				st.sources = make(map[topicPartition]offsetRange)
			}
			st.sources[stp] = offsetRange{src.FirstOffset, src.LastOffset}
		} else {
			st.moreSources++
		}
	}
	if ev.DeadLetterTopic != "" {
		st.deadLetterTopic = ev.DeadLetterTopic
	}
	st.deadLetters = satAdd(st.deadLetters, int64(max(0, ev.DeadLetters)))
	st.lastArrival = now
	if st.resolved { // a drop after the quiet period, before the resolve went out: reopen
		st.resolved = false
		st.endsAt = time.Time{}
		clear(st.resolveAcked)
	}

	ps := a.part(tp)
	ps.next = max(ps.next, offset+1)
	ps.queue = append(ps.queue, pendingEvent{offset: offset, st: st, seq: s})
	a.pending++
}

// keyFor maps an event to its key: label-safe values, and one overflow key once
// MaxAlerts keys exist, so that garbage on the drop topic cannot grow memory.
func (a *aggregator) keyFor(ev *dropalerts.Event) alertKey {
	k := alertKey{reason: labelValue(string(ev.Reason)), signal: labelValue(string(ev.Signal)), sink: labelValue(ev.Sink), component: labelValue(ev.Component)}
	if k.reason == "" {
		k.reason = "unknown"
	}
	if _, ok := a.alerts[k]; !ok && len(a.alerts) >= a.cfg.MaxAlerts {
		return alertKey{reason: "other", signal: "other", sink: "other", component: "other"}
	}
	return k
}

// labelValue makes s a bounded, valid UTF-8 label value.
func labelValue(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= maxLabelLen {
		return s
	}
	s = s[:maxLabelLen]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// evaluate slides windows, opens alerts that reached their threshold, resolves those
// quiet for long enough, and forgets keys with nothing left to deliver.
func (a *aggregator) evaluate(now time.Time) {
	cutoff := now.Add(-a.cfg.Window)
	for key, st := range a.alerts {
		i := 0
		for i < len(st.window) && !st.window[i].at.After(cutoff) {
			if !st.firing {
				st.expired = max(st.expired, st.window[i].seq)
			}
			st.windowRecords -= st.window[i].records
			i++
		}
		st.window = slices.Delete(st.window, 0, i)
		if !st.firing {
			if st.windowRecords >= a.cfg.threshold(dropalerts.Reason(key.reason)) {
				st.firing = true
				st.startsAt = st.created
				if !st.firstTime.IsZero() && st.firstTime.Before(st.startsAt) {
					st.startsAt = st.firstTime
				}
				st.startsAt = minTime(st.startsAt, now)
			} else if len(st.window) == 0 {
				st.gone = true // every event expired below the threshold
				delete(a.alerts, key)
				continue
			}
		}
		if st.firing && !st.resolved && now.Sub(st.lastArrival) >= a.cfg.Quiet {
			st.resolved = true
			st.endsAt = maxTime(now, st.startsAt)
		}
	}
	a.sweep()
}

// sweep forgets resolved alerts whose resolve every receiver has.
func (a *aggregator) sweep() {
	for key, st := range a.alerts {
		if st.resolved && !slices.Contains(st.resolveAcked, false) {
			st.gone = true
			delete(a.alerts, key)
		}
	}
}

// news reports whether receiver r lacks something: a drop, an opened or a resolved alert.
func (a *aggregator) news(r int) bool {
	for _, st := range a.alerts {
		if st.firing && (st.acked[r] < st.last || (st.resolved && !st.resolveAcked[r])) {
			return true
		}
	}
	return false
}

// active reports whether any alert is open and not resolved.
func (a *aggregator) active() bool {
	for _, st := range a.alerts {
		if st.firing && !st.resolved {
			return true
		}
	}
	return false
}

// openAlerts counts alerts open and not resolved.
func (a *aggregator) openAlerts() int {
	n := 0
	for _, st := range a.alerts {
		if st.firing && !st.resolved {
			n++
		}
	}
	return n
}

// alertView is one alert as posted: a copy, safe to use without the state.
type alertView struct {
	key      alertKey
	id, seq  uint64
	resolved bool
	labels   map[string]string
	annots   map[string]string
	startsAt time.Time
	endsAt   time.Time // zero while active
	details  AlertDetails
}

// snapshot returns every open alert, and every resolved one not yet delivered
// everywhere, in a stable order.
func (a *aggregator) snapshot() []alertView {
	var out []alertView
	for _, st := range a.alerts {
		if st.firing {
			out = append(out, a.view(st))
		}
	}
	slices.SortFunc(out, func(x, y alertView) int {
		return cmp.Or(cmp.Compare(x.key.reason, y.key.reason), cmp.Compare(x.key.signal, y.key.signal),
			cmp.Compare(x.key.sink, y.key.sink), cmp.Compare(x.key.component, y.key.component))
	})
	return out
}

// ack records that receiver r accepted a post of views.
func (a *aggregator) ack(r int, views []alertView) {
	for _, v := range views {
		st := a.alerts[v.key]
		if st == nil || st.id != v.id {
			continue
		}
		st.acked[r] = max(st.acked[r], v.seq)
		if v.resolved && st.resolved {
			st.resolveAcked[r] = true
		}
	}
	a.sweep()
}

func (a *aggregator) handled(p pendingEvent) bool {
	st := p.st
	if st.gone || p.seq <= st.expired {
		return true
	}
	for _, s := range st.acked {
		if s < p.seq {
			return false
		}
	}
	return true
}

// committable returns the offset up to which tp may be committed (the next offset to
// read), dropping handled entries from the front of its queue.
func (a *aggregator) committable(ps *partState) int64 {
	i := 0
	for i < len(ps.queue) && a.handled(ps.queue[i]) {
		i++
	}
	if i > 0 {
		ps.queue = slices.Delete(ps.queue, 0, i)
		a.pending -= i
	}
	if len(ps.queue) > 0 {
		return ps.queue[0].offset
	}
	return ps.next
}

// commitOffsets returns the offsets to commit: those that moved past the last commit.
func (a *aggregator) commitOffsets() map[string]map[int32]kgo.EpochOffset {
	var out map[string]map[int32]kgo.EpochOffset
	for tp, ps := range a.parts {
		if off := a.committable(ps); off > ps.committed && off > 0 {
			out = addOffset(out, tp, off)
		}
	}
	return out
}

// committed records a successful commit.
func (a *aggregator) committed(offsets map[string]map[int32]kgo.EpochOffset) {
	for t, ps := range offsets {
		for p, eo := range ps {
			if st := a.parts[topicPartition{t, p}]; st != nil {
				st.committed = max(st.committed, eo.Offset)
			}
		}
	}
}

// release forgets tp (revoked or lost) and returns its committable offset, if it moved.
func (a *aggregator) release(tp topicPartition) (int64, bool) {
	ps := a.parts[tp]
	if ps == nil {
		return 0, false
	}
	off := a.committable(ps)
	a.pending -= len(ps.queue)
	delete(a.parts, tp)
	return off, off > ps.committed && off > 0
}

func addOffset(m map[string]map[int32]kgo.EpochOffset, tp topicPartition, off int64) map[string]map[int32]kgo.EpochOffset {
	if m == nil {
		m = make(map[string]map[int32]kgo.EpochOffset)
	}
	if m[tp.topic] == nil {
		m[tp.topic] = make(map[int32]kgo.EpochOffset)
	}
	m[tp.topic][tp.partition] = kgo.EpochOffset{Epoch: -1, Offset: off}
	return m
}

// AlertDetails is what the alerter knows about one alert, as numbers and lists; the
// webhook carries it per alert, and the annotations say the same in words.
type AlertDetails struct {
	// Events and Records count drop events and dropped records since the alert's key
	// was first seen (or since its previous alert resolved).
	Events  int64 `json:"events"`
	Records int64 `json:"records"`
	// WindowRecords are the dropped records within the window; Threshold the number
	// that opens the alert.
	WindowRecords int64   `json:"windowRecords"`
	WindowSeconds float64 `json:"windowSeconds"`
	Threshold     int64   `json:"threshold"`
	// FirstDrop and LastDrop are the drop events' own times.
	FirstDrop      time.Time `json:"firstDrop,omitzero"`
	LastDrop       time.Time `json:"lastDrop,omitzero"`
	Error          string    `json:"error,omitempty"`
	Instances      []string  `json:"instances,omitempty"`
	SampleTraceIDs []string  `json:"sampleTraceIds,omitempty"`
	// Sources are the offset ranges the dropped records came from, per partition (at
	// most 8; MoreSources counts drop events from further partitions).
	Sources         []dropalerts.Source `json:"sources,omitempty"`
	MoreSources     int                 `json:"moreSources,omitempty"`
	DeadLetterTopic string              `json:"deadLetterTopic,omitempty"`
	DeadLetters     int64               `json:"deadLetters,omitempty"`
	// Replay is a command that re-publishes the dead letters, when there are any.
	Replay string `json:"replay,omitempty"`
}

func (a *aggregator) view(st *alertState) alertView {
	k := st.key
	d := AlertDetails{
		Events: st.events, Records: st.records, WindowRecords: st.windowRecords, WindowSeconds: a.cfg.Window.Seconds(),
		Threshold: a.cfg.threshold(dropalerts.Reason(k.reason)), FirstDrop: st.firstTime, LastDrop: st.lastTime,
		Error: st.lastError, Instances: slices.Clone(st.instances), SampleTraceIDs: slices.Clone(st.samples),
		MoreSources: st.moreSources, DeadLetterTopic: st.deadLetterTopic, DeadLetters: st.deadLetters,
	}
	for tp, r := range st.sources {
		d.Sources = append(d.Sources, dropalerts.Source{Topic: tp.topic, Partition: tp.partition, FirstOffset: r.first, LastOffset: r.last})
	}
	slices.SortFunc(d.Sources, func(x, y dropalerts.Source) int {
		return cmp.Or(cmp.Compare(x.Topic, y.Topic), cmp.Compare(x.Partition, y.Partition))
	})
	d.Replay = replayCommand(k.reason, st.deadLetterTopic, st.firstTime, d.DeadLetters)
	labels := map[string]string{"alertname": "SpanpipeDrops", "reason": k.reason, "severity": a.cfg.severity(dropalerts.Reason(k.reason))}
	for _, l := range [...]struct{ name, value string }{{"signal", k.signal}, {"sink", k.sink}, {"component", k.component}} {
		if l.value != "" { // an empty label is an absent label to Alertmanager
			labels[l.name] = l.value
		}
	}
	for n, v := range a.cfg.ExternalLabels {
		labels[n] = v
	}
	v := alertView{
		key: k, id: st.id, seq: st.last, resolved: st.resolved, labels: labels,
		annots: annotations(k, &d), startsAt: st.startsAt, details: d,
	}
	if st.resolved {
		v.endsAt = st.endsAt
	}
	return v
}

// replayCommand suggests the command that replays an alert's dead letters, or ""
// when there are none or a field it would need is not provably harmless: the reason
// must be one of [dropalerts.AllReasons] and the topic a legal Kafka topic name (no
// blanks, quotes or shell metacharacters), because whoever reads the alert may paste
// it into a shell, and both come from records anyone with write access to the drop
// topic can forge.
func replayCommand(reason, topic string, since time.Time, deadLetters int64) string {
	if deadLetters <= 0 || !dropalerts.Reason(reason).Known() || (topic != "" && !dropalerts.ValidTopicName(topic)) {
		return ""
	}
	cmd := "spanpipe replay --reason " + reason
	if topic != "" {
		cmd += " --deadletter-topic " + topic
	}
	if !since.IsZero() {
		cmd += " --since " + since.UTC().Format(time.RFC3339)
	}
	return cmd + " --dry-run"
}

// annotations renders the details for people: summary and description, plus a few
// single-value annotations for templates.
func annotations(k alertKey, d *AlertDetails) map[string]string {
	signal := k.signal
	if signal == "" {
		signal = "spanpipe"
	}
	who := k.component
	if who == "" {
		who = "a component"
	}
	summary := fmt.Sprintf("spanpipe %s dropped %d %s record%s: %s", who, d.Records, signal, plural(d.Records), k.reason)
	if k.sink != "" {
		summary += " (sink " + k.sink + ")"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d record%s in %d drop event%s", d.Records, plural(d.Records), d.Events, plural(d.Events))
	if !d.FirstDrop.IsZero() {
		fmt.Fprintf(&b, " between %s and %s", d.FirstDrop.UTC().Format(time.RFC3339), d.LastDrop.UTC().Format(time.RFC3339))
	}
	fmt.Fprintf(&b, "; %d in the last %s (threshold %d).", d.WindowRecords, time.Duration(d.WindowSeconds*float64(time.Second)), d.Threshold)
	if d.Error != "" {
		fmt.Fprintf(&b, "\nLast error: %s", d.Error)
	}
	if len(d.Instances) > 0 {
		fmt.Fprintf(&b, "\nInstances: %s", strings.Join(d.Instances, ", "))
	}
	if len(d.SampleTraceIDs) > 0 {
		fmt.Fprintf(&b, "\nSample trace ids: %s", strings.Join(d.SampleTraceIDs, ", "))
	}
	sources := sourcesText(d)
	if sources != "" {
		fmt.Fprintf(&b, "\nSource offsets: %s", sources)
	}
	switch {
	case d.DeadLetters > 0 && d.Replay != "":
		fmt.Fprintf(&b, "\nDead letters: %d on %s. Replay: %s", d.DeadLetters, d.DeadLetterTopic, d.Replay)
	case d.DeadLetters > 0:
		fmt.Fprintf(&b, "\nDead letters: %d on %s (no replay command: the drop event's reason or topic is not one spanpipe writes; see the runbook).", d.DeadLetters, strconv.Quote(d.DeadLetterTopic))
	default:
		b.WriteString("\nNo dead letters: the records themselves are not kept.")
	}
	m := map[string]string{
		"summary":     summary,
		"description": b.String(),
		"records":     strconv.FormatInt(d.Records, 10),
		"events":      strconv.FormatInt(d.Events, 10),
	}
	if len(d.SampleTraceIDs) > 0 {
		m["sample_trace_ids"] = strings.Join(d.SampleTraceIDs, ",")
	}
	if sources != "" {
		m["source_offsets"] = sources
	}
	if d.DeadLetterTopic != "" {
		m["dead_letter_topic"] = d.DeadLetterTopic
	}
	if d.Replay != "" {
		m["replay"] = d.Replay
	}
	if d.Error != "" {
		m["error"] = d.Error
	}
	return m
}

func sourcesText(d *AlertDetails) string {
	parts := make([]string, 0, len(d.Sources)+1)
	for _, s := range d.Sources {
		parts = append(parts, fmt.Sprintf("%s[%d] %d-%d", s.Topic, s.Partition, s.FirstOffset, s.LastOffset))
	}
	if d.MoreSources > 0 {
		parts = append(parts, fmt.Sprintf("and %d more drop events from other partitions", d.MoreSources))
	}
	return strings.Join(parts, "; ")
}

func plural(n int64) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func satAdd(a, b int64) int64 {
	if b > 0 && a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

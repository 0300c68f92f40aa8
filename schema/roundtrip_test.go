package schema_test

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/spanpipe/spanpipe/schema"
)

// TestRoundTrip checks, on deterministic pseudo-random events of every type, that
// Decode(Encode(ev)) is ev after Decode's documented normalisation (schema version,
// derived span version, context ids promoted from metadata), and that encoding the
// decoded event again gives the same bytes as encoding the expected one.
func TestRoundTrip(t *testing.T) {
	n := 2000
	if testing.Short() {
		n = 200
	}
	g := &gen{r: rand.New(rand.NewPCG(2025, 3))}
	var reformatted int
	for i := range n {
		in, want := g.event(i)
		t.Run(fmt.Sprintf("%04d-%s", i, in.Type), func(t *testing.T) {
			if err := in.Validate(); err != nil {
				t.Fatalf("generator produced an invalid event: %v", err)
			}
			b, err := schema.Encode(nil, in)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			got, err := schema.Decode(schema.CodecJSON, b)
			if err != nil {
				t.Fatalf("Decode(Encode(ev)): %v\n%.2000s", err, b)
			}
			if !eventsEqual(got, want) {
				t.Fatalf("Decode(Encode(ev)) differs from ev:\n%s\nencoded: %.2000s", diffEvents(got, want), b)
			}
			if rawBytesChanged(in, got) {
				reformatted++
			}
			b2, err := schema.Encode(nil, got)
			if err != nil {
				t.Fatalf("Encode(Decode(Encode(ev))): %v", err)
			}
			bw, err := schema.Encode(nil, want)
			if err != nil {
				t.Fatalf("Encode(want): %v", err)
			}
			if !bytes.Equal(b2, bw) {
				t.Fatalf("re-encoding differs:\ngot  %.2000s\nwant %.2000s", b2, bw)
			}
		})
	}
	t.Logf("%d of %d events had a raw payload whose bytes Encode reformatted", reformatted, n)
}

// rawBytesChanged reports whether a raw payload of a span differs byte-wise
// between in and out (they are semantically equal by then).
func rawBytesChanged(in, out *schema.Event) bool {
	if in.Span == nil {
		return false
	}
	a, b := in.Span, out.Span
	for _, p := range [][2]jsontext.Value{{a.Attributes, b.Attributes}, {a.Metadata, b.Metadata}, {a.Input, b.Input}, {a.Output, b.Output}} {
		if !bytes.Equal(p[0], p[1]) {
			return true
		}
	}
	return false
}

// gen builds valid events from a seeded source, so failures reproduce.
type gen struct{ r *rand.Rand }

// runes mixes ASCII, characters JSON must escape, characters it may escape, and
// multi-byte UTF-8 (2, 3 and 4 bytes, combining marks, BOM, line separators).
var runes = []rune("abcXYZ019 _-:./'\"\\<>&\t\n\r\x00\x01\x1f\x7féüß€世界用户😀🚀\u0301\u2028\u2029\ufeff\ufffd\U0010FFFF")

func (g *gen) str(maxLen int) string {
	n := g.r.IntN(maxLen + 1)
	var sb strings.Builder
	for range n {
		sb.WriteRune(runes[g.r.IntN(len(runes))])
	}
	return sb.String()
}

// nonEmpty returns a non-empty string of at most maxLen runes.
func (g *gen) nonEmpty(maxLen int) string {
	for {
		if s := g.str(maxLen); s != "" {
			return s
		}
	}
}

// maybe returns a string half of the time and "" otherwise.
func (g *gen) maybe(maxLen int) string {
	if g.r.IntN(2) == 0 {
		return ""
	}
	return g.nonEmpty(maxLen)
}

func (g *gen) hex(max int) string {
	n := max
	if g.r.IntN(4) == 0 {
		n = 1 + g.r.IntN(max)
	}
	const digits = "0123456789abcdefABCDEF"
	b := make([]byte, n)
	for i := range b {
		b[i] = digits[g.r.IntN(len(digits))]
	}
	return string(b)
}

var zones = []*time.Location{
	time.UTC, time.FixedZone("", 0), time.FixedZone("IST", 5*3600+1800), time.FixedZone("PST", -8*3600),
	time.FixedZone("", 23*3600+59*60), time.FixedZone("", -(23*3600 + 59*60)),
}

func (g *gen) time() time.Time {
	sec := g.r.Int64N(int64(4102444800)) // 1970 .. 2100
	var nsec int64
	switch g.r.IntN(4) {
	case 1:
		nsec = g.r.Int64N(1000) * int64(time.Millisecond) // what JavaScript's Date gives
	case 2:
		nsec = g.r.Int64N(int64(time.Second))
	case 3:
		nsec = 1
	}
	return time.Unix(sec, nsec).In(zones[g.r.IntN(len(zones))])
}

// value is a random JSON value as Go data, nested at most depth levels.
func (g *gen) value(depth int) any {
	k := g.r.IntN(9)
	if depth <= 0 {
		k %= 6
	}
	switch k {
	case 0:
		return nil
	case 1:
		return g.r.IntN(2) == 0
	case 2:
		return g.str(20)
	case 3:
		return g.r.Int64() - math.MaxInt64/2
	case 4:
		return g.float()
	case 5:
		return g.r.IntN(1000)
	case 6, 7:
		m := make(map[string]any)
		for range g.r.IntN(6) {
			m[g.str(10)] = g.value(depth - 1)
		}
		return m
	default:
		a := make([]any, g.r.IntN(6))
		for i := range a {
			a[i] = g.value(depth - 1)
		}
		return a
	}
}

func (g *gen) float() float64 {
	switch g.r.IntN(8) {
	case 0:
		return math.Copysign(0, -1)
	case 1:
		return math.MaxFloat64
	case 2:
		return math.SmallestNonzeroFloat64
	case 3:
		return -g.r.Float64() * 1e-300
	default:
		return (g.r.Float64() - 0.5) * math.Pow(10, float64(g.r.IntN(40)-20))
	}
}

// rawObject encodes v, sometimes indented so that Encode has whitespace to drop.
func (g *gen) raw(v any) jsontext.Value {
	opts := []json.Options{json.Deterministic(true)}
	if g.r.IntN(3) == 0 {
		opts = append(opts, jsontext.Multiline(true), jsontext.SpaceAfterColon(true))
	}
	b, err := json.Marshal(v, opts...)
	if err != nil {
		panic(err)
	}
	return b
}

// payload is an optional raw payload: absent, an empty or null value, a random
// nested object, or (rarely) a large one.
func (g *gen) payload(i int) jsontext.Value {
	switch g.r.IntN(10) {
	case 0, 1:
		return nil
	case 2:
		return jsontext.Value([]string{`{}`, `[]`, `""`, `null`, `0`, `false`}[g.r.IntN(6)])
	case 3:
		return g.raw(g.value(8)) // deep
	}
	if i%97 == 0 {
		// A large payload: a long prompt, many messages.
		msgs := make([]any, 200)
		for j := range msgs {
			msgs[j] = map[string]any{"role": "user", "content": strings.Repeat(g.nonEmpty(40), 30)}
		}
		return g.raw(map[string]any{"messages": msgs, "blob": strings.Repeat("x", 256<<10)})
	}
	return g.raw(g.value(3))
}

func (g *gen) object(depth int) map[string]any {
	m := make(map[string]any)
	for range g.r.IntN(5) {
		m[g.str(12)] = g.value(depth)
	}
	return m
}

func (g *gen) correlation() schema.Correlation {
	var c schema.Correlation
	for _, p := range []*string{
		&c.EntityType, &c.EntityID, &c.EntityName, &c.EntityVersionID,
		&c.ParentEntityType, &c.ParentEntityID, &c.ParentEntityName, &c.ParentEntityVersionID,
		&c.RootEntityType, &c.RootEntityID, &c.RootEntityName, &c.RootEntityVersionID,
		&c.UserID, &c.OrganizationID, &c.ResourceID, &c.RunID, &c.SessionID, &c.ThreadID,
		&c.RequestID, &c.Environment, &c.Source, &c.ServiceName, &c.ExperimentID,
	} {
		if g.r.IntN(3) == 0 {
			*p = g.nonEmpty(30)
		}
	}
	switch g.r.IntN(3) {
	case 0:
		c.Tags = []string{}
	case 1:
		for range 1 + g.r.IntN(4) {
			c.Tags = append(c.Tags, g.str(10))
		}
	}
	return c
}

func (g *gen) optCorrelation() *schema.Correlation {
	switch g.r.IntN(3) {
	case 0:
		return nil
	case 1:
		return &schema.Correlation{} // "correlationContext":{}
	}
	c := g.correlation()
	return &c
}

// event returns a valid event and the event Decode(Encode(in)) must give.
func (g *gen) event(i int) (in, want *schema.Event) {
	in = &schema.Event{}
	if g.r.IntN(2) == 0 {
		in.SchemaVersion = schema.Version
	}
	switch i % 7 {
	case 0, 1, 2:
		in.Type = []schema.EventType{schema.SpanStarted, schema.SpanUpdated, schema.SpanEnded}[g.r.IntN(3)]
		in.Span = g.span(i, in.Type)
	case 3:
		in.Type = schema.LogEvent
		in.Log = &schema.Log{
			LogID: g.nonEmpty(36), Timestamp: g.time(), Level: g.nonEmpty(5), Message: g.str(200),
			Data: g.payload(i), Correlation: g.optCorrelation(), Metadata: g.payload(i),
		}
		in.Log.TraceID, in.Log.SpanID = g.optIDs()
		if g.r.IntN(3) == 0 {
			in.Log.Tags = []string{g.str(8)} // deprecated name
		}
	case 4:
		in.Type = schema.MetricEvent
		in.Metric = &schema.Metric{
			MetricID: g.nonEmpty(36), Timestamp: g.time(), Name: g.nonEmpty(40), Value: g.float(),
			Correlation: g.optCorrelation(), Metadata: g.payload(i),
		}
		in.Metric.TraceID, in.Metric.SpanID = g.optIDs()
		switch g.r.IntN(3) {
		case 0:
			in.Metric.Labels = map[string]string{}
		case 1:
			in.Metric.Labels = map[string]string{g.str(10): g.str(10), "model": g.str(10)}
		}
		if g.r.IntN(2) == 0 {
			in.Metric.CostContext = &schema.CostContext{Provider: g.maybe(10), Model: g.maybe(10), CostUnit: g.maybe(3), CostMetadata: g.payload(i)}
			if g.r.IntN(2) == 0 {
				in.Metric.CostContext.EstimatedCost = ptr(g.float())
			}
		}
	case 5:
		in.Type = schema.ScoreEvent
		in.Score = &schema.Score{
			ScoreID: g.nonEmpty(36), Timestamp: g.time(), ScorerID: g.nonEmpty(20), ScorerName: g.maybe(20),
			ScorerVersion: g.maybe(5), ScoreSource: g.maybe(10), Score: g.float(), Reason: g.maybe(300),
			TargetEntityType: g.maybe(10), Correlation: g.optCorrelation(), Metadata: g.payload(i),
		}
		in.Score.TraceID, in.Score.SpanID = g.optIDs()
		in.Score.Source, in.Score.ExperimentID = g.maybe(10), g.maybe(10) // deprecated names
		if g.r.IntN(2) == 0 {
			in.Score.ScoreTraceID = g.hex(32)
		}
	case 6:
		in.Type = schema.FeedbackEvent
		in.Feedback = &schema.Feedback{
			FeedbackID: g.nonEmpty(36), Timestamp: g.time(), FeedbackSource: g.maybe(10),
			FeedbackType: g.nonEmpty(10), Comment: g.maybe(200), SourceID: g.maybe(10),
			FeedbackUserID: g.maybe(10), Correlation: g.optCorrelation(), Metadata: g.payload(i),
		}
		if g.r.IntN(2) == 0 {
			in.Feedback.Value = g.raw(g.float())
		} else {
			in.Feedback.Value = g.raw(g.str(50))
		}
		in.Feedback.TraceID, in.Feedback.SpanID = g.optIDs()
		in.Feedback.Source, in.Feedback.UserID, in.Feedback.ExperimentID = g.maybe(10), g.maybe(10), g.maybe(10)
	}
	return in, g.expect(in)
}

func (g *gen) optIDs() (traceID, spanID string) {
	if g.r.IntN(2) == 0 {
		traceID = g.hex(32)
	}
	if g.r.IntN(2) == 0 {
		spanID = g.hex(16)
	}
	return traceID, spanID
}

func (g *gen) span(i int, typ schema.EventType) *schema.Span {
	s := &schema.Span{
		TraceID:     g.hex(32),
		SpanID:      g.hex(16),
		Name:        g.nonEmpty(60),
		Correlation: g.correlation(),
		StartTime:   g.time(),
		Attributes:  g.payload(i),
		Input:       g.payload(i),
		Output:      g.payload(i),
		IsRootSpan:  g.r.IntN(2) == 0,
		IsInternal:  g.r.IntN(4) == 0,
	}
	if g.r.IntN(4) == 0 {
		s.Type = schema.SpanType("custom_" + g.nonEmpty(10))
	} else {
		s.Type = schema.KnownSpanTypes[g.r.IntN(len(schema.KnownSpanTypes))]
	}
	if g.r.IntN(3) > 0 {
		s.ParentSpanID = g.hex(16)
	}
	if g.r.IntN(4) == 0 {
		s.ExternalParentSpanID = g.nonEmpty(20)
	}
	if g.r.IntN(3) == 0 {
		s.RequestContext = g.raw(g.object(2))
	}
	switch g.r.IntN(3) {
	case 0:
		s.Version = 0 // derived by Decode
	case 1:
		s.Version = g.r.Uint64()
	default:
		s.Version = 1 + g.r.Uint64N(100)
	}
	if typ == schema.SpanEnded {
		if g.r.IntN(4) == 0 {
			s.IsEvent = true
		} else {
			s.EndTime = s.StartTime.Add(time.Duration(g.r.Int64N(int64(time.Hour)))).In(zones[g.r.IntN(len(zones))])
		}
		if g.r.IntN(3) == 0 {
			s.ErrorInfo = &schema.ErrorInfo{
				Message: g.str(100), ID: g.maybe(10), Name: g.maybe(10), Stack: g.maybe(500),
				Domain: g.maybe(5), Category: g.maybe(5), Details: g.payload(i),
			}
		}
	}
	// Metadata, sometimes carrying context ids that Decode promotes.
	switch g.r.IntN(4) {
	case 0:
		s.Metadata = g.payload(i)
	default:
		m := g.object(2)
		for _, f := range promotedFields {
			switch g.r.IntN(6) {
			case 0:
				m[f.key] = g.nonEmpty(20)
			case 1:
				m[f.key] = g.value(1) // not a string (or an empty one, or a string): only strings count
			}
		}
		s.Metadata = g.raw(m)
	}
	return s
}

// expect applies Decode's normalisation to a copy of in.
func (g *gen) expect(in *schema.Event) *schema.Event {
	want := *in
	want.SchemaVersion = schema.Version
	lower := strings.ToLower
	switch {
	case in.Log != nil:
		l := *in.Log
		l.TraceID, l.SpanID = lower(l.TraceID), lower(l.SpanID)
		if len(l.Tags) > 0 && (l.Correlation == nil || len(l.Correlation.Tags) == 0) {
			c := schema.Correlation{}
			if l.Correlation != nil {
				c = *l.Correlation
			}
			c.Tags = l.Tags
			l.Correlation = &c
		}
		want.Log = &l
	case in.Metric != nil:
		m := *in.Metric
		m.TraceID, m.SpanID = lower(m.TraceID), lower(m.SpanID)
		want.Metric = &m
	case in.Score != nil:
		sc := *in.Score
		sc.TraceID, sc.SpanID, sc.ScoreTraceID = lower(sc.TraceID), lower(sc.SpanID), lower(sc.ScoreTraceID)
		if sc.ScoreSource == "" {
			sc.ScoreSource = sc.Source
		}
		sc.Correlation = withExperiment(sc.Correlation, sc.ExperimentID)
		want.Score = &sc
	case in.Feedback != nil:
		f := *in.Feedback
		f.TraceID, f.SpanID = lower(f.TraceID), lower(f.SpanID)
		if f.FeedbackSource == "" {
			f.FeedbackSource = f.Source
		}
		if f.FeedbackUserID == "" {
			f.FeedbackUserID = f.UserID
		}
		f.Correlation = withExperiment(f.Correlation, f.ExperimentID)
		want.Feedback = &f
	}
	if in.Span == nil {
		return &want
	}
	s := *in.Span
	want.Span = &s
	s.TraceID, s.SpanID, s.ParentSpanID = lower(s.TraceID), lower(s.SpanID), lower(s.ParentSpanID)
	s.Event = in.Type
	if s.Version == 0 {
		s.Version = map[schema.EventType]uint64{schema.SpanStarted: 1, schema.SpanUpdated: 2, schema.SpanEnded: 3}[in.Type]
	}
	var meta map[string]jsontext.Value
	if json.Unmarshal(s.Metadata, &meta) != nil {
		return &want
	}
	for _, f := range promotedFields {
		dst := promotedField(&s.Correlation, f.key)
		var v string
		if *dst == "" && meta[f.key].Kind() == '"' && json.Unmarshal(meta[f.key], &v) == nil {
			*dst = v
		}
	}
	return &want
}

// withExperiment is what Decode makes of a deprecated top-level experimentId.
func withExperiment(c *schema.Correlation, id string) *schema.Correlation {
	if id == "" || (c != nil && c.ExperimentID != "") {
		return c
	}
	n := schema.Correlation{}
	if c != nil {
		n = *c
	}
	n.ExperimentID = id
	return &n
}

func promotedField(c *schema.Correlation, key string) *string {
	switch key {
	case "userId":
		return &c.UserID
	case "organizationId":
		return &c.OrganizationID
	case "resourceId":
		return &c.ResourceID
	case "runId":
		return &c.RunID
	case "sessionId":
		return &c.SessionID
	case "threadId":
		return &c.ThreadID
	case "requestId":
		return &c.RequestID
	case "environment":
		return &c.Environment
	case "source":
		return &c.Source
	case "serviceName":
		return &c.ServiceName
	case "experimentId":
		return &c.ExperimentID
	case "entityVersionId":
		return &c.EntityVersionID
	}
	panic("unknown promoted key " + key)
}

// TestRoundTripPreservesEmptyValues pins the cases where omitempty used to lose
// data: a present but empty object, array, string or null payload, an empty
// correlationContext or costContext, empty tags and labels.
func TestRoundTripPreservesEmptyValues(t *testing.T) {
	tests := []struct {
		name string
		in   string
	}{
		{"empty objects", `{"type":"span_started","exportedSpan":{"traceId":"` + tid + `","id":"` + sid +
			`","name":"n","type":"generic","startTime":"2025-03-01T12:00:00Z","attributes":{},"metadata":{},"input":[],"output":"",` +
			`"requestContext":null,"errorInfo":{"message":"","details":{}},"tags":[]}}`},
		{"empty correlation and cost", `{"type":"metric","metric":{"metricId":"m","timestamp":"2025-03-01T12:00:00Z","name":"x","value":0,` +
			`"labels":{},"correlationContext":{},"costContext":{"estimatedCost":0,"costMetadata":[]},"metadata":null}}`},
		{"empty log data", `{"type":"log","log":{"logId":"l","timestamp":"2025-03-01T12:00:00Z","level":"info","message":"",` +
			`"data":"","correlationContext":{"tags":[]},"metadata":{}}}`},
		{"empty feedback string", `{"type":"feedback","feedback":{"feedbackId":"f","timestamp":"2025-03-01T12:00:00Z","feedbackType":"t","value":"",` +
			`"correlationContext":{}}}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := schema.Decode("", []byte(tc.in))
			if err != nil {
				t.Fatalf("Decode(%s): %v", tc.in, err)
			}
			b, err := schema.Encode(nil, ev)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			got, err := schema.Decode("", b)
			if err != nil {
				t.Fatalf("Decode(%s): %v", b, err)
			}
			if !eventsEqual(got, ev) {
				t.Errorf("round trip of %s via %s:\n%s", tc.in, b, diffEvents(got, ev))
			}
		})
	}
}

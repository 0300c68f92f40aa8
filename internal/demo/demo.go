// Package demo generates realistic AI-agent traces through the producer, for
// `spanpipe dev --demo`, `spanpipe produce` and tests.
package demo

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/spanpipe/spanpipe/producer"
	"github.com/spanpipe/spanpipe/schema"
)

// Options shape the generated traces.
type Options struct {
	// MinPayload and MaxPayload bound the size of inputs and outputs, in bytes.
	// Defaults 200 and 20000.
	MinPayload, MaxPayload int
	// ErrorRate is the share of tool calls that fail. Default 0.1.
	ErrorRate float64
	// Seed makes the output reproducible (ids stay random).
	Seed uint64
	// Long is the share of traces that are long research loops (50 to 200 spans,
	// nested steps). Default 0.
	Long float64
	// Running is the share of traces left running: the root and its last model call
	// never end (stored only by strategies that store running spans). Default 0.
	Running float64
}

// Generator emits traces. It is not safe for concurrent use.
type Generator struct {
	p    *producer.Producer
	o    Options
	rnd  *rand.Rand
	last string
}

// LastTraceID is the id of the trace the last call to Trace emitted.
func (g *Generator) LastTraceID() string { return g.last }

// New returns a generator writing through p.
func New(p *producer.Producer, o Options) *Generator {
	if o.MinPayload <= 0 {
		o.MinPayload = 200
	}
	if o.MaxPayload < o.MinPayload {
		o.MaxPayload = max(20000, o.MinPayload)
	}
	if o.ErrorRate == 0 {
		o.ErrorRate = 0.1
	}
	return &Generator{p: p, o: o, rnd: rand.New(rand.NewPCG(o.Seed, o.Seed^0x9e3779b97f4a7c15))}
}

var (
	agents = []string{"support-agent", "research-agent", "billing-agent", "triage-agent"}
	tools  = []string{"search_docs", "get_invoice", "create_ticket", "weather", "sql_query", "fetch_url"}
	models = []string{"gpt-4o-mini", "claude-sonnet-4", "gemini-2.5-flash"}
	words  = strings.Fields("the agent looked up the customer order and found that the invoice was paid twice so it issued a refund and wrote a summary for the support team with the ticket number and next steps")
)

// step is one planned child span of a trace: its offset from the trace's start and
// its duration. Traces are planned first so that they can be backdated to end now,
// with realistic durations: model calls take hundreds of milliseconds to seconds,
// tools tens of milliseconds.
type step struct {
	kind       schema.SpanType
	name       string
	at, dur    time.Duration
	fail, open bool
	parent     int // index of the parent step, -1 for the root
}

// Trace emits one agent trace: agent_run → model_generation (with token usage) →
// 1-3 tool calls (some failing) → a final model_generation, plus an event span; or,
// with [Options.Long], a loop of workflow steps each with a model call and tools. It
// returns the number of distinct spans emitted.
func (g *Generator) Trace() int {
	userID := fmt.Sprintf("user-%d", g.rnd.IntN(1000))
	thread := fmt.Sprintf("thread-%d", g.rnd.IntN(5000))
	agent := agents[g.rnd.IntN(len(agents))]
	running := g.rnd.Float64() < g.o.Running
	var plan []step
	at := 5 * time.Millisecond
	add := func(kind schema.SpanType, name string, parent int, dur time.Duration, fail bool) int {
		plan = append(plan, step{kind: kind, name: name, at: at, dur: dur, fail: fail, parent: parent})
		at += dur + time.Duration(1+g.rnd.IntN(20))*time.Millisecond // the gap between steps
		return len(plan) - 1
	}
	llm := func() time.Duration { return time.Duration(300+g.rnd.IntN(2700)) * time.Millisecond }
	toolDur := func() time.Duration { return time.Duration(10+g.rnd.IntN(90)) * time.Millisecond }
	toolName := func() string { return tools[g.rnd.IntN(len(tools))] }
	if g.rnd.Float64() < g.o.Long {
		for i, n := 0, 12+g.rnd.IntN(38); i < n; i++ {
			stepStart := at
			st := add(schema.WorkflowStep, "research step", -1, 0, false)
			at = stepStart + time.Millisecond
			add(schema.ModelGeneration, "llm plan", st, llm(), false)
			for j, m := 0, 1+g.rnd.IntN(3); j < m; j++ {
				add(schema.ToolCall, "tool "+toolName(), st, toolDur(), g.rnd.Float64() < g.o.ErrorRate/3)
			}
			plan[st].dur = at - stepStart
		}
	} else {
		add(schema.ModelGeneration, "llm plan", -1, llm(), false)
		for i, n := 0, 1+g.rnd.IntN(3); i < n; i++ {
			add(schema.ToolCall, "tool "+toolName(), -1, toolDur(), g.rnd.Float64() < g.o.ErrorRate)
		}
	}
	add(schema.ModelGeneration, "llm answer", -1, llm(), false)
	plan[len(plan)-1].open = running
	total := at
	start := time.Now().Add(-total)

	root := g.p.StartSpan(producer.SpanOptions{
		Name: "agent " + agent, Type: schema.AgentRun, StartTime: start,
		EntityType: "agent", EntityID: agent, EntityName: agent,
		Correlation: schema.Correlation{UserID: userID, ThreadID: thread, SessionID: "s-" + thread, Tags: []string{"demo"}},
		Attributes:  map[string]any{"conversationId": thread, "maxSteps": 5, "instructions": g.text(80, 400)},
		Metadata:    map[string]any{"userId": userID, "threadId": thread, "apiKey": "sk-demo-should-be-redacted"},
		Input:       []map[string]string{{"role": "user", "content": g.text(g.o.MinPayload, g.o.MaxPayload/4)}},
	})
	g.last = root.TraceID()
	live := make([]*producer.Span, len(plan))
	for i, st := range plan {
		parent := root
		if st.parent >= 0 {
			parent = live[st.parent]
		}
		from, to := start.Add(st.at), start.Add(st.at+st.dur)
		switch st.kind {
		case schema.ModelGeneration:
			live[i] = g.generation(parent, st.name, from, to, st.open)
		case schema.ToolCall:
			live[i] = g.tool(parent, st.name, from, to, st.fail)
		default:
			live[i] = parent.StartChild(producer.SpanOptions{Name: st.name, Type: st.kind, StartTime: from,
				Input: map[string]int{"step": i}})
		}
	}
	// Workflow steps end after their children.
	for i, st := range plan {
		if st.kind == schema.WorkflowStep {
			live[i].End(producer.EndOptions{EndTime: start.Add(st.at + st.dur), Output: map[string]string{"status": "done"}})
		}
	}
	root.Event(producer.SpanOptions{Name: "agent signal", Type: schema.AgentSignal, StartTime: start.Add(total / 2)}, map[string]any{"mode": "snapshot"})
	if !running {
		root.End(producer.EndOptions{Output: map[string]string{"text": g.text(g.o.MinPayload, g.o.MaxPayload/2)}, EndTime: start.Add(total)})
	}
	return len(plan) + 2
}

func (g *Generator) generation(parent *producer.Span, step string, from, to time.Time, open bool) *producer.Span {
	model := models[g.rnd.IntN(len(models))]
	in, out := 200+g.rnd.IntN(4000), 20+g.rnd.IntN(800)
	sp := parent.StartChild(producer.SpanOptions{
		Name: step, Type: schema.ModelGeneration, EntityType: "agent", StartTime: from,
		Attributes: map[string]any{"model": model, "provider": "openai", "streaming": true},
		Input:      []map[string]string{{"role": "system", "content": g.text(100, 600)}, {"role": "user", "content": g.text(g.o.MinPayload, g.o.MaxPayload)}},
	})
	sp.Update(func(s *schema.Span) {
		s.Attributes = producer.JSON(map[string]any{"model": model, "provider": "openai", "streaming": true, "completionStartTime": from.Add(to.Sub(from) / 3).UTC()})
	})
	if open {
		return sp
	}
	sp.End(producer.EndOptions{
		Output: map[string]string{"text": g.text(g.o.MinPayload, g.o.MaxPayload)}, EndTime: to,
		Attributes: map[string]any{"model": model, "provider": "openai", "finishReason": "stop",
			"usage": map[string]any{"inputTokens": in, "outputTokens": out, "inputDetails": map[string]int{"cacheRead": in / 4}}},
	})
	return sp
}

func (g *Generator) tool(parent *producer.Span, step string, from, to time.Time, fail bool) *producer.Span {
	name := strings.TrimPrefix(step, "tool ")
	sp := parent.StartChild(producer.SpanOptions{
		Name: step, Type: schema.ToolCall, EntityType: "tool", EntityID: name, EntityName: name, StartTime: from,
		Attributes: map[string]any{"toolType": "function", "toolCallId": producer.NewSpanID()},
		Input:      map[string]string{"query": g.text(20, 200)},
	})
	if fail {
		sp.End(producer.EndOptions{Err: errors.New(name + ": upstream returned 503"), Attributes: map[string]any{"success": false}, EndTime: to})
		return sp
	}
	sp.End(producer.EndOptions{Output: map[string]string{"result": g.text(g.o.MinPayload, g.o.MaxPayload/2)}, Attributes: map[string]any{"success": true}, EndTime: to})
	return sp
}

func (g *Generator) text(minLen, maxLen int) string {
	n := minLen
	if maxLen > minLen {
		n += g.rnd.IntN(maxLen - minLen)
	}
	var b strings.Builder
	b.Grow(n + 16)
	for b.Len() < n {
		b.WriteString(words[g.rnd.IntN(len(words))])
		b.WriteByte(' ')
	}
	return b.String()[:n]
}

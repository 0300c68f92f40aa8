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
}

// Generator emits traces. It is not safe for concurrent use.
type Generator struct {
	p   *producer.Producer
	o   Options
	rnd *rand.Rand
}

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

// Trace emits one agent trace: agent_run → model_generation (with token usage) →
// 1-3 tool calls (some failing) → a final model_generation, plus an event span. It
// returns the number of distinct spans emitted.
func (g *Generator) Trace() int {
	userID := fmt.Sprintf("user-%d", g.rnd.IntN(1000))
	thread := fmt.Sprintf("thread-%d", g.rnd.IntN(5000))
	agent := agents[g.rnd.IntN(len(agents))]
	root := g.p.StartSpan(producer.SpanOptions{
		Name: "agent " + agent, Type: schema.AgentRun,
		EntityType: "agent", EntityID: agent, EntityName: agent,
		Correlation: schema.Correlation{UserID: userID, ThreadID: thread, SessionID: "s-" + thread, Tags: []string{"demo"}},
		Attributes:  map[string]any{"conversationId": thread, "maxSteps": 5, "instructions": g.text(80, 400)},
		Metadata:    map[string]any{"userId": userID, "threadId": thread, "apiKey": "sk-demo-should-be-redacted"},
		Input:       []map[string]string{{"role": "user", "content": g.text(g.o.MinPayload, g.o.MaxPayload/4)}},
	})
	spans := 1
	spans += g.generation(root, "plan")
	for i, n := 0, 1+g.rnd.IntN(3); i < n; i++ {
		spans += g.tool(root)
	}
	spans += g.generation(root, "answer")
	root.Event(producer.SpanOptions{Name: "agent signal", Type: schema.AgentSignal}, map[string]any{"mode": "snapshot"})
	spans++
	root.End(producer.EndOptions{Output: map[string]string{"text": g.text(g.o.MinPayload, g.o.MaxPayload/2)}})
	return spans
}

func (g *Generator) generation(parent *producer.Span, step string) int {
	model := models[g.rnd.IntN(len(models))]
	in, out := 200+g.rnd.IntN(4000), 20+g.rnd.IntN(800)
	sp := parent.StartChild(producer.SpanOptions{
		Name: "llm " + step, Type: schema.ModelGeneration, EntityType: "agent",
		Attributes: map[string]any{"model": model, "provider": "openai", "streaming": true},
		Input:      []map[string]string{{"role": "system", "content": g.text(100, 600)}, {"role": "user", "content": g.text(g.o.MinPayload, g.o.MaxPayload)}},
	})
	sp.Update(func(s *schema.Span) {
		s.Attributes = producer.JSON(map[string]any{"model": model, "provider": "openai", "streaming": true, "completionStartTime": time.Now().UTC()})
	})
	sp.End(producer.EndOptions{
		Output: map[string]string{"text": g.text(g.o.MinPayload, g.o.MaxPayload)},
		Attributes: map[string]any{"model": model, "provider": "openai", "finishReason": "stop",
			"usage": map[string]any{"inputTokens": in, "outputTokens": out, "inputDetails": map[string]int{"cacheRead": in / 4}}},
	})
	return 1
}

func (g *Generator) tool(parent *producer.Span) int {
	name := tools[g.rnd.IntN(len(tools))]
	sp := parent.StartChild(producer.SpanOptions{
		Name: "tool " + name, Type: schema.ToolCall, EntityType: "tool", EntityID: name, EntityName: name,
		Attributes: map[string]any{"toolType": "function", "toolCallId": producer.NewSpanID()},
		Input:      map[string]string{"query": g.text(20, 200)},
	})
	if g.rnd.Float64() < g.o.ErrorRate {
		sp.End(producer.EndOptions{Err: errors.New(name + ": upstream returned 503"), Attributes: map[string]any{"success": false}})
		return 1
	}
	sp.End(producer.EndOptions{Output: map[string]string{"result": g.text(g.o.MinPayload, g.o.MaxPayload/2)}, Attributes: map[string]any{"success": true}})
	return 1
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

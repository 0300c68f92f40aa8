package schema

// SpanType is the kind of work a span records. The 34 Mastra values are constants;
// any other value is kept as it is, since a newer producer may know types this build
// does not.
type SpanType string

// Known span types (Mastra's SpanType enum).
const (
	AgentRun                SpanType = "agent_run"
	ScorerRun               SpanType = "scorer_run"
	ScorerStep              SpanType = "scorer_step"
	ClassifierEvaluation    SpanType = "classifier_evaluation"
	Generic                 SpanType = "generic"
	ModelGeneration         SpanType = "model_generation"
	ModelStep               SpanType = "model_step"
	ModelInference          SpanType = "model_inference"
	ModelChunk              SpanType = "model_chunk"
	ToolCall                SpanType = "tool_call"
	ClientToolCall          SpanType = "client_tool_call"
	ProviderToolCall        SpanType = "provider_tool_call"
	MCPToolCall             SpanType = "mcp_tool_call"
	MCPServerRequest        SpanType = "mcp_server_request"
	ProcessorRun            SpanType = "processor_run"
	WorkflowRun             SpanType = "workflow_run"
	WorkflowStep            SpanType = "workflow_step"
	WorkflowConditional     SpanType = "workflow_conditional"
	WorkflowConditionalEval SpanType = "workflow_conditional_eval"
	WorkflowParallel        SpanType = "workflow_parallel"
	WorkflowLoop            SpanType = "workflow_loop"
	WorkflowSleep           SpanType = "workflow_sleep"
	WorkflowWaitEvent       SpanType = "workflow_wait_event"
	MemoryOperation         SpanType = "memory_operation"
	WorkspaceAction         SpanType = "workspace_action"
	RAGIngestion            SpanType = "rag_ingestion"
	RAGEmbedding            SpanType = "rag_embedding"
	RAGVectorOperation      SpanType = "rag_vector_operation"
	RAGAction               SpanType = "rag_action"
	GraphAction             SpanType = "graph_action"
	Mapping                 SpanType = "mapping"
	SkillAction             SpanType = "skill_action"
	AgentSignal             SpanType = "agent_signal"
	// SkillResolution is deprecated in Mastra and no longer emitted, but old data has it.
	SkillResolution SpanType = "skill_resolution"
)

// KnownSpanTypes lists the 34 known values.
var KnownSpanTypes = []SpanType{
	AgentRun, ScorerRun, ScorerStep, ClassifierEvaluation, Generic,
	ModelGeneration, ModelStep, ModelInference, ModelChunk,
	ToolCall, ClientToolCall, ProviderToolCall, MCPToolCall, MCPServerRequest,
	ProcessorRun,
	WorkflowRun, WorkflowStep, WorkflowConditional, WorkflowConditionalEval, WorkflowParallel,
	WorkflowLoop, WorkflowSleep, WorkflowWaitEvent,
	MemoryOperation, WorkspaceAction,
	RAGIngestion, RAGEmbedding, RAGVectorOperation, RAGAction, GraphAction,
	Mapping, SkillAction, AgentSignal, SkillResolution,
}

// knownSpanTypes maps each known value to itself, so that a decoder can look one up
// by its bytes and keep the constant instead of allocating a copy.
var knownSpanTypes = func() map[string]SpanType {
	m := make(map[string]SpanType, len(KnownSpanTypes))
	for _, t := range KnownSpanTypes {
		m[string(t)] = t
	}
	return m
}()

// Known reports whether t is one of the 34 Mastra span types.
func (t SpanType) Known() bool {
	_, ok := knownSpanTypes[string(t)]
	return ok
}

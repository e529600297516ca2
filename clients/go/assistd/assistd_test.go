package assistd_test

// These tests drive a live assistd: `ASSISTD_GRPC_TARGET=127.0.0.1:50051 ASSISTD_MODEL=... go test ./...`
// (tests/e2e/test_clients.py starts one with a scripted model and runs them). The prompts carry
// the scripted model's directives: [call:NAME:ARGS] makes it call a function, [chunks:N] answer
// with N words.

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/assistd/assistd/clients/go/assistd"
	assistdv1 "github.com/assistd/assistd/clients/go/assistd/v1"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

func setup(t *testing.T) (*assistd.Client, string, context.Context) {
	t.Helper()
	target, model := os.Getenv("ASSISTD_GRPC_TARGET"), os.Getenv("ASSISTD_MODEL")
	if target == "" || model == "" {
		t.Skip("needs a live assistd: set ASSISTD_GRPC_TARGET and ASSISTD_MODEL")
	}
	client, err := assistd.Dial(target, os.Getenv("ASSISTD_API_KEY"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return client, model, ctx
}

func newThread(t *testing.T, ctx context.Context, client *assistd.Client, text string) string {
	t.Helper()
	thread, err := client.Threads.CreateThread(ctx, &assistdv1.CreateThreadRequest{
		Messages: []*assistdv1.NewMessage{{
			Role:    assistdv1.MessageRole_MESSAGE_ROLE_USER,
			Content: []*assistdv1.MessageContent{{Kind: &assistdv1.MessageContent_Text{Text: &assistdv1.TextContent{Value: text}}}},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return thread.GetThread().GetId()
}

func TestFunctionCallRoundTrip(t *testing.T) {
	client, model, ctx := setup(t)
	parameters, err := structpb.NewStruct(map[string]any{
		"type":       "object",
		"properties": map[string]any{"city": map[string]any{"type": "string"}},
		"required":   []any{"city"},
	})
	if err != nil {
		t.Fatal(err)
	}
	created, err := client.Assistants.CreateAssistant(ctx, &assistdv1.CreateAssistantRequest{
		Model: model,
		Tools: []*assistdv1.Tool{{Kind: &assistdv1.Tool_Function{Function: &assistdv1.FunctionDefinition{
			Name: "get_weather", Parameters: parameters,
		}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	threadID := newThread(t, ctx, client, `[call:get_weather:{"city": "Oslo"}]`)

	stream, err := client.Runs.CreateRunStream(ctx, &assistdv1.CreateRunRequest{ThreadId: threadID, AssistantId: created.GetAssistant().GetId()})
	if err != nil {
		t.Fatal(err)
	}
	var first []*assistdv1.RunEvent
	run, err := client.Drain(ctx, stream, func(e *assistdv1.RunEvent) error { first = append(first, e); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if run.GetStatus() != assistdv1.RunStatus_RUN_STATUS_REQUIRES_ACTION {
		t.Fatalf("run is %v, want requires_action", run.GetStatus())
	}
	calls := run.GetRequiredAction().GetSubmitToolOutputs().GetToolCalls()
	if len(calls) != 1 || calls[0].GetFunction().GetName() != "get_weather" || calls[0].GetFunction().GetArguments() != `{"city": "Oslo"}` {
		t.Fatalf("unexpected calls %v", calls)
	}

	resumed, err := client.Runs.SubmitToolOutputsStream(ctx, &assistdv1.SubmitToolOutputsRequest{
		ThreadId: threadID, RunId: run.GetId(),
		ToolOutputs: []*assistdv1.ToolOutput{{ToolCallId: calls[0].GetId(), Output: "4C"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	var second []*assistdv1.RunEvent
	text := ""
	final, err := client.Drain(ctx, resumed, func(e *assistdv1.RunEvent) error {
		second = append(second, e)
		text += assistd.Text(e)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if final.GetStatus() != assistdv1.RunStatus_RUN_STATUS_COMPLETED || text != "Results: 4C" {
		t.Fatalf("run ended %v with %q", final.GetStatus(), text)
	}
	if got, want := second[0].GetSequenceNumber(), first[len(first)-1].GetSequenceNumber()+1; got != want {
		t.Fatalf("the resumed run's first event is %d, want %d (one log per run)", got, want)
	}
}

func TestWatchRunResumesAfterTheLastEventSeen(t *testing.T) {
	client, model, ctx := setup(t)
	created, err := client.Assistants.CreateAssistant(ctx, &assistdv1.CreateAssistantRequest{Model: model})
	if err != nil {
		t.Fatal(err)
	}
	threadID := newThread(t, ctx, client, "[chunks:30][slow:0.02]")
	streamCtx, hangUp := context.WithCancel(ctx)
	stream, err := client.Runs.CreateRunStream(streamCtx, &assistdv1.CreateRunRequest{ThreadId: threadID, AssistantId: created.GetAssistant().GetId()})
	if err != nil {
		t.Fatal(err)
	}
	var seen []*assistdv1.RunEvent
	for len(seen) < 8 {
		event, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		seen = append(seen, event)
	}
	hangUp() // the client goes away mid-run; the run goes on without it
	if _, err := stream.Recv(); status.Code(err) != codes.Canceled {
		t.Fatalf("after hanging up: %v", err)
	}

	runID := assistd.RunID(seen[0])
	last := seen[len(seen)-1].GetSequenceNumber()
	var rest []*assistdv1.RunEvent
	run, err := client.Follow(ctx, runID, last, func(e *assistdv1.RunEvent) error { rest = append(rest, e); return nil })
	if err != nil {
		t.Fatal(err)
	}
	all := append(seen, rest...)
	for i, e := range all {
		if e.GetSequenceNumber() != uint64(i+1) {
			t.Fatalf("event %d has sequence number %d: a gap or a repeat", i, e.GetSequenceNumber())
		}
	}
	text := ""
	for _, e := range all {
		text += assistd.Text(e)
	}
	want := ""
	for i := 0; i < 30; i++ {
		want += "w" + strconv.Itoa(i) + " "
	}
	if run.GetStatus() != assistdv1.RunStatus_RUN_STATUS_COMPLETED || text != want {
		t.Fatalf("run ended %v with %q", run.GetStatus(), text)
	}
	if all[len(all)-1].GetEvent() != assistdv1.RunEventType_RUN_EVENT_TYPE_DONE {
		t.Fatal("the watch did not end with done")
	}
	// Watching again from the start replays exactly the same log.
	var replay []*assistdv1.RunEvent
	if _, err := client.Follow(ctx, runID, 0, func(e *assistdv1.RunEvent) error { replay = append(replay, e); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(replay) != len(all) || !proto.Equal(replay[len(replay)-2], all[len(all)-2]) {
		t.Fatalf("the replay has %d events, the run %d", len(replay), len(all))
	}
}

func TestErrorsCarryErrorInfo(t *testing.T) {
	client, _, ctx := setup(t)
	_, err := client.Runs.GetRun(ctx, &assistdv1.GetRunRequest{ThreadId: "thread_x", RunId: "run_nope"})
	st := status.Convert(err)
	if st.Code() != codes.NotFound || st.Message() != "No run found with id 'run_nope'." {
		t.Fatalf("got %v", err)
	}
	var info *errdetails.ErrorInfo
	for _, detail := range st.Details() {
		if found, ok := detail.(*errdetails.ErrorInfo); ok {
			info = found
		}
	}
	if info == nil || info.GetReason() != "NOT_FOUND" || info.GetDomain() != "assistd.dev" {
		t.Fatalf("ErrorInfo %v", info)
	}
	_, err = client.Assistants.CreateAssistant(ctx, &assistdv1.CreateAssistantRequest{Model: "m", Temperature: proto.Float64(3)})
	for _, detail := range status.Convert(err).Details() {
		if found, ok := detail.(*errdetails.ErrorInfo); ok {
			info = found
		}
	}
	if status.Code(err) != codes.InvalidArgument || info.GetMetadata()["param"] != "temperature" {
		t.Fatalf("got %v with %v", err, info)
	}
}

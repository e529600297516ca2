// Package assistd dials assistd's gRPC API and reads run streams, resuming a stream that
// breaks from the last event it delivered.
//
// Every run-streaming RPC (CreateRunStream, CreateThreadAndRunStream, SubmitToolOutputsStream,
// WatchRun) streams *assistdv1.RunEvent. A run's events are numbered 1, 2, 3, ... with no gap;
// a run goes in segments, each ending with a `done` event (RUN_EVENT_TYPE_DONE): the Create*
// and SubmitToolOutputs streams end after their segment's `done`, WatchRun after the `done`
// that follows the run's end. Drain reads a segment, Follow a whole run.
package assistd

import (
	"context"
	"errors"
	"io"
	"time"

	assistdv1 "github.com/assistd/assistd/clients/go/assistd/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// Client holds one connection and a stub per service.
type Client struct {
	Conn         *grpc.ClientConn
	Assistants   assistdv1.AssistantServiceClient
	Threads      assistdv1.ThreadServiceClient
	Messages     assistdv1.MessageServiceClient
	Runs         assistdv1.RunServiceClient
	Files        assistdv1.FileServiceClient
	VectorStores assistdv1.VectorStoreServiceClient
	Models       assistdv1.ModelServiceClient
}

// Dial connects to target ("host:port"). The API key travels as `authorization: Bearer <key>`
// metadata on every call; an empty key sends none (a server without ASSISTD_API_KEYS takes any
// call). Without options the connection is plaintext: pass grpc.WithTransportCredentials for TLS.
func Dial(target, apiKey string, opts ...grpc.DialOption) (*Client, error) {
	options := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	if apiKey != "" {
		options = append(options, grpc.WithPerRPCCredentials(bearer(apiKey)))
	}
	conn, err := grpc.NewClient(target, append(options, opts...)...)
	if err != nil {
		return nil, err
	}
	return &Client{
		Conn:         conn,
		Assistants:   assistdv1.NewAssistantServiceClient(conn),
		Threads:      assistdv1.NewThreadServiceClient(conn),
		Messages:     assistdv1.NewMessageServiceClient(conn),
		Runs:         assistdv1.NewRunServiceClient(conn),
		Files:        assistdv1.NewFileServiceClient(conn),
		VectorStores: assistdv1.NewVectorStoreServiceClient(conn),
		Models:       assistdv1.NewModelServiceClient(conn),
	}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.Conn.Close() }

type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

func (bearer) RequireTransportSecurity() bool { return false }

// RunStream is what every run-streaming RPC returns.
type RunStream = grpc.ServerStreamingClient[assistdv1.RunEvent]

// ErrNoRun is returned when a stream broke before any event said which run it was.
var ErrNoRun = errors.New("assistd: the stream broke before it named its run")

// Drain reads one segment of a run from stream (a CreateRunStream, CreateThreadAndRunStream or
// SubmitToolOutputsStream) and calls fn for each event, up to and including the segment's
// `done`. If the stream breaks first, Drain resumes with WatchRun after the last event it
// delivered, so fn sees each event exactly once. It returns the run as the segment left it
// (completed, requires_action, ...). An error from fn stops it and is returned.
func (c *Client) Drain(ctx context.Context, stream RunStream, fn func(*assistdv1.RunEvent) error) (*assistdv1.Run, error) {
	var run *assistdv1.Run
	var runID string
	var last uint64
	for {
		event, err := stream.Recv()
		if err == io.EOF {
			return run, nil
		}
		if err != nil {
			if !retryable(err) {
				return run, err
			}
			if runID == "" {
				return run, errors.Join(ErrNoRun, err)
			}
			if stream, err = c.watch(ctx, runID, last); err != nil {
				return run, err
			}
			continue
		}
		last = event.GetSequenceNumber()
		if id := RunID(event); id != "" {
			runID = id
		}
		if r := event.GetRun(); r != nil {
			run = r
		}
		if err := fn(event); err != nil {
			return run, err
		}
		if event.GetEvent() == assistdv1.RunEventType_RUN_EVENT_TYPE_DONE {
			return run, nil // a resumed WatchRun would go on to later segments: stop at this one's end
		}
	}
}

// Follow watches a run from after its event number `after` (0: from the start) until it has
// ended, calling fn for each event, segment ends (`done`) included. A watch that breaks is
// resumed from the last event delivered. It returns the run as it ended.
func (c *Client) Follow(ctx context.Context, runID string, after uint64, fn func(*assistdv1.RunEvent) error) (*assistdv1.Run, error) {
	var run *assistdv1.Run
	stream, err := c.watch(ctx, runID, after)
	if err != nil {
		return nil, err
	}
	for {
		event, err := stream.Recv()
		if err == io.EOF {
			return run, nil
		}
		if err != nil {
			if !retryable(err) {
				return run, err
			}
			if stream, err = c.watch(ctx, runID, after); err != nil {
				return run, err
			}
			continue
		}
		after = event.GetSequenceNumber()
		if r := event.GetRun(); r != nil {
			run = r
		}
		if err := fn(event); err != nil {
			return run, err
		}
	}
}

func (c *Client) watch(ctx context.Context, runID string, after uint64) (RunStream, error) {
	for attempt := 0; ; attempt++ {
		stream, err := c.Runs.WatchRun(ctx, &assistdv1.WatchRunRequest{RunId: runID, AfterSequence: after})
		if err == nil || !retryable(err) || attempt == 4 {
			return stream, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Duration(100<<attempt) * time.Millisecond):
		}
	}
}

// retryable: the connection or the server went away; the run goes on, so reading it again helps.
func retryable(err error) bool {
	return status.Code(err) == codes.Unavailable
}

// RunID is the id of the run an event belongs to ("" for thread.created and done).
func RunID(event *assistdv1.RunEvent) string {
	switch {
	case event.GetRun() != nil:
		return event.GetRun().GetId()
	case event.GetRunStep() != nil:
		return event.GetRunStep().GetRunId()
	case event.GetMessage() != nil:
		return event.GetMessage().GetRunId()
	}
	return ""
}

// Text is the text a message delta event adds ("" for any other event).
func Text(event *assistdv1.RunEvent) string {
	text := ""
	for _, part := range event.GetMessageDelta().GetDelta().GetContent() {
		text += part.GetText().GetValue()
	}
	return text
}

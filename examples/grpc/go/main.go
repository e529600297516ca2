// Streams a run over gRPC with the Go client: the whole program a Go team writes.
//
//	ASSISTD_GRPC_TARGET=127.0.0.1:50051 ASSISTD_MODEL=openai/gpt-4o-mini go run . "Name three primes."
package main

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/assistd/assistd/clients/go/assistd"
	v1 "github.com/assistd/assistd/clients/go/assistd/v1"
)

func main() {
	ctx := context.Background()
	client, err := assistd.Dial(os.Getenv("ASSISTD_GRPC_TARGET"), os.Getenv("ASSISTD_API_KEY"))
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	a, err := client.Assistants.CreateAssistant(ctx, &v1.CreateAssistantRequest{Model: os.Getenv("ASSISTD_MODEL")})
	if err != nil {
		log.Fatal(err)
	}
	text := &v1.MessageContent{Kind: &v1.MessageContent_Text{Text: &v1.TextContent{Value: os.Args[1]}}}
	stream, err := client.Runs.CreateThreadAndRunStream(ctx, &v1.CreateThreadAndRunRequest{
		AssistantId: a.GetAssistant().GetId(),
		Thread:      &v1.ThreadParams{Messages: []*v1.NewMessage{{Role: v1.MessageRole_MESSAGE_ROLE_USER, Content: []*v1.MessageContent{text}}}},
	})
	if err != nil {
		log.Fatal(err)
	}
	run, err := client.Drain(ctx, stream, func(e *v1.RunEvent) error {
		fmt.Print(assistd.Text(e)) // the answer as it is written; a dropped stream is resumed
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("\n%s, %d tokens\n", run.GetStatus(), run.GetUsage().GetTotalTokens())
}

// assistd over gRPC from Java with grpc-java's blocking stubs, generated from protos/ by Maven:
// a function-call round trip, then a stream that is dropped mid-run and resumed with WatchRun.
//
//   mvn -q package && ASSISTD_GRPC_TARGET=127.0.0.1:50051 java -jar target/round-trip.jar
//
// The prompts carry the directives of the scripted model tests/e2e runs this against
// ([call:NAME:ARGS] makes it call a function, [chunks:N] answer with N words); a real model
// gets a question instead. The last line printed is a JSON report the test reads.
package dev.assistd.example;

import static java.util.stream.Collectors.joining;

// Without buf's managed mode (buf.gen.yaml) protoc keeps the proto package, assistd.v1, and
// nests each file's messages in one outer class.
import assistd.v1.AssistantOuterClass.*;
import assistd.v1.AssistantServiceGrpc;
import assistd.v1.MessageOuterClass.*;
import assistd.v1.RunOuterClass.*;
import assistd.v1.RunServiceGrpc;
import assistd.v1.RunServiceOuterClass.*;
import assistd.v1.ThreadOuterClass.*;
import assistd.v1.ThreadServiceGrpc;
import com.google.protobuf.Struct;
import com.google.protobuf.util.JsonFormat;
import io.grpc.Channel;
import io.grpc.ClientInterceptors;
import io.grpc.Context;
import io.grpc.Grpc;
import io.grpc.InsecureChannelCredentials;
import io.grpc.ManagedChannel;
import io.grpc.Metadata;
import io.grpc.stub.MetadataUtils;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

public final class RoundTrip {
  public static void main(String[] args) throws Exception {
    String target = System.getenv().getOrDefault("ASSISTD_GRPC_TARGET", "127.0.0.1:50051");
    String model = System.getenv().getOrDefault("ASSISTD_MODEL", "openai/gpt-4o-mini");
    ManagedChannel managed = Grpc.newChannelBuilder(target, InsecureChannelCredentials.create()).build();

    // The API key goes in `authorization` metadata on every call (any key works when the server
    // has no ASSISTD_API_KEYS).
    Metadata headers = new Metadata();
    headers.put(Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER),
        "Bearer " + System.getenv().getOrDefault("ASSISTD_API_KEY", "dev"));
    Channel channel = ClientInterceptors.intercept(managed, MetadataUtils.newAttachHeadersInterceptor(headers));
    var assistants = AssistantServiceGrpc.newBlockingStub(channel);
    var threads = ThreadServiceGrpc.newBlockingStub(channel);
    var runs = RunServiceGrpc.newBlockingStub(channel);

    // 1. A function call: the run stops in requires_action; our output resumes it.
    Struct.Builder parameters = Struct.newBuilder();
    JsonFormat.parser().merge("""
        {"type": "object", "properties": {"city": {"type": "string"}}}""", parameters);
    Assistant assistant = assistants.createAssistant(CreateAssistantRequest.newBuilder()
        .setModel(model)
        .addTools(Tool.newBuilder().setFunction(
            FunctionDefinition.newBuilder().setName("get_weather").setParameters(parameters)))
        .build()).getAssistant();
    String prompt = System.getenv().getOrDefault("ASSISTD_PROMPT", "[call:get_weather:{\"city\": \"Oslo\"}]");
    String threadId = newThread(threads, prompt);
    List<RunEvent> first = drain(runs.createRunStream(
        CreateRunRequest.newBuilder().setThreadId(threadId).setAssistantId(assistant.getId()).build()));
    Run waiting = lastRun(first);
    ToolCall call = waiting.getRequiredAction().getSubmitToolOutputs().getToolCalls(0);
    List<RunEvent> second = drain(runs.submitToolOutputsStream(SubmitToolOutputsRequest.newBuilder()
        .setThreadId(threadId)
        .setRunId(waiting.getId())
        .addToolOutputs(ToolOutput.newBuilder().setToolCallId(call.getId()).setOutput("4C"))
        .build()));

    // 2. Resume: hang up after 8 events, then WatchRun from the last one seen to the run's end.
    CreateRunRequest slow = CreateRunRequest.newBuilder()
        .setThreadId(newThread(threads, "[chunks:30][slow:0.02]"))
        .setAssistantId(assistant.getId())
        .build();
    List<RunEvent> all = new ArrayList<>();
    // A blocking stream is cancelled through its Context: closing it hangs up, and the run goes
    // on in the service.
    try (Context.CancellableContext context = Context.current().withCancellation()) {
      context.run(() -> {
        Iterator<RunEvent> stream = runs.createRunStream(slow);
        while (all.size() < 8) {
          all.add(stream.next());
        }
      });
    }
    long last = all.get(all.size() - 1).getSequenceNumber();
    all.addAll(drain(runs.watchRun(
        WatchRunRequest.newBuilder().setRunId(all.get(0).getRun().getId()).setAfterSequence(last).build())));

    System.out.println(json(Map.of(
        "waitingStatus", waiting.getStatus().name(),
        "requiredCall", Map.of("name", call.getFunction().getName(), "arguments", call.getFunction().getArguments()),
        "answer", textOf(second),
        "finalStatus", lastRun(second).getStatus().name().replace("RUN_STATUS_", "").toLowerCase(),
        "resumedFrom", last,
        "events", all.size(),
        "sequence", all.stream().map(RunEvent::getSequenceNumber).toList(),
        "watchedText", textOf(all),
        "watchEndsWith", List.of(all.get(all.size() - 2).getRun().getStatus().name(),
            all.get(all.size() - 1).getEvent().name()))));
    managed.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
  }

  static String newThread(ThreadServiceGrpc.ThreadServiceBlockingStub threads, String text) {
    NewMessage message = NewMessage.newBuilder()
        .setRole(MessageRole.MESSAGE_ROLE_USER)
        .addContent(MessageContent.newBuilder().setText(TextContent.newBuilder().setValue(text)))
        .build();
    return threads.createThread(CreateThreadRequest.newBuilder().addMessages(message).build()).getThread().getId();
  }

  // Every run-streaming RPC streams RunEvent; a stream that fails throws StatusRuntimeException.
  static List<RunEvent> drain(Iterator<RunEvent> stream) {
    List<RunEvent> events = new ArrayList<>();
    stream.forEachRemaining(events::add);
    return events;
  }

  static Run lastRun(List<RunEvent> events) {
    return events.stream().filter(RunEvent::hasRun).reduce((a, b) -> b).orElseThrow().getRun();
  }

  static String textOf(List<RunEvent> events) {
    return events.stream()
        .filter(e -> e.getEvent() == RunEventType.RUN_EVENT_TYPE_THREAD_MESSAGE_DELTA)
        .flatMap(e -> e.getMessageDelta().getDelta().getContentList().stream())
        .map(part -> part.getText().getValue())
        .collect(joining());
  }

  // Just enough JSON for the report: strings, numbers, lists and maps.
  static String json(Object value) {
    if (value instanceof String s) {
      return '"' + s.replace("\\", "\\\\").replace("\"", "\\\"").replace("\n", "\\n") + '"';
    }
    if (value instanceof List<?> list) {
      return list.stream().map(RoundTrip::json).collect(joining(", ", "[", "]"));
    }
    if (value instanceof Map<?, ?> map) {
      return map.entrySet().stream()
          .map(e -> json(e.getKey()) + ": " + json(e.getValue()))
          .collect(joining(", ", "{", "}"));
    }
    return String.valueOf(value);
  }
}

// assistd over gRPC from Node with @grpc/grpc-js and @grpc/proto-loader (no code generation):
// a function-call round trip, then a stream that is dropped mid-run and resumed with WatchRun.
//
//   ASSISTD_GRPC_TARGET=127.0.0.1:50051 ASSISTD_MODEL=openai/gpt-4o-mini node round_trip.mjs
//
// The prompts carry the directives of the scripted model tests/e2e runs this against
// ([call:NAME:ARGS] makes it call a function, [chunks:N] answer with N words); a real model
// gets a question instead. The last line printed is a JSON report the test reads.
import { fileURLToPath } from "node:url";
import path from "node:path";
import grpc from "@grpc/grpc-js";
import protoLoader from "@grpc/proto-loader";

const PROTOS = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../protos");
const definition = protoLoader.loadSync(
  ["assistd/v1/assistant.proto", "assistd/v1/thread.proto", "assistd/v1/run_service.proto"],
  // enums as names, uint64 sequence numbers as JS numbers, `data` names the oneof member that is set
  { includeDirs: [PROTOS], keepCase: true, enums: String, longs: Number, defaults: true, oneofs: true },
);
const v1 = grpc.loadPackageDefinition(definition).assistd.v1;

const target = process.env.ASSISTD_GRPC_TARGET ?? "127.0.0.1:50051";
const model = process.env.ASSISTD_MODEL ?? "openai/gpt-4o-mini";
const credentials = grpc.credentials.createInsecure();
const assistants = new v1.AssistantService(target, credentials);
const threads = new v1.ThreadService(target, credentials);
const runs = new v1.RunService(target, credentials);

// The API key goes in `authorization` metadata (any key works when the server has no ASSISTD_API_KEYS).
const metadata = new grpc.Metadata();
metadata.add("authorization", `Bearer ${process.env.ASSISTD_API_KEY ?? "dev"}`);

const call = (client, method, request) =>
  new Promise((resolve, reject) => client[method](request, metadata, (err, reply) => (err ? reject(err) : resolve(reply))));

// google.protobuf.Struct from a plain object: proto-loader does not convert one by itself.
const toValue = (v) =>
  v === null ? { nullValue: "NULL_VALUE" }
  : Array.isArray(v) ? { listValue: { values: v.map(toValue) } }
  : typeof v === "object" ? { structValue: toStruct(v) }
  : typeof v === "number" ? { numberValue: v }
  : typeof v === "boolean" ? { boolValue: v }
  : { stringValue: String(v) };
const toStruct = (o) => ({ fields: Object.fromEntries(Object.entries(o).map(([k, v]) => [k, toValue(v)])) });

// Reads a run stream (every run-streaming RPC streams RunEvent) until it ends, or until `stop` says so.
function read(stream, onEvent = () => {}, stop = () => false) {
  return new Promise((resolve, reject) => {
    const events = [];
    stream.on("data", (event) => {
      events.push(event);
      onEvent(event);
      if (stop(events)) {
        stream.cancel(); // hang up: the run goes on in the service
        resolve(events);
      }
    });
    stream.on("error", (err) => (err.code === grpc.status.CANCELLED ? resolve(events) : reject(err)));
    stream.on("end", () => resolve(events));
  });
}

const textOf = (events) =>
  events
    .filter((e) => e.event === "RUN_EVENT_TYPE_THREAD_MESSAGE_DELTA")
    .flatMap((e) => e.message_delta.delta.content)
    .map((part) => part.text?.value ?? "")
    .join("");

async function newThread(text) {
  const { thread } = await call(threads, "CreateThread", {
    messages: [{ role: "MESSAGE_ROLE_USER", content: [{ text: { value: text } }] }],
  });
  return thread.id;
}

// 1. A function call: the run stops in requires_action; our output resumes it.
const { assistant } = await call(assistants, "CreateAssistant", {
  model,
  tools: [{ function: { name: "get_weather", parameters: toStruct({ type: "object", properties: { city: { type: "string" } } }) } }],
});
const threadId = await newThread(process.env.ASSISTD_PROMPT ?? '[call:get_weather:{"city": "Oslo"}]');
const first = await read(runs.CreateRunStream({ thread_id: threadId, assistant_id: assistant.id }, metadata));
const waiting = first.findLast((e) => e.data === "run").run;
const [toolCall] = waiting.required_action.submit_tool_outputs.tool_calls;
const second = await read(
  runs.SubmitToolOutputsStream(
    { thread_id: threadId, run_id: waiting.id, tool_outputs: [{ tool_call_id: toolCall.id, output: "4C" }] },
    metadata,
  ),
);
const finalRun = second.findLast((e) => e.data === "run").run;

// 2. Resume: hang up after 8 events, then WatchRun from the last one seen to the run's end.
const watchThread = await newThread("[chunks:30][slow:0.02]");
const seen = await read(
  runs.CreateRunStream({ thread_id: watchThread, assistant_id: assistant.id }, metadata),
  () => {},
  (events) => events.length === 8,
);
const last = seen.at(-1).sequence_number;
const rest = await read(runs.WatchRun({ run_id: seen[0].run.id, after_sequence: last }, metadata));
const all = [...seen, ...rest];

console.log(
  JSON.stringify({
    waitingStatus: waiting.status,
    requiredCall: { name: toolCall.function.name, arguments: toolCall.function.arguments },
    answer: textOf(second),
    finalStatus: finalRun.status.replace("RUN_STATUS_", "").toLowerCase(),
    resumedFrom: last,
    events: all.length,
    sequence: all.map((e) => e.sequence_number),
    watchedText: textOf(all),
    watchEndsWith: [all.at(-2).run?.status, all.at(-1).event],
  }),
);
for (const client of [assistants, threads, runs]) client.close();

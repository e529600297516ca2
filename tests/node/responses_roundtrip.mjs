// A function-call round trip through the Responses API with the Node openai SDK: a streamed
// response ends with function_call items, the next one (previous_response_id) sends their outputs.
// Prints what it saw as one JSON line for the Python test.
import OpenAI from "openai";

const client = new OpenAI({ baseURL: process.env.ASSISTD_BASE_URL, apiKey: "test-key", maxRetries: 0 });
const tools = [
  {
    type: "function",
    name: "get_weather",
    parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
    strict: false,
  },
];

const argumentDeltas = [];
const first = client.responses.stream({
  model: process.env.ASSISTD_MODEL,
  input: '[call:get_weather:{"city": "Paris"}]',
  tools,
});
first.on("response.function_call_arguments.delta", (event) => argumentDeltas.push(event.delta));
const called = await first.finalResponse();
const calls = called.output.filter((item) => item.type === "function_call");

const textDeltas = [];
const sequence = [];
const second = client.responses.stream({
  model: process.env.ASSISTD_MODEL,
  previous_response_id: called.id,
  input: calls.map((call) => ({ type: "function_call_output", call_id: call.call_id, output: "18C" })),
  tools,
});
second.on("event", (event) => sequence.push(event.sequence_number));
second.on("response.output_text.delta", (event) => textDeltas.push(event.delta));
const answered = await second.finalResponse();

console.log(
  JSON.stringify({
    firstStatus: called.status,
    calls: calls.map((call) => ({ name: call.name, arguments: call.arguments, callId: call.call_id })),
    argumentDeltas,
    text: textDeltas.join(""),
    outputText: answered.output_text,
    sequence,
  }),
);

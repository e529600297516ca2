// The seed's function-calling flow with the Node openai SDK: runs.stream -> requires_action ->
// submitToolOutputsStream -> text deltas. Prints what it saw as one JSON line for the Python test.
import OpenAI from "openai";

const client = new OpenAI({ baseURL: process.env.ASSISTD_BASE_URL, apiKey: "test-key", maxRetries: 0 });
const assistant = await client.beta.assistants.create({
  model: process.env.ASSISTD_MODEL,
  tools: [
    {
      type: "function",
      function: {
        name: "get_weather",
        parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
      },
    },
  ],
});
const thread = await client.beta.threads.create({
  messages: [{ role: "user", content: '[call:get_weather:{"city": "Paris"}][call:get_weather:{"city": "Oslo"}]' }],
});

const seen = [];
const first = client.beta.threads.runs.stream(thread.id, { assistant_id: assistant.id });
first.on("toolCallDone", (call) => seen.push({ id: call.id, name: call.function.name, arguments: call.function.arguments }));
const waiting = await first.finalRun();

const temperatures = { Paris: "18C", Oslo: "4C" };
const required = waiting.required_action.submit_tool_outputs.tool_calls;
const outputs = required.map((call) => ({
  tool_call_id: call.id,
  output: temperatures[JSON.parse(call.function.arguments).city],
}));
let text = "";
const second = client.beta.threads.runs.submitToolOutputsStream(waiting.id, {
  thread_id: thread.id,
  tool_outputs: outputs,
});
second.on("textDelta", (delta) => {
  text += delta.value;
});
const final = await second.finalRun();
const messages = await client.beta.threads.messages.list(thread.id);

console.log(
  JSON.stringify({
    waitingStatus: waiting.status,
    requiredIds: required.map((call) => call.id),
    seen,
    text,
    finalStatus: final.status,
    storedAnswer: messages.data[0].content[0].text.value,
  }),
);

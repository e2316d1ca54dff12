// The Vercel AI SDK's telemetry exported by the OpenTelemetry JS OTLP/HTTP protobuf exporter,
// configured only through the two standard environment variables:
//   OTEL_EXPORTER_OTLP_ENDPOINT=<collector>/v1/otlp
//   OTEL_EXPORTER_OTLP_HEADERS=Authorization=Bearer%20llmo_...
// OPENAI_BASE_URL points the AI SDK's OpenAI provider at a fake OpenAI server.
// Run by tests/sdk/test_otlp_clients.py; prints one JSON line describing what it did.
import { context, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-proto";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { BasicTracerProvider, BatchSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { createOpenAI } from "@ai-sdk/openai";
import { generateText, streamText } from "ai";

const provider = new BasicTracerProvider({
  resource: resourceFromAttributes({ "service.name": "node-otlp-test" }),
  spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter())],
});
// What @opentelemetry/sdk-node sets up: without a context manager every span would be a root.
context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
trace.setGlobalTracerProvider(provider);

const openai = createOpenAI({ baseURL: process.env.OPENAI_BASE_URL, apiKey: "sk-test" });
const telemetry = {
  isEnabled: true,
  functionId: "support-bot",
  metadata: { userId: "cust-42" },
};

const generated = await generateText({
  model: openai.chat("gpt-4o"),
  prompt: "node-secret-prompt: what is my balance?",
  experimental_telemetry: telemetry,
});
const streamed = streamText({
  model: openai.chat("gpt-4o"),
  prompt: "node-secret-prompt: stream it",
  experimental_telemetry: telemetry,
});
let text = "";
for await (const piece of streamed.textStream) text += piece;

await provider.forceFlush();
await provider.shutdown();
console.log(JSON.stringify({ generated: generated.text, streamed: text, usage: generated.usage }));

// A Node.js app using the Vercel AI SDK with its OpenTelemetry telemetry on, as users set it up:
// node vercel_app.mjs PROVIDER_URL OTLP_TRACES_URL CALLS
import { NodeSDK } from '@opentelemetry/sdk-node';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { generateText } from 'ai';
import { createOpenAI } from '@ai-sdk/openai';

const [providerUrl, otlpUrl, calls] = process.argv.slice(2);
const sdk = new NodeSDK({ serviceName: 'vercel-app', traceExporter: new OTLPTraceExporter({ url: otlpUrl }) });
sdk.start();
const openai = createOpenAI({ baseURL: `${providerUrl}/v1`, apiKey: 'demo-key' });
for (let i = 0; i < Number(calls || 1); i++) {
  const result = await generateText({ model: openai.chat('gpt-4o-mini'), prompt: 'Hi',
                                      experimental_telemetry: { isEnabled: true, functionId: 'demo' } });
  console.log(JSON.stringify(result.usage));
}
await sdk.shutdown();

"""OpenTelemetry ingestion: OTLP/HTTP exports decoded, their spans mapped from the GenAI,
OpenInference, OpenLLMetry and Langfuse conventions onto ingest writes (`traces`, `spans`,
`logs`), and the receivers that answer as OTLP requires (`router`)."""

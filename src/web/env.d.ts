// Vite's client types (import.meta.glob, `?url` and `?inline` imports) for the page's sources.
/// <reference types="vite/client" />

/** Joins byte arrays into one. */
export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Bytes per String.fromCharCode call: well under engines' argument limits. */
const BASE64_CHUNK = 0x8000;

/** Base64 of `bytes` (in browsers and Node alike), built a chunk at a time: no string or array per byte. */
export function bytesToBase64(bytes: Uint8Array): string {
  const parts: string[] = [];
  for (let at = 0; at < bytes.length; at += BASE64_CHUNK) parts.push(String.fromCharCode.apply(null, bytes.subarray(at, at + BASE64_CHUNK) as unknown as number[]));
  return btoa(parts.join(""));
}

/** The bytes of base64 `text`; throws (a DOMException) on a character outside base64's alphabet. */
export function base64ToBytes(text: string): Uint8Array {
  const binary = atob(text);
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
  return out;
}

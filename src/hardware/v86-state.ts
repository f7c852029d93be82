// The layout of a state v86 0.5 saves (`save_state()`, state format 6), read
// without v86: a 16-byte header (magic, format, total length, length of the
// description), the description as JSON (`{ buffer_infos, state }`), then a
// block of buffers, each at a 4-byte-aligned offset the description gives.
// Guest RAM is two of those buffers: the non-zero pages packed in page order,
// and a bitmap of which pages they are. Delta snapshots (src/hypervisor/
// delta-snapshot.ts) take states apart and put them back together with it.
import { HyperlabError } from "../errors.ts";

/** The first word of every state v86 0.5 saves. */
export const V86_STATE_MAGIC = -2039052682;
/** The state format v86 0.5.462 writes and reads. */
export const V86_STATE_VERSION = 6;
/** Bytes of a guest page, as v86's bitmap counts them. */
export const V86_PAGE_SIZE = 4096;

/** Indexes in v86's CPU state: memory size, then the non-zero pages packed and their bitmap. */
const STATE_MEMORY_SIZE = 0;
const STATE_PACKED_MEMORY = 77;
const STATE_PAGE_BITMAP = 78;

/** Where a buffer of the state lies, in bytes from the start of the state. */
export interface V86Buffer {
  start: number;
  length: number;
}

/** A v86 state, taken apart (nothing copied). */
export interface V86StateLayout {
  /** v86's state format version */
  version: number;
  /** the total length its header states */
  totalBytes: number;
  /** bytes of header and description, padded to where the buffer block starts */
  blockStart: number;
  /** every buffer, by id */
  buffers: V86Buffer[];
  /** guest RAM in bytes (the machine's memory size) */
  memoryBytes: number;
  /** ids of the buffers holding guest RAM: its non-zero pages, packed, and their bitmap */
  packedId: number;
  bitmapId: number;
  /** v86's description of the machine (the JSON after the header): its state tree, whose typed arrays name buffers by id */
  description: { buffer_infos: Array<{ offset: number; length: number }>; state: unknown[] };
}

function corrupt(what: string): HyperlabError {
  return new HyperlabError("SNAPSHOT_CORRUPT", `the saved machine state is damaged: ${what}. Take the snapshot again.`);
}

/**
 * Reads the header and description of a state (or of the first bytes of
 * one: buffers are only located, not read). Throws SNAPSHOT_CORRUPT when it
 * is not a v86 state or its description does not add up.
 */
export function readV86State(state: Uint8Array): V86StateLayout {
  if (state.byteLength < 16) throw corrupt(`it is ${state.byteLength} bytes long, shorter than v86's header`);
  const head = new DataView(state.buffer, state.byteOffset, 16);
  if (head.getInt32(0, true) !== V86_STATE_MAGIC) throw corrupt("it does not start with v86's state magic");
  const totalBytes = head.getInt32(8, true);
  const infoLength = head.getInt32(12, true);
  if (infoLength < 0 || 16 + infoLength > state.byteLength) throw corrupt(`its description block length ${infoLength} is out of range`);
  let info: { buffer_infos?: Array<{ offset: number; length: number }>; state?: unknown[] };
  try {
    info = JSON.parse(new TextDecoder().decode(state.subarray(16, 16 + infoLength))) as typeof info;
  } catch (err) {
    throw corrupt(`its description block is not valid JSON (${(err as Error).message})`);
  }
  if (typeof info !== "object" || info === null || !Array.isArray(info.buffer_infos) || !Array.isArray(info.state)) {
    throw corrupt("its description is not an object with buffer_infos and state lists");
  }
  const blockStart = (16 + infoLength + 3) & ~3;
  const buffers = info.buffer_infos.map((b, id) => {
    if (!Number.isInteger(b?.offset) || !Number.isInteger(b?.length) || b.offset < 0 || b.length < 0 || blockStart + b.offset + b.length > totalBytes) {
      throw corrupt(`buffer ${id} lies outside the state`);
    }
    return { start: blockStart + b.offset, length: b.length };
  });
  const ref = (i: number) => {
    const id = (info.state![i] as { buffer_id?: unknown } | undefined)?.buffer_id;
    if (typeof id !== "number" || !buffers[id]) throw corrupt(`its CPU state item ${i} names no buffer`);
    return id;
  };
  const memoryBytes = info.state[STATE_MEMORY_SIZE];
  if (typeof memoryBytes !== "number" || memoryBytes <= 0 || memoryBytes % V86_PAGE_SIZE !== 0) throw corrupt("its memory size is missing");
  const packedId = ref(STATE_PACKED_MEMORY);
  const bitmapId = ref(STATE_PAGE_BITMAP);
  if (buffers[bitmapId]!.length * 8 < memoryBytes / V86_PAGE_SIZE) throw corrupt("its page bitmap is shorter than its memory");
  if (buffers[packedId]!.length % V86_PAGE_SIZE !== 0) throw corrupt("its packed memory is not a whole number of pages");
  return {
    version: head.getInt32(4, true),
    totalBytes,
    blockStart,
    buffers,
    memoryBytes,
    packedId,
    bitmapId,
    description: info as V86StateLayout["description"],
  };
}

/** The bytes of buffer `id` of a state read with readV86State. */
export function v86Buffer(state: Uint8Array, layout: V86StateLayout, id: number): Uint8Array {
  const b = layout.buffers[id]!;
  return state.subarray(b.start, b.start + b.length);
}

// The log checked in the browser, trusting nothing the gateway says about itself: the
// entry's stored bytes are hashed here (RFC 6962 leaf), the inclusion and consistency
// proofs are recomputed here (RFC 9162 §2.1.3.2 and §2.1.4.2), and the tree head's
// signature is checked here with WebCrypto's Ed25519. The gateway only supplies bytes.

const encoder = new TextEncoder();

/** The bytes a tree head's signature covers start with this (audit/heads.py). */
export const HEAD_PREFIX = "dataauth tree head v1\n";
export const EMPTY_ROOT_HEX = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

export function toHex(bytes) {
  return Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Hex to bytes; null if it is not even-length hex. */
export function fromHex(hex) {
  if (typeof hex !== "string" || hex.length % 2 || /[^0-9a-f]/i.test(hex)) return null;
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

function equal(a, b) {
  if (!a || !b || a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

/** Browsers offer WebCrypto only in a secure context: over HTTPS, or on localhost. */
function subtle() {
  if (!globalThis.crypto?.subtle) {
    const error = new Error("this browser offers no WebCrypto here: open the console over HTTPS or on localhost to check proofs");
    Object.assign(error, { code: "no_webcrypto", detail: error.message });
    throw error;
  }
  return crypto.subtle;
}

export async function sha256(bytes) {
  subtle();
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
}

/** RFC 6962: SHA-256(0x00 || data). */
export async function leafHash(bytes) {
  return sha256(concat(Uint8Array.of(0), new Uint8Array(bytes)));
}

/** RFC 6962: SHA-256(0x01 || left || right). */
export async function nodeHash(left, right) {
  return sha256(concat(Uint8Array.of(1), left, right));
}

const isHash = (h) => h instanceof Uint8Array && h.length === 32;
const isSize = (n) => Number.isSafeInteger(n) && n >= 0;

/** RFC 9162 §2.1.3.2: is ``leaf`` (32 bytes) at ``index`` of the tree of ``size`` leaves
 * whose root is ``root``, by ``proof`` (a list of 32-byte hashes)? Never throws. */
export async function verifyInclusion(leaf, index, size, proof, root) {
  if (!isSize(index) || !isSize(size) || index >= size) return false;
  if (!isHash(leaf) || !isHash(root) || !proof.every(isHash)) return false;
  let fn = index;
  let sn = size - 1;
  let r = leaf;
  for (const p of proof) {
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      r = await nodeHash(p, r);
      while (fn % 2 === 0 && fn !== 0) {
        fn = Math.floor(fn / 2);
        sn = Math.floor(sn / 2);
      }
    } else {
      r = await nodeHash(r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && equal(r, root);
}

/** RFC 9162 §2.1.4.2: does the tree of ``size2`` leaves and root ``root2`` extend the
 * tree of ``size1`` and ``root1``, by ``proof``? Never throws. */
export async function verifyConsistency(size1, root1, size2, root2, proof) {
  if (!isSize(size1) || !isSize(size2) || size1 > size2) return false;
  if (!isHash(root1) || !isHash(root2) || !proof.every(isHash)) return false;
  if (size1 === size2) return proof.length === 0 && equal(root1, root2);
  if (size1 === 0) return proof.length === 0;
  const path = [...proof];
  // a power of two: the old root is the first node of the path
  if ((size1 & (size1 - 1)) === 0) path.unshift(root1);
  if (!path.length) return false;
  let fn = size1 - 1;
  let sn = size2 - 1;
  while (fn % 2 === 1) {
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  let fr = path[0];
  let sr = path[0];
  for (const c of path.slice(1)) {
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      fr = await nodeHash(c, fr);
      sr = await nodeHash(c, sr);
      while (fn % 2 === 0 && fn !== 0) {
        fn = Math.floor(fn / 2);
        sn = Math.floor(sn / 2);
      }
    } else {
      sr = await nodeHash(sr, c);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && equal(fr, root1) && equal(sr, root2);
}

/** RFC 8785 canonical JSON. ECMAScript's own serialisation of strings and numbers is
 * the one RFC 8785 prescribes; what it adds is keys sorted by UTF-16 code units, which
 * is how JavaScript compares strings. Integers must be safe integers. */
export function canonicalJSON(value) {
  if (value === null || typeof value === "boolean" || typeof value === "string") return JSON.stringify(value);
  if (typeof value === "number") {
    if (!Number.isFinite(value) || (Number.isInteger(value) && !Number.isSafeInteger(value))) {
      throw new RangeError("not a number RFC 8785 can hold exactly");
    }
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map(canonicalJSON).join(",")}]`;
  if (typeof value === "object") {
    const keys = Object.keys(value).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJSON(value[k])}`).join(",")}}`;
  }
  throw new TypeError(`no JSON form for a ${typeof value}`);
}

/** The exact bytes a head's signature covers: the prefix and the RFC 8785 form of its
 * fields (audit/heads.py, TreeHead.message). */
export function headMessage(head) {
  const fields = {
    algorithm: head.algorithm,
    key_id: head.key_id,
    prev: head.prev,
    root: head.root,
    size: head.size,
    time: head.time,
  };
  return encoder.encode(HEAD_PREFIX + canonicalJSON(fields));
}

/** What the next head names as ``prev``: SHA-256(message || signature), in hex. */
export async function headDigest(head) {
  return toHex(await sha256(concat(headMessage(head), fromHex(head.signature) || new Uint8Array())));
}

function pemBody(pem) {
  const base64 = String(pem).replace(/-----(BEGIN|END) PUBLIC KEY-----/g, "").replace(/\s+/g, "");
  return Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
}

/** Check a head's signature under ``publicKeyPem``: {ok: true|false|null, detail}.
 * ``ok`` is null where the browser cannot check the algorithm (SM2): not a failure,
 * and not a pass. The key's id is checked too: the SHA-256 of the key itself. */
export async function verifyHead(head, publicKeyPem) {
  if (head.algorithm !== "Ed25519") {
    const name = String(head.algorithm).startsWith("SM2") ? "SM2" : head.algorithm;
    return { ok: null, detail: `not checkable in the browser (${name})` };
  }
  if (!publicKeyPem) return { ok: false, detail: `no public key with id ${head.key_id}` };
  let der;
  try {
    der = pemBody(publicKeyPem);
  } catch {
    return { ok: false, detail: "the public key is not PEM" };
  }
  if (toHex(await sha256(der)) !== head.key_id) {
    return { ok: false, detail: "the key's id is not the SHA-256 of the key" };
  }
  const signature = fromHex(head.signature);
  if (!signature || signature.length !== 64) return { ok: false, detail: "the signature is not 64 bytes of hex" };
  let key;
  try {
    key = await subtle().importKey("spki", der, { name: "Ed25519" }, false, ["verify"]);
  } catch (error) {
    return { ok: false, detail: `the public key is not an Ed25519 key (${error.name})` };
  }
  const ok = await crypto.subtle.verify({ name: "Ed25519" }, key, signature, headMessage(head));
  return { ok, detail: ok ? "Ed25519 signature verified with WebCrypto" : "the Ed25519 signature does not verify" };
}

/** The body of ``path`` as bytes, fetched with the bearer token: what is hashed is what
 * came over the wire, never a re-encoding of parsed JSON. */
export async function fetchBytes(path, token) {
  const headers = token ? { Authorization: `Bearer ${token}` } : {};
  const response = await fetch(path, { headers });
  const bytes = new Uint8Array(await response.arrayBuffer());
  if (!response.ok) {
    let body = {};
    try {
      body = JSON.parse(new TextDecoder().decode(bytes));
    } catch {
      // not problem+json
    }
    const error = new Error(body.detail || `HTTP ${response.status}`);
    Object.assign(error, { status: response.status, code: body.code || null, detail: body.detail || error.message });
    throw error;
  }
  return bytes;
}

/** The log's keys (``/v1/audit/keys``) by key id, as ``checkSigned`` takes them. */
export function byKeyId(keys) {
  return Object.fromEntries(keys.map((k) => [k.key_id, k]));
}

async function keysById(api) {
  const { keys } = await api("/v1/audit/keys");
  return byKeyId(keys);
}

/** A head's signature under its key (``verifyHead``), and that the key was not retired
 * (a rotation or revocation: ``last_size`` in the key list) before a head of this size:
 * a lost key cannot vouch for a later tree. */
export async function checkSigned(head, keys) {
  const key = keys[head.key_id];
  const signed = await verifyHead(head, key?.public_key_pem);
  if (signed.ok !== false && key?.last_size !== undefined && head.size > key.last_size) {
    return { ok: false, detail: `signed by a key a key change retired after the head at size ${key.last_size}` };
  }
  return signed;
}

const step = (name, ok, detail, extra = {}) => ({ name, ok, detail, ...extra });

/** Check entry ``index`` from scratch: its stored bytes, their leaf hash, the inclusion
 * proof up to a signed head, and that head's signature. Returns {ok, entry, steps}:
 * ``ok`` is true only if every step passed (null if the signature could not be
 * checked here), each step {name, ok, detail, ...values shown}. */
export async function checkEntry(api, index, { token, treeSize } = {}) {
  const steps = [];
  const bytes = await fetchBytes(`/v1/audit/entries/${index}`, token ?? api.token);
  let entry = null;
  let bound = false;
  try {
    const parsed = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
    entry = parsed.entry;
    bound = parsed.index === index;
  } catch {
    // shown as a failed step below
  }
  steps.push(step("entry", entry !== null && bound,
    entry === null ? "the stored bytes are not JSON" : bound ? `${bytes.length} bytes, bound to index ${index}` : "the bytes name another index",
    { bytes: bytes.length }));
  const leaf = await leafHash(bytes);
  const query = `/v1/audit/proof/inclusion?index=${index}${treeSize ? `&tree_size=${treeSize}` : ""}`;
  const receipt = await api(query);
  const claimed = receipt.leaf_hash;
  steps.push(step("leaf", toHex(leaf) === claimed,
    toHex(leaf) === claimed ? "SHA-256(0x00 ‖ bytes) computed here equals the log's leaf" : "the bytes hash to another leaf than the log's",
    { computed: toHex(leaf), claimed }));
  const head = receipt.tree_head;
  const proof = receipt.proof.map(fromHex);
  const included = head.size === receipt.tree_size && await verifyInclusion(leaf, index, head.size, proof, fromHex(head.root));
  steps.push(step("path", included,
    included ? `the root recomputed from ${proof.length} hashes equals the signed head's root` : "the proof does not lead from this leaf to the signed root",
    { proof: receipt.proof, size: head.size, root: head.root }));
  const keys = await keysById(api);
  const signed = await checkSigned(head, keys);
  steps.push(step("signature", signed.ok, signed.detail, { key_id: head.key_id, algorithm: head.algorithm }));
  return { ok: steps.every((s) => s.ok === true) ? true : steps.some((s) => s.ok === false) ? false : null, entry, head, steps };
}

/** Check that the signed head of ``size2`` extends the one of ``size1``: both signatures
 * and the consistency proof, all here. Returns {ok, steps} as checkEntry does. */
export async function checkConsistency(api, size1, size2) {
  const answer = await api(`/v1/audit/proof/consistency?from=${size1}&to=${size2}`);
  const older = answer.from_head;
  const newer = answer.to_head;
  const keys = await keysById(api);
  const steps = [];
  for (const [name, head, size] of [["old head", older, size1], ["new head", newer, size2]]) {
    const signed = await checkSigned(head, keys);
    const sized = head.size === size;
    steps.push(step(name, sized ? signed.ok : false, sized ? signed.detail : `the head is of size ${head.size}, not ${size}`,
      { size: head.size, root: head.root }));
  }
  const proof = answer.proof.map(fromHex);
  const consistent = await verifyConsistency(older.size, fromHex(older.root), newer.size, fromHex(newer.root), proof);
  steps.push(step("consistency", consistent,
    consistent ? `${proof.length} hashes rebuild both roots: the newer tree extends the older` : "the proof does not show the newer tree extending the older",
    { proof: answer.proof }));
  return { ok: steps.every((s) => s.ok === true) ? true : steps.some((s) => s.ok === false) ? false : null, steps };
}

/** Links of a list of heads by size: for each head after the first, whether its
 * ``prev`` is the digest of the head before it (a dropped or altered head breaks one). */
export async function checkChain(heads) {
  const sorted = [...heads].sort((a, b) => a.size - b.size);
  const links = [];
  for (let i = 1; i < sorted.length; i++) {
    links.push({ size: sorted[i].size, follows: sorted[i - 1].size, ok: sorted[i].prev === await headDigest(sorted[i - 1]) });
  }
  return links;
}

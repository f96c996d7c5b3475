// emoar's service worker: after one visit, the live page's on-device mode works with the server
// stopped (or the network gone). The server fills in PRECACHE (the page, its scripts and styles,
// the onnxruntime-web runtime, the BlazeFace detectors, the default expression model, sprites and
// quotes) and the cache name, which changes with every emoar version and shipped model set.
//
// Big immutable files (runtime, models, sprites) are served from the cache first; pages, scripts
// and the model catalogue go to the network first, so a running server is always current, and
// fall back to the cache when it does not answer. Analysis, streams, rooms and the API docs are
// never cached: they need the server, and meeting data stays out of the browser's storage.

const CACHE = "__EMOAR_CACHE__";
const PRECACHE = __EMOAR_PRECACHE__;
const NEVER = /^\/(v1\/analyze|v1\/stream|v1\/rooms|meet|docs|openapi\.json|redoc|healthz)/;
const CACHE_FIRST = /^\/(static\/vendor\/|assets\/detectors\/|assets\/emoji\/|assets\/icons\/|v1\/models\/[^/]+\/onnx)/;

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(CACHE).then((c) => c.addAll(PRECACHE)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches.keys()
      .then((keys) => Promise.all(keys.filter((k) => k.startsWith("emoar-") && k !== CACHE).map((k) => caches.delete(k))))
      .then(() => self.clients.claim()),
  );
});

async function fromNetwork(request) {
  const response = await fetch(request);
  if (response.ok && response.type === "basic") {
    const copy = response.clone();
    caches.open(CACHE).then((c) => c.put(request, copy));
  }
  return response;
}

async function cacheFirst(request) {
  const hit = await caches.match(request);
  return hit || fromNetwork(request);
}

async function networkFirst(request) {
  try {
    return await fromNetwork(request);
  } catch (err) {
    const hit = await caches.match(request);
    if (hit) return hit;
    throw err;
  }
}

self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET") return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin || NEVER.test(url.pathname.slice(1))) return;
  event.respondWith(CACHE_FIRST.test(url.pathname.slice(1)) ? cacheFirst(request) : networkFirst(request));
});

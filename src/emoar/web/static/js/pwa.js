// Registers the service worker (/sw.js): after one visit the live page runs on-device with the
// server stopped, and the browser offers to install emoar as an app. Nothing is sent anywhere;
// the worker only caches what this server served.

export async function registerServiceWorker() {
  const status = { supported: "serviceWorker" in navigator, registered: false, error: null };
  window.__emoarSW = status;
  if (!status.supported) return status;
  try {
    await navigator.serviceWorker.register("/sw.js", { scope: "/" });
    await navigator.serviceWorker.ready;
    status.registered = true;
  } catch (e) {
    status.error = String(e && e.message ? e.message : e);  // e.g. plain http on a LAN address
  }
  return status;
}

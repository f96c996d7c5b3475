// /meet: create a room, then show the links (the host key travels in the URL fragment only).

const $ = (id) => document.getElementById(id);
const state = { created: null, error: null };
window.__emoarMeet = state;

$("create").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const visibility = document.querySelector('input[name="visibility"]:checked').value;
  $("create-status").textContent = "creating…";
  try {
    const r = await fetch("/v1/rooms", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ title: $("title").value, visibility, retention_hours: Number($("retention").value) }),
    });
    const body = await r.json();
    if (!r.ok) throw new Error(body.message || `HTTP ${r.status}`);
    state.created = body;
    // The fragment is never sent to the server, so the host key stays out of logs and history.
    const host = `/meet/${body.room_id}/host#token=${encodeURIComponent(body.host_token)}`;
    $("host-link").href = host;
    $("join-link").href = body.join_url;
    $("join-link").textContent = body.join_url;
    $("code").textContent = body.join_code;
    $("created").classList.remove("hidden");
    $("create-status").textContent = "";
    sessionStorage.setItem(`emoar.host.${body.room_id}`, body.host_token);
  } catch (e) {
    state.error = String(e.message || e);
    $("create-status").textContent = `Could not create the room: ${state.error}`;
  }
});
$("copy-join").addEventListener("click", () => navigator.clipboard && navigator.clipboard.writeText($("join-link").href));

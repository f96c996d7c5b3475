// Shared by the meeting pages: the room socket with reconnect, tiles, colours.

export const VALENCE = { happy: 1, surprise: 0.3, neutral: 0, contempt: -0.5, sad: -0.7, fear: -0.6,
                         disgust: -0.7, angry: -0.8 };

export async function overlayStyle() {
  const r = await fetch("/assets/overlay.json");
  return r.json();
}

export function sprite(style, expression) {
  const name = expression && style.sprites.includes(expression) ? expression : "neutral";
  return `/assets/emoji/${name}.png`;
}

/** A websocket to a room that reconnects with backoff (1, 2, 4 … 15 s) until closed for good.
 *  Application heartbeat: a ping every 10 s (the server closes sockets idle for 45 s); a socket
 *  that hears nothing, not even a pong, for 30 s is taken as dead and reopened. */
export class RoomSocket {
  constructor(roomId, token, onMessage, onStatus) {
    this.url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/v1/rooms/${roomId}/ws?token=${encodeURIComponent(token)}`;
    this.onMessage = onMessage;
    this.onStatus = onStatus;
    this.delay = 1000;
    this.closed = false;
    this.ws = null;
    this.heard = Date.now();
    this.open();
    this.beat = setInterval(() => {
      if (this.closed) { clearInterval(this.beat); return; }
      this.send({ type: "ping", t: Date.now() });
      if (this.ws && this.ws.readyState === WebSocket.OPEN && Date.now() - this.heard > 30000) {
        this.ws.close(4000, "no answer");  // onclose reconnects
      }
    }, 10000);
  }

  open() {
    const ws = new WebSocket(this.url);
    this.ws = ws;
    ws.onopen = () => { this.delay = 1000; this.heard = Date.now(); this.onStatus("connected"); };
    ws.onmessage = (ev) => { this.heard = Date.now(); try { this.onMessage(JSON.parse(ev.data)); } catch (e) { console.warn(e); } };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;  // an older socket
      if (this.closed || ev.code === 1008 || ev.code === 1000 || ev.code >= 4400) {
        this.closed = true;
        this.onStatus(ev.code === 1008 ? "refused: this link's key does not open the room" : "closed");
        return;
      }
      this.onStatus(`reconnecting in ${Math.round(this.delay / 1000)} s…`);
      setTimeout(() => this.open(), this.delay);
      this.delay = Math.min(15000, this.delay * 2);
    };
  }

  send(msg) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) { this.ws.send(JSON.stringify(msg)); return true; }
    return false;
  }

  close() { this.closed = true; if (this.ws) this.ws.close(1000); }
}

export function tileElement(style, tile) {
  const li = document.createElement("li");
  li.className = `tile ${tile.status}`;
  li.dataset.participant = String(tile.participant);
  const img = document.createElement("img");
  const expr = tile.state && tile.state.expression;
  img.src = sprite(style, tile.status === "live" ? expr : null);
  img.alt = expr || tile.status;
  const name = document.createElement("div");
  name.className = "name";
  name.textContent = tile.name || `Participant ${tile.participant}`;
  const st = document.createElement("div");
  st.className = "st";
  const conf = expr && tile.state.probs && tile.state.probs[expr] != null ? ` ${Math.round(tile.state.probs[expr] * 100)}%` : "";
  st.textContent = tile.status === "live" && expr ? `${expr}${conf}` : tile.status.replace("_", " ");
  const reaction = document.createElement("div");
  reaction.className = "reaction";
  li.append(img, name, st, reaction);
  return li;
}

// Words, not emoji characters: not every system has a colour emoji font (the expressions use
// the bundled sprites instead).
export const REACTION_EMOJI = { thumbs_up: "thumbs up", confused: "confused", slow_down: "slow down",
                                speed_up: "speed up", raise_hand: "hand raised", clap: "clap" };

// A small client of the Pusher Channels protocol v7 (what pusher-js and Laravel Echo
// speak), enough for the page: subscribe, bind, ping/pong, private-channel auth, and
// reconnects with exponential backoff and full jitter. After every (re)connect all
// channels are subscribed again; the server answers each subscription with the
// channel's current state, and `onReconnect` lets the page refetch the API too.

const PONG_TIMEOUT_MS = 30000;
const BACKOFF_BASE_MS = 500;
const BACKOFF_MAX_MS = 15000;

export class PusherLite {
  /**
   * @param {string} url  ws://host/app/{key}?protocol=7&client=js&version=…
   * @param {{authorize?: (socketId: string, channel: string) => Promise<string>,
   *          onState?: (state: string, detail?: object) => void,
   *          onReconnect?: () => void}} options
   */
  constructor(url, options = {}) {
    this.url = url;
    this.options = options;
    this.channels = new Map();
    this.socket = null;
    this.socketId = null;
    this.state = "initialized";
    this.attempt = 0;
    this.connectedOnce = false;
    this.activityTimeout = 30000;
    this.timers = {};
    this.stopped = false;
    window.addEventListener("online", () => this.reconnectNow());
  }

  connect() {
    this.stopped = false;
    this._open();
  }

  disconnect() {
    this.stopped = true;
    this._clearTimers();
    if (this.socket) this.socket.close(1000);
    this._setState("disconnected");
  }

  /** Reconnect at once (the network came back, or the server said 4200). */
  reconnectNow() {
    if (this.stopped || this.state === "connected" || this.state === "connecting") return;
    clearTimeout(this.timers.retry);
    this._open();
  }

  subscribe(name) {
    let channel = this.channels.get(name);
    if (!channel) {
      channel = new Channel(name, this);
      this.channels.set(name, channel);
      if (this.state === "connected") this._subscribe(channel);
    }
    return channel;
  }

  unsubscribe(name) {
    const channel = this.channels.get(name);
    if (!channel) return;
    this.channels.delete(name);
    if (this.state === "connected") this._send("pusher:unsubscribe", { channel: name });
  }

  // --- internals -------------------------------------------------------------------

  _setState(state, detail) {
    this.state = state;
    if (this.options.onState) this.options.onState(state, detail);
  }

  _open() {
    this._clearTimers();
    this._setState(this.connectedOnce ? "reconnecting" : "connecting");
    let socket;
    try {
      socket = new WebSocket(this.url);
    } catch (err) {
      this._scheduleRetry();
      return;
    }
    this.socket = socket;
    socket.onmessage = (ev) => this._onFrame(ev.data);
    socket.onclose = (ev) => this._onClose(socket, ev);
    socket.onerror = () => {}; // onclose follows and decides
  }

  _send(event, data) {
    if (this.socket && this.socket.readyState === WebSocket.OPEN) {
      this.socket.send(JSON.stringify({ event, data }));
    }
  }

  _onFrame(text) {
    let frame;
    try {
      frame = JSON.parse(text);
    } catch {
      return;
    }
    this._alive();
    let data = frame.data;
    if (typeof data === "string") {
      try {
        data = JSON.parse(data);
      } catch {
        /* leave it a string */
      }
    }
    switch (frame.event) {
      case "pusher:connection_established": {
        this.socketId = data.socket_id;
        if (data.activity_timeout) this.activityTimeout = data.activity_timeout * 1000;
        this.attempt = 0;
        const again = this.connectedOnce;
        this.connectedOnce = true;
        this._setState("connected", { socketId: this.socketId });
        for (const channel of this.channels.values()) this._subscribe(channel);
        if (again && this.options.onReconnect) this.options.onReconnect();
        this._alive();
        return;
      }
      case "pusher:ping":
        this._send("pusher:pong", {});
        return;
      case "pusher:pong":
        return;
      case "pusher:error":
        if (this.options.onState) this.options.onState("error", data);
        return;
      case "pusher_internal:subscription_succeeded": {
        const channel = this.channels.get(frame.channel);
        if (channel) channel._subscribed();
        return;
      }
      case "pusher:subscription_error": {
        const channel = this.channels.get(frame.channel);
        if (channel) channel._emit("pusher:subscription_error", data);
        return;
      }
      default: {
        const channel = frame.channel && this.channels.get(frame.channel);
        if (channel) channel._emit(frame.event, data);
      }
    }
  }

  async _subscribe(channel) {
    channel.subscribed = false;
    const data = { channel: channel.name };
    if (channel.name.startsWith("private-")) {
      if (!this.options.authorize) {
        channel._emit("pusher:subscription_error", { message: "no authorizer" });
        return;
      }
      try {
        data.auth = await this.options.authorize(this.socketId, channel.name);
      } catch (err) {
        channel._emit("pusher:subscription_error", { message: String(err.message || err) });
        return;
      }
    }
    this._send("pusher:subscribe", data);
  }

  /** Any frame proves the connection is alive; after silence, ping; no pong: reconnect. */
  _alive() {
    clearTimeout(this.timers.activity);
    clearTimeout(this.timers.pong);
    this.timers.activity = setTimeout(() => {
      this._send("pusher:ping", {});
      this.timers.pong = setTimeout(() => {
        if (this.socket) this.socket.close(4201, "pong not received");
      }, PONG_TIMEOUT_MS);
    }, this.activityTimeout);
  }

  _onClose(socket, ev) {
    if (socket !== this.socket) return;
    this.socket = null;
    this._clearTimers();
    for (const channel of this.channels.values()) channel.subscribed = false;
    if (this.stopped) return;
    const code = ev.code;
    if (code >= 4000 && code < 4100) {
      // The server refuses us for good (4001 unknown app key, 4009 unauthorized…).
      this._setState("failed", { code, reason: ev.reason });
      return;
    }
    if (code >= 4200 && code < 4300 && this.attempt === 0) {
      // "Reconnect now" (e.g. the daemon restarts): try at once, then back off.
      this.attempt = 1;
      this._setState("reconnecting", { code });
      this.timers.retry = setTimeout(() => this._open(), 50 + Math.random() * 250);
      return;
    }
    this._scheduleRetry(code);
  }

  _scheduleRetry(code) {
    const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** this.attempt);
    // Full jitter: clients that lost the same server do not come back in lockstep.
    const delay = ceiling / 2 + Math.random() * (ceiling / 2);
    this.attempt += 1;
    this._setState(this.connectedOnce ? "reconnecting" : "connecting", {
      code,
      retryAt: Date.now() + delay,
    });
    this.timers.retry = setTimeout(() => this._open(), delay);
  }

  _clearTimers() {
    for (const key of Object.keys(this.timers)) clearTimeout(this.timers[key]);
  }
}

class Channel {
  constructor(name, client) {
    this.name = name;
    this.client = client;
    this.subscribed = false;
    this.handlers = new Map();
  }

  bind(event, handler) {
    if (!this.handlers.has(event)) this.handlers.set(event, []);
    this.handlers.get(event).push(handler);
    return this;
  }

  _subscribed() {
    this.subscribed = true;
    this._emit("pusher:subscription_succeeded", {});
  }

  _emit(event, data) {
    for (const handler of this.handlers.get(event) || []) {
      try {
        handler(data);
      } catch (err) {
        console.error("campaignd: handler for", event, "failed", err);
      }
    }
  }
}

/** ws(s)://host/app/{key}?protocol=7&client=js&version=8.4.0 for this page's origin. */
export function pusherUrl(path) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}${path}?protocol=7&client=js&version=8.4.0&flash=false`;
}

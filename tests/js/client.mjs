// A real pusher-js or Laravel Echo client for tests/test_js_clients.py.
//
//   node client.mjs '{"lib": "echo"|"pusher", "echo": "1"|"2", "broadcaster": "pusher"|"reverb",
//                     "port": 8080, "key": "campaignd-key", "channels": ["workspace.1"],
//                     "event": "campaign.statistics.updated", "token": "..."}'
//
// Channels named "private-..." are subscribed as private channels (auth through
// POST /broadcasting/auth with the bearer token). Prints one JSON line per happening:
// {"type": "connected"|"subscribed"|"subscription_error"|"event", ...}. Exits when
// stdin closes (the test is done) or after "lifetime" seconds (default 60).
import Pusher from 'pusher-js';

const opts = JSON.parse(process.argv[2]);
const print = (doc) => process.stdout.write(JSON.stringify(doc) + '\n');
const host = opts.host || '127.0.0.1';
// "tls": true goes through a TLS proxy (tests/test_nginx.py): wss:// and https:// auth.
const tls = Boolean(opts.tls);
const authEndpoint = `${tls ? 'https' : 'http'}://${host}:${opts.port}/broadcasting/auth`;
const headers = opts.token ? { Authorization: `Bearer ${opts.token}` } : {};
const common = {
  wsHost: host,
  wsPort: opts.port,
  wssPort: opts.port,
  forceTLS: tls,
  enabledTransports: ['ws'],
  cluster: 'mt1',
  disableStats: true,
};

let connection;
if (opts.lib === 'pusher') {
  const pusher = new Pusher(opts.key, {
    ...common,
    channelAuthorization: { endpoint: authEndpoint, transport: 'ajax', headers },
  });
  connection = pusher.connection;
  for (const name of opts.channels) {
    const channel = pusher.subscribe(name);
    channel.bind('pusher:subscription_succeeded', () => print({ type: 'subscribed', channel: name }));
    channel.bind('pusher:subscription_error', (e) =>
      print({ type: 'subscription_error', channel: name, status: e.status ?? null }));
    channel.bind(opts.event, (data) => print({ type: 'event', channel: name, event: opts.event, data }));
  }
} else {
  // Laravel Echo 1.x (Laravel 10/11 era front ends, like the seed's) or 2.x (current).
  const mod = await import(opts.echo === '1' ? 'laravel-echo-1' : 'laravel-echo');
  const Echo = mod.default?.default ?? mod.default; // 1.x is CommonJS with exports.default
  const echo = new Echo({
    ...common,
    broadcaster: opts.broadcaster || 'reverb',
    key: opts.key,
    Pusher,
    authEndpoint,
    auth: { headers },
  });
  connection = echo.connector.pusher.connection;
  for (const full of opts.channels) {
    const isPrivate = full.startsWith('private-');
    const name = isPrivate ? full.slice('private-'.length) : full;
    const channel = isPrivate ? echo.private(name) : echo.channel(name);
    channel
      .subscribed(() => print({ type: 'subscribed', channel: full }))
      .error((e) => print({ type: 'subscription_error', channel: full, status: e?.status ?? null }))
      // The seed front end's exact call: a leading dot, no namespace.
      .listen('.' + opts.event, (data) => print({ type: 'event', channel: full, event: opts.event, data }));
  }
}
connection.bind('connected', () => print({ type: 'connected', socket_id: connection.socket_id }));
connection.bind('error', (e) => print({ type: 'connection_error', error: String(e?.error?.data?.message ?? e?.type ?? e) }));

const quit = () => process.exit(0);
process.stdin.on('end', quit);
process.stdin.on('close', quit);
process.stdin.resume();
setTimeout(quit, (opts.lifetime || 60) * 1000);

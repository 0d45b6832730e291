// The seed whatsapp-service's webhook transport, rebuilt from its documented behaviour
// (../shared/reference/seed_repo.md 1.1: utils/webhookNotifier.js and
// SessionManager.sendToLaravel) for tests/test_seed_signing.py. Node does the JSON,
// the string concatenation and the UTF-8 encoding, exactly as the service does:
//
//   timestamp = Math.floor(Date.now() / 1000).toString()
//   body      = JSON.stringify({event, data})
//   signature = hex HMAC-SHA256(secret, timestamp + body)
//
//   node seed_notifier.mjs '{"url": "http://127.0.0.1:PORT/webhooks/webjs", "secret": "...",
//       "event": "message_status_updated", "data": {...}, "header": "X-HMAC-Signature",
//       "skew": 0}'
//
// `header` picks the signature header (the service's earlier versions used X-Signature);
// `skew` moves the timestamp by that many seconds (stale or future timestamps).
// Prints one JSON line: {"status": <HTTP status>, "body": <answer>, "sent": <body>}.
import crypto from 'node:crypto';

const opts = JSON.parse(process.argv[2]);
const timestamp = (Math.floor(Date.now() / 1000) + (opts.skew || 0)).toString();
const body = JSON.stringify({ event: opts.event, data: opts.data });
const signature = crypto.createHmac('sha256', opts.secret).update(timestamp + body).digest('hex');

const response = await fetch(opts.url, {
  method: 'POST',
  body,
  headers: {
    'Content-Type': 'application/json',
    [opts.header || 'X-HMAC-Signature']: signature,
    'X-Timestamp': timestamp,
    'X-Instance-Url': 'http://localhost:3001',
    'User-Agent': 'WhatsApp-WebJS-Service/1.0',
    Connection: 'close',
  },
});
const text = await response.text();
let answer;
try {
  answer = JSON.parse(text);
} catch {
  answer = text;
}
process.stdout.write(JSON.stringify({ status: response.status, body: answer, sent: body }) + '\n');

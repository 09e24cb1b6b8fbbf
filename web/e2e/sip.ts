// Just enough SIP over UDP for the browser tests: a fake carrier that answers a trunk's OPTIONS
// keepalive with 200, and a phone that registers an agent's extension with Digest (MD5), so the
// pages show real OK trunks and green agents from the real `sivo serve`.
import { createHash, randomBytes } from 'node:crypto';
import { createSocket, type Socket } from 'node:dgram';

const md5 = (s: string) => createHash('md5').update(s).digest('hex');
const token = () => randomBytes(8).toString('hex');

interface Message {
  firstLine: string;
  headers: [string, string][];
}

function parse(text: string): Message {
  const [head = ''] = text.split('\r\n\r\n');
  const lines = head.split('\r\n');
  const headers: [string, string][] = [];
  for (const line of lines.slice(1)) {
    const i = line.indexOf(':');
    if (i > 0) headers.push([line.slice(0, i).trim(), line.slice(i + 1).trim()]);
  }
  return { firstLine: lines[0] ?? '', headers };
}

const header = (m: Message, name: string) => m.headers.find(([k]) => k.toLowerCase() === name.toLowerCase())?.[1];
const all = (m: Message, name: string) => m.headers.filter(([k]) => k.toLowerCase() === name.toLowerCase()).map(([, v]) => v);

/** A carrier on 127.0.0.1 that answers every request with 200 OK. */
export async function fakeCarrier(): Promise<{ port: number; requests: string[]; close: () => Promise<void> }> {
  const socket = createSocket('udp4');
  const requests: string[] = [];
  socket.on('message', (buf, rinfo) => {
    const m = parse(buf.toString('utf8'));
    if (m.firstLine.startsWith('SIP/2.0')) return;
    requests.push(m.firstLine.split(' ')[0] ?? '');
    const to = header(m, 'To') ?? '';
    const reply = [
      'SIP/2.0 200 OK',
      ...all(m, 'Via').map((v) => `Via: ${v}`),
      `From: ${header(m, 'From') ?? ''}`,
      `To: ${to.includes('tag=') ? to : `${to};tag=${token()}`}`,
      `Call-ID: ${header(m, 'Call-ID') ?? ''}`,
      `CSeq: ${header(m, 'CSeq') ?? ''}`,
      'Server: FakeCarrier/1.0',
      'Allow: INVITE, ACK, BYE, CANCEL, OPTIONS',
      'Content-Length: 0',
      '',
      '',
    ].join('\r\n');
    socket.send(reply, rinfo.port, rinfo.address);
  });
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  return {
    port: socket.address().port,
    requests,
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
}

function exchange(socket: Socket, text: string, port: number, timeoutMs = 5000): Promise<Message> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.off('message', onMessage);
      reject(new Error('no SIP answer'));
    }, timeoutMs);
    const onMessage = (buf: Buffer) => {
      const m = parse(buf.toString('utf8'));
      if (!m.firstLine.startsWith('SIP/2.0') || /^SIP\/2\.0 1\d\d/.test(m.firstLine)) return;
      clearTimeout(timer);
      socket.off('message', onMessage);
      resolve(m);
    };
    socket.on('message', onMessage);
    socket.send(text, port, '127.0.0.1');
  });
}

/**
 * Registers `sip:<user>@<domain>` at sivo (127.0.0.1:<sipPort>) from a UDP socket that stays
 * open, answering the Digest challenge. Returns the final status line and a function that
 * un-registers and closes the socket.
 */
export async function registerPhone(opts: {
  sipPort: number;
  user: string;
  domain: string;
  password: string;
  userAgent: string;
  expires?: number;
}): Promise<{ status: string; close: (password?: string) => Promise<void> }> {
  const socket = createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  const local = socket.address().port;
  const callId = `${token()}@e2e`;
  const fromTag = token();
  const uri = `sip:${opts.domain}`;
  let cseq = 1;
  const request = (expires: number, authorization?: string) =>
    [
      `REGISTER ${uri} SIP/2.0`,
      `Via: SIP/2.0/UDP 127.0.0.1:${local};branch=z9hG4bK${token()};rport`,
      'Max-Forwards: 70',
      `From: <sip:${opts.user}@${opts.domain}>;tag=${fromTag}`,
      `To: <sip:${opts.user}@${opts.domain}>`,
      `Call-ID: ${callId}`,
      `CSeq: ${cseq++} REGISTER`,
      `Contact: <sip:${opts.user}@127.0.0.1:${local};transport=udp>`,
      `Expires: ${expires}`,
      `User-Agent: ${opts.userAgent}`,
      ...(authorization ? [`Authorization: ${authorization}`] : []),
      'Content-Length: 0',
      '',
      '',
    ].join('\r\n');

  let password = opts.password;
  const authorized = async (expires: number): Promise<Message> => {
    const first = await exchange(socket, request(expires), opts.sipPort);
    if (!first.firstLine.startsWith('SIP/2.0 401')) return first;
    const challenge = header(first, 'WWW-Authenticate') ?? '';
    const param = (name: string) => new RegExp(`${name}="?([^",]+)"?`, 'i').exec(challenge)?.[1] ?? '';
    const realm = param('realm');
    const nonce = param('nonce');
    const opaque = param('opaque');
    const qop = /qop="?[^"]*auth/i.test(challenge) ? 'auth' : undefined;
    const nc = '00000001';
    const cnonce = token();
    const ha1 = md5(`${opts.user}:${realm}:${password}`);
    const ha2 = md5(`REGISTER:${uri}`);
    const response = qop ? md5(`${ha1}:${nonce}:${nc}:${cnonce}:${qop}:${ha2}`) : md5(`${ha1}:${nonce}:${ha2}`);
    const auth = [
      `Digest username="${opts.user}"`,
      `realm="${realm}"`,
      `nonce="${nonce}"`,
      `uri="${uri}"`,
      `response="${response}"`,
      'algorithm=MD5',
      ...(qop ? [`qop=${qop}`, `nc=${nc}`, `cnonce="${cnonce}"`] : []),
      ...(opaque ? [`opaque="${opaque}"`] : []),
    ].join(', ');
    return exchange(socket, request(expires, auth), opts.sipPort);
  };

  const answer = await authorized(opts.expires ?? 600);
  return {
    status: answer.firstLine,
    /** Un-registers (with `newPassword` if the password was rotated meanwhile) and closes. */
    close: async (newPassword?: string) => {
      if (newPassword) password = newPassword;
      try {
        const answer = await authorized(0);
        if (!answer.firstLine.startsWith('SIP/2.0 200')) throw new Error(`un-register answered ${answer.firstLine}`);
      } finally {
        await new Promise<void>((resolve) => socket.close(() => resolve()));
      }
    },
  };
}

// A fetch() for the openai SDK that goes through node:http / node:https with
// the agents given, so a test decides the source address (localAddress) or
// the certificates trusted (ca). openai v6 calls fetch and has no httpAgent
// option. Like Node's own fetch it asks for compression and undoes it.
import http from 'node:http';
import https from 'node:https';
import { Readable } from 'node:stream';
import zlib from 'node:zlib';

export function agentFetch({ httpAgent, httpsAgent } = {}) {
  return (url, init = {}) => new Promise((resolve, reject) => {
    const u = new URL(String(url));
    const headers = { 'accept-encoding': 'gzip, deflate' };
    new Headers(init.headers ?? {}).forEach((v, k) => { headers[k] = v; });
    const secure = u.protocol === 'https:';
    const req = (secure ? https : http).request(u, {
      method: init.method ?? 'GET', headers, agent: secure ? httpsAgent : httpAgent,
      signal: init.signal ?? undefined,
    }, (res) => {
      const h = new Headers();
      const raw = res.rawHeaders;
      for (let i = 0; i < raw.length; i += 2) h.append(raw[i], raw[i + 1]);
      let body = null;
      if ([204, 304].includes(res.statusCode) || init.method === 'HEAD') {
        res.resume();
      } else {
        const coding = res.headers['content-encoding'];
        const flush = { flush: zlib.constants.Z_SYNC_FLUSH };
        body = Readable.toWeb(coding === 'gzip' ? res.pipe(zlib.createGunzip(flush))
          : coding === 'deflate' ? res.pipe(zlib.createInflate(flush)) : res);
        if (coding) h.delete('content-encoding');
      }
      resolve(new Response(body, {
        status: res.statusCode, statusText: res.statusMessage, headers: h,
      }));
    });
    req.on('error', reject);
    req.end(init.body ?? undefined);
  });
}

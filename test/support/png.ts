import * as zlib from 'node:zlib';

// A PNG writer for the tests: each row gets one of the five PNG filters (spec: Sub, Up, Average, Paeth), so decoding
// exercises every inverse filter.
export function png(width: number, height: number, chans: 1 | 3 | 4, px: Uint8Array): Buffer {
  const stride = width * chans;
  const rows: number[] = [];
  for (let y = 0; y < height; y++) {
    const f = y % 5; rows.push(f);
    for (let x = 0; x < stride; x++) {
      const at = (yy: number, xx: number): number => (yy >= 0 && xx >= 0 ? px[yy * stride + xx] : 0);
      const a = at(y, x - chans); const b = at(y - 1, x); const c = at(y - 1, x - chans);
      const p = a + b - c;
      const paeth = Math.abs(p - a) <= Math.abs(p - b) && Math.abs(p - a) <= Math.abs(p - c) ? a : Math.abs(p - b) <= Math.abs(p - c) ? b : c;
      const pred = [0, a, b, (a + b) >> 1, paeth][f];
      rows.push((px[y * stride + x] - pred) & 255);
    }
  }
  const chunk = (type: string, body: Buffer): Buffer => {
    const len = Buffer.alloc(4); len.writeUInt32BE(body.length);
    return Buffer.concat([len, Buffer.from(type, 'latin1'), body, Buffer.alloc(4)]); // CRC is not checked by the reader
  };
  const ihdr = Buffer.alloc(13); ihdr.writeUInt32BE(width, 0); ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; ihdr[9] = { 1: 0, 3: 2, 4: 6 }[chans];
  return Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), chunk('IHDR', ihdr),
    chunk('IDAT', zlib.deflateSync(Buffer.from(rows))), chunk('IEND', Buffer.alloc(0))]);
}

import { execa } from 'execa';
import { execFileSync } from 'node:child_process';
import { Iproute2Executor } from './src/executor/iproute2-executor.js';
import { ExecutorPool } from './src/executor/pool.js';
const N = 200;
const names = (tag: string) => Array.from({ length: N }, (_, i) => `nnx-b${process.pid}-${tag}${i}`);
const t = () => performance.now();
const rate = (ms: number) => `${(N / (ms / 1000)).toFixed(0)} ops/s (${(ms / N).toFixed(2)} ms/op)`;
async function main() {
  const ex = new Iproute2Executor();
  await ex.ping();
  // batch worker, all concurrent (one burst, pipelined)
  let a = names('c'); let s = t();
  await Promise.all(a.map((ns) => ex.run({ kind: 'netns.add', ns })));
  console.log('batch add, 200 concurrent:      ', rate(t() - s));
  s = t(); await Promise.all(a.map((ns) => ex.run({ kind: 'netns.delete', ns })));
  console.log('batch delete, 200 concurrent:   ', rate(t() - s));
  // batch worker, sequential (one line + sentinel per round trip)
  a = names('s'); s = t();
  for (const ns of a) await ex.run({ kind: 'netns.add', ns });
  console.log('batch add, sequential:          ', rate(t() - s));
  s = t(); for (const ns of a) await ex.run({ kind: 'netns.delete', ns });
  console.log('batch delete, sequential:       ', rate(t() - s));
  // through the pool (concurrency 8), concurrent
  const pool = new ExecutorPool(new Iproute2Executor());
  a = names('p'); s = t();
  await Promise.all(a.map((ns) => pool.run({ kind: 'netns.add', ns })));
  console.log('pool(8)+batch add, concurrent:  ', rate(t() - s));
  s = t(); await Promise.all(a.map((ns) => pool.run({ kind: 'netns.loopbackUp', ns })));
  console.log('pool native loopbackUp:         ', rate(t() - s));
  s = t(); await Promise.all(a.map((ns) => pool.run({ kind: 'netns.assignNsid', ns })));
  console.log('pool native assignNsid:         ', rate(t() - s));
  await Promise.all(a.map((ns) => pool.run({ kind: 'netns.delete', ns })));
  // fallback (no addon) through the pool
  const poolNoNative = new ExecutorPool(new Iproute2Executor({ native: false }));
  a = names('f');
  await Promise.all(a.map((ns) => poolNoNative.run({ kind: 'netns.add', ns })));
  s = t(); await Promise.all(a.map((ns) => poolNoNative.run({ kind: 'netns.loopbackUp', ns })));
  console.log('pool one-shot loopbackUp:       ', rate(t() - s));
  await Promise.all(a.map((ns) => poolNoNative.run({ kind: 'netns.delete', ns })));
  // one-shot spawn per op, sequential and 8 at a time
  const env = { LC_ALL: 'C', PATH: '/usr/sbin:/usr/bin' };
  a = names('o'); s = t();
  for (const ns of a) await execa('/usr/sbin/ip', ['netns', 'add', ns], { env, extendEnv: false });
  console.log('one-shot ip netns add, sequential:', rate(t() - s));
  s = t(); for (const ns of a) await execa('/usr/sbin/ip', ['netns', 'del', ns], { env, extendEnv: false });
  console.log('one-shot ip netns del, sequential:', rate(t() - s));
  a = names('q'); s = t();
  for (let i = 0; i < N; i += 8) await Promise.all(a.slice(i, i + 8).map((ns) => execa('/usr/sbin/ip', ['netns', 'add', ns], { env, extendEnv: false })));
  console.log('one-shot ip netns add, 8 at once:', rate(t() - s));
  for (const ns of a) await execa('/usr/sbin/ip', ['netns', 'del', ns], { env, extendEnv: false });
  await pool.close(); await poolNoNative.close(); await ex.close();
}
main().finally(() => {
  for (const n of execFileSync('/usr/bin/ls', ['/run/netns'], { encoding: 'utf8' }).split('\n')) if (n.startsWith(`nnx-b${process.pid}-`)) execFileSync('/usr/sbin/ip', ['netns', 'del', n]);
});

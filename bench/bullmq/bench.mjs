// SPDX-License-Identifier: MIT
// BullMQ's side of the queue comparison (bench/bullmq/compare runs it beside redkit_bench's
// queue_process_c1 / queue_process_c16): the same 10,000 no-op jobs with the fixture payload
// (bench/fixtures/order.json), added untimed with addBulk; timed from the Worker's construction
// until every job was reported completed, close() included. Completed jobs are kept (BullMQ's
// default, as redkit's retention keep-all in the benchmark).
//
// Usage: node bench.mjs <unix socket path | host:port> <concurrency> [jobs] [reps]
// Prints one line per repetition: "bullmq c<N> <jobs/s>".
import { Queue, Worker } from 'bullmq';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const [where, concurrencyText, jobsText = '10000', repsText = '3'] = process.argv.slice(2);
if (!where || !concurrencyText) {
  console.error('usage: node bench.mjs <socket path | host:port> <concurrency> [jobs] [reps]');
  process.exit(2);
}
const connection = where.includes('/')
  ? { path: where, maxRetriesPerRequest: null }
  : { host: where.split(':')[0], port: Number(where.split(':')[1]), maxRetriesPerRequest: null };
const concurrency = Number(concurrencyText);
const jobs = Number(jobsText);
const reps = Number(repsText);
const payload = JSON.parse(readFileSync(fileURLToPath(new URL('../fixtures/order.json', import.meta.url)), 'utf8'));

const name = 'bullmq-bench';
const queue = new Queue(name, { connection });
for (let rep = 0; rep < reps; ++rep) {
  await queue.obliterate({ force: true });
  for (let first = 0; first < jobs; first += 1000) {
    const n = Math.min(1000, jobs - first);
    await queue.addBulk(Array.from({ length: n }, () => ({ name: 'order-updated', data: payload })));
  }
  let completed = 0;
  let finish;
  const done = new Promise((resolve) => { finish = resolve; });
  const start = process.hrtime.bigint();
  const worker = new Worker(name, async (job) => job.data.items?.length ?? 0, { connection, concurrency });
  worker.on('completed', () => { if (++completed === jobs) finish(); });
  worker.on('failed', (job, err) => { console.error('failed', err); process.exit(1); });
  await done;
  await worker.close();
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  console.log(`bullmq c${concurrency} ${Math.round(jobs / seconds)}`);
}
await queue.obliterate({ force: true });
await queue.close();

// npm run bench: every benchmark in turn (each writes its JSON under bench/results/).
await import('./streamer.bench.ts');
await import('./control.bench.ts');
await import('./startup.bench.ts');
await import('./floors.bench.ts');
await import('./side-by-side.bench.ts');

const t0 = performance.now();
const mods = process.argv.slice(2);
for (const m of mods) { const t = performance.now(); await import(m); console.log(Math.round(performance.now() - t), m); }
console.log('total', Math.round(performance.now() - t0), 'since process start', Math.round(performance.now()));

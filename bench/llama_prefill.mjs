// llama.cpp's prefill speed on a GGUF model, for bench/run's rope-dump rows: the npm package
// node-llama-cpp that scripts/install-oracles installs into build/oracles/llama-cpp (the test
// oracle, tests/oracle).
//
//   node llama_prefill.mjs --oracle DIR --model M.gguf --input IDS.json --threads N [--reps R]
//
// IDS.json holds {"sequences": [[id, ...], ...]}. Each repetition evaluates every sequence from an
// empty context (a prefill: all its tokens in one batch, logits of the last one only, as
// llama.cpp computes a prompt) and prints one JSON line {"seconds": [...]}, the wall time of each
// repetition without model loading, after one untimed warm-up. llama.cpp runs as users run it:
// its default KV cache (F16) and flash-attention choice, CPU only, N threads.
import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

function parseArgs(argv) {
    const args = { reps: 3 };
    for (let i = 0; i < argv.length; ++i) {
        const flag = argv[i];
        if (["--oracle", "--model", "--input", "--threads", "--reps"].includes(flag))
            args[flag.slice(2)] = argv[++i];
        else throw new Error(`unknown argument ${flag}`);
    }
    for (const required of ["oracle", "model", "input", "threads"])
        if (args[required] === undefined) throw new Error(`--${required} is required`);
    return args;
}

async function prefill(sequence, sequences) {
    const start = process.hrtime.bigint();
    for (const ids of sequences) {
        await sequence.clearHistory();
        await sequence.evaluateWithoutGeneratingNewTokens(ids);
        if (sequence.contextTokens.length !== ids.length)
            throw new Error(`context holds ${sequence.contextTokens.length} tokens, expected ${ids.length}`);
    }
    return Number(process.hrtime.bigint() - start) / 1e9;
}

async function main() {
    const args = parseArgs(process.argv.slice(2));
    const entry = path.join(args.oracle, "node_modules", "node-llama-cpp", "dist", "index.js");
    const { getLlama, LlamaLogLevel } = await import(pathToFileURL(entry).href);
    const { sequences } = JSON.parse(fs.readFileSync(args.input, "utf8"));
    const longest = Math.max(...sequences.map((s) => s.length));
    const threads = Number(args.threads);
    const llama = await getLlama({ gpu: false, build: "never", skipDownload: true, maxThreads: threads,
                                   logLevel: LlamaLogLevel.error });
    const model = await llama.loadModel({ modelPath: args.model, gpuLayers: 0 });
    const contextSize = 2 * longest + 256;
    const context = await model.createContext({ contextSize, batchSize: longest, threads, sequences: 1 });
    const sequence = context.getSequence();
    await prefill(sequence, sequences);  // warm-up: page cache, thread pool, allocations
    const seconds = [];
    for (let r = 0; r < Number(args.reps); ++r) seconds.push(await prefill(sequence, sequences));
    console.log(JSON.stringify({ seconds, tokens: sequences.reduce((n, s) => n + s.length, 0) }));
    await context.dispose();
    await model.dispose();
    await llama.dispose();
}

main().catch((error) => {
    console.error(`llama_prefill: ${error.message}`);
    process.exit(1);
});

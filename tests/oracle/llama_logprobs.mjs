// llama.cpp as a test oracle: per-token log-probabilities of token sequences under a GGUF model,
// computed by llama.cpp itself through the npm package node-llama-cpp (its prebuilt CPU build).
//
//   node llama_logprobs.mjs --oracle DIR --model M.gguf --input IDS.json --output OUT.json [--full]
//                           [--threads N] [--context-size N]
//
// DIR is the npm prefix node-llama-cpp was installed into (scripts/install-oracles: build/oracles/llama-cpp). IDS.json holds
// {"sequences": [[id, ...], ...]}. OUT.json receives {"logprobs": [[...], ...]}, where
// logprobs[s][t] = ln p(ids[t] | ids[< t]) and logprobs[s][0] = 0 (nothing predicts the first
// token), the layout of rope-dump's `nll` with the sign flipped; with --full also "full":
// [s][t][v] = ln p(v | ids[<= t]) over the whole vocabulary (null where the float32
// probability underflowed to 0).
//
// Set up so that llama.cpp computes what an F32 reference does (docs/tools/rope-dump.md, "Checked
// against llama.cpp"): CPU only, one thread, F32 K and V caches (the default F16 cache alone moves
// log-probs by ~1e-2), no flash attention, and a context with room to spare, because a sequence
// that fills the context is silently shifted (its first tokens dropped). The evaluated context is
// compared with the input afterwards, so a shift can never pass unnoticed (--context-size, default
// twice the longest sequence plus 16, exists to show that check at work).
import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

function parseArgs(argv) {
    const args = { full: false, threads: 1 };
    for (let i = 0; i < argv.length; ++i) {
        const flag = argv[i];
        if (flag === "--full") args.full = true;
        else if (["--oracle", "--model", "--input", "--output", "--threads", "--context-size"].includes(flag))
            args[flag.slice(2)] = argv[++i];
        else throw new Error(`unknown argument ${flag}`);
    }
    for (const required of ["oracle", "model", "input", "output"])
        if (args[required] === undefined) throw new Error(`--${required} is required`);
    return args;
}

async function loadLlamaCpp(prefix) {
    const entry = path.join(prefix, "node_modules", "node-llama-cpp", "dist", "index.js");
    if (!fs.existsSync(entry)) throw new Error(`${entry}: node-llama-cpp is not installed there`);
    return import(pathToFileURL(entry).href);
}

function sameTokens(a, b) {
    return a.length === b.length && a.every((t, i) => t === b[i]);
}

async function evaluate(sequence, ids, full) {
    await sequence.clearHistory();
    const items = ids.map((t) => [t, { generateNext: { probabilities: true, options: { temperature: 0 } } }]);
    const results = await sequence.controlledEvaluate(items);
    const context = sequence.contextTokens;
    if (!sameTokens(context, ids)) {
        throw new Error(`context holds ${context.length} tokens starting ${context.slice(0, 4)}, ` +
                        `expected the ${ids.length} input tokens (context shifted?)`);
    }
    const logprobs = [0];
    const rows = [];
    for (let t = 0; t < ids.length; ++t) {
        const probabilities = results[t]?.next?.probabilities;
        if (!probabilities) throw new Error(`no probabilities after token ${t}`);
        if (t + 1 < ids.length) {
            const p = probabilities.get(ids[t + 1]);
            if (p === undefined) throw new Error(`token ${ids[t + 1]} is not in the vocabulary`);
            logprobs.push(Math.log(p));
        }
        if (full) {
            // temperature 0 keeps every vocabulary entry: ids 0 ... size - 1, each once.
            const row = new Array(probabilities.size).fill(null);
            for (const [token, p] of probabilities) row[token] = Math.log(p);
            if (row.length !== probabilities.size || row.includes(null))
                throw new Error(`the probabilities after token ${t} do not cover the vocabulary`);
            rows.push(row);
        }
    }
    return { logprobs, rows };
}

async function main() {
    const args = parseArgs(process.argv.slice(2));
    const { getLlama, LlamaLogLevel } = await loadLlamaCpp(args.oracle);
    const { sequences } = JSON.parse(fs.readFileSync(args.input, "utf8"));
    const longest = Math.max(...sequences.map((s) => s.length));
    const threads = Number(args.threads);
    const llama = await getLlama({ gpu: false, build: "never", skipDownload: true, maxThreads: threads,
                                   logLevel: LlamaLogLevel.error });
    const model = await llama.loadModel({ modelPath: args.model, gpuLayers: 0 });
    const contextSize = Number(args["context-size"] ?? 2 * longest + 16);
    const context = await model.createContext({
        contextSize, batchSize: contextSize, threads, sequences: 1, flashAttention: false,
        experimentalKvCacheKeyType: "F32", experimentalKvCacheValueType: "F32" });
    const sequence = context.getSequence();
    const out = { logprobs: [], full: args.full ? [] : undefined };
    for (const ids of sequences) {
        const { logprobs, rows } = await evaluate(sequence, ids, args.full);
        out.logprobs.push(logprobs);
        if (args.full) out.full.push(rows);
    }
    fs.writeFileSync(args.output, JSON.stringify(out));
    await context.dispose();
    await model.dispose();
    await llama.dispose();
}

main().catch((error) => {
    console.error(`llama_logprobs: ${error.message}`);
    process.exit(1);
});

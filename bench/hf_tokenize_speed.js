// Hugging Face's tokenizers (npm binding) encoding every line of a text file, timed inside the
// process (after loading): prints "seconds tokens". Run with RAYON_NUM_THREADS=1 for one core.
//   node hf_tokenize_speed.js NODE_MODULES TOKENIZER_JSON TEXT_FILE
const fs = require("fs");
const path = require("path");

async function main() {
  const [modules, tokenizerFile, inputFile] = process.argv.slice(2);
  const { Tokenizer } = require(path.resolve(modules, "tokenizers"));
  const tokenizer = Tokenizer.fromFile(tokenizerFile);
  const lines = fs.readFileSync(inputFile, "utf8").split("\n");
  lines.pop();
  const start = process.hrtime.bigint();
  let tokens = 0;
  for (let i = 0; i < lines.length; i += 4096) {
    for (const e of await tokenizer.encodeBatch(lines.slice(i, i + 4096))) tokens += e.getIds().length;
  }
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  process.stdout.write(`${seconds} ${tokens}\n`);
}

main().catch((e) => {
  console.error(`hf_tokenize_speed.js: ${e.message || e}`);
  process.exit(1);
});

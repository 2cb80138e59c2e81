// Hugging Face's tokenizers (the Rust library behind transformers' fast tokenizers, through its
// npm binding) as the oracle for rope-tokenize: prints the ids of every line of a text file, one
// line of ids per line, exactly as rope-tokenize writes them.
//   node hf_tokenize.js NODE_MODULES TOKENIZER_JSON TEXT_FILE            encode each line
//   node hf_tokenize.js NODE_MODULES TOKENIZER_JSON IDS_FILE --decode    decode each line of ids
//                                                                        (JSON strings, one a line)
// --decode-skip decodes with skipSpecialTokens = true; --whole encodes the whole file as one text.
const fs = require("fs");
const path = require("path");

async function main() {
  const [modules, tokenizerFile, inputFile, mode] = process.argv.slice(2);
  const { Tokenizer } = require(path.resolve(modules, "tokenizers"));
  const tokenizer = Tokenizer.fromFile(tokenizerFile);
  const text = fs.readFileSync(inputFile, "utf8");
  if (mode === "--whole") {
    process.stdout.write((await tokenizer.encode(text)).getIds().join(" ") + "\n");
    return;
  }
  const lines = text.split("\n");
  if (text.endsWith("\n")) lines.pop();
  const out = [];
  for (const line of lines) {
    if (mode === "--decode" || mode === "--decode-skip") {
      const ids = line.split(/[ ,\t]+/).filter((s) => s.length > 0).map(Number);
      out.push(JSON.stringify(await tokenizer.decode(ids, mode === "--decode-skip")));
    } else {
      out.push((await tokenizer.encode(line)).getIds().join(" "));
    }
  }
  process.stdout.write(out.map((l) => l + "\n").join(""));
}

main().catch((e) => {
  console.error(`hf_tokenize.js: ${e.message || e}`);
  process.exit(1);
});

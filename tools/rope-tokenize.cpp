// rope-tokenize: text to token ids with a model's own tokenizer (tokenizer.json, tokenizer.model
// or a GGUF vocabulary), identical to Hugging Face's tokenizers; --decode goes back. All logic
// lives in lib/ropekit (tokenize/, and cli/tokenize_command for the outputs).
#include "ropekit/cli/cli.hpp"
#include "ropekit/cli/tokenize_command.hpp"
#include "ropekit/core/error.hpp"

using namespace ropekit;

int main(int argc, char** argv) {
    Tool tool("rope-tokenize",
              "Turn text into the token ids a model sees, with the model's own tokenizer: a "
              "Hugging Face directory (tokenizer.json, or tokenizer.model through "
              "libsentencepiece; tokenizer_config.json decides BOS/EOS), a tokenizer.json file, or "
              "a GGUF file's embedded vocabulary. The ids are those of transformers' "
              "tokenizer(line)[\"input_ids\"]. Writes one line of ids per input line, or with "
              "--length windows of T tokens of the documents joined by the model's separator; an "
              "output ending in .h5 gets an HDF5 'tokens' dataset that rope-dump --tokens reads.");
    tool.single_threaded(
        "lines depend on nothing but the tokenizer, and one core runs at tens of MB/s");
    TokenizeRequest request;
    auto& app = tool.app();
    tool.require(
        app.add_option("TOKENIZER", request.tokenizer,
                       "Model directory, tokenizer.json, tokenizer.model or GGUF file (required)"));
    app.add_option("--text", request.text, "Input text, one document per line ('-' = stdin)")
        ->capture_default_str();
    app.add_flag("--decode", request.decode, "Read lines of ids and write their text instead");
    app.add_flag("--skip-special", request.skip_special, "With --decode: leave special tokens out");
    app.add_flag("--no-special", request.plain, "Encode without the BOS/EOS the tokenizer adds");
    app.add_option(
        "--length", request.length,
        "Join the documents (each with the tokenizer's BOS, or followed by its EOS) "
        "and cut windows of T tokens; the tokens after the last whole window are dropped");
    app.add_flag("--whole", request.whole, "With --length: the whole text is one document");
    app.add_option("--format", request.format,
                   "txt or h5 (default: h5 if the output ends in .h5 or .hdf5, else txt)");
    tool.with_output();
    tool.examples(
        "  rope-tokenize mistral-7b/ --text wiki.txt -o wiki.ids.txt\n"
        "  echo 'Hello world' | rope-tokenize llama3/tokenizer.json -o -\n"
        "  rope-tokenize model.gguf --text wiki.txt --length 512 -o windows.h5\n"
        "  rope-tokenize gemma-3/ --text wiki.txt -o - | rope-tokenize gemma-3/ --decode -o -\n");
    return tool.run(argc, argv, [&] {
        if (request.whole && request.length == 0) throw usage_error("--whole needs --length");
        run_tokenize(tool.context(), request);
    });
}

// rope-dump: runs a Llama-family checkpoint over token sequences and dumps queries, keys and
// attention in the TransformerLens layout, with per-token NLL; --p / --theta change RoPE at
// inference time. All logic lives in lib/ropekit (model/: model_dump, llama_model, token_sampling).
#include <iostream>
#include <optional>

#include "ropekit/cli/cli.hpp"
#include "ropekit/core/error.hpp"
#include "ropekit/core/index_spec.hpp"
#include "ropekit/model/load_model.hpp"
#include "ropekit/model/model_dump.hpp"

using namespace ropekit;

int main(int argc, char** argv) {
    Tool tool("rope-dump",
              "Run a Llama-architecture checkpoint (llama2.c .bin, a Hugging Face directory "
              "with config.json + safetensors, or a llama GGUF file) on the CPU over whole token "
              "sequences and write "
              "its attention activations as an HDF5 dump in the TransformerLens layout "
              "(blocks.{L}.attn.hook_q|hook_k|hook_rot_q|hook_rot_k|hook_pattern|"
              "hook_attn_scores) that freq-norms and find-positional-heads read, with 'tokens' "
              "and per-token 'nll' [batch, pos] (nats). Prints the perplexity. --p / --reverse / "
              "--theta change the RoPE schedule at inference (no weight change), so a trained "
              "model can be evaluated as p-RoPE.");
    std::string model_path, tokens_path, ids_text, layers = "all", what = "q,k,rot_q,rot_k,pattern";
    std::string dtype = "f32";
    SampleSpec sample;
    sample.temperature = 1.0;  // N greedy sequences would all be the same
    std::optional<double> p, theta;
    bool reverse = false;
    std::size_t batch = 8;
    auto& app = tool.app();
    // Checked in the body, not with CLI11's required(): CLI11 2.1 would report a missing MODEL
    // before an unknown option, hiding the real mistake.
    app.add_option("MODEL", model_path,
                   "llama2.c checkpoint, Hugging Face Llama directory or llama GGUF file "
                   "(F32/F16/BF16/Q8_0/Q4_0/Q4_K/Q5_K/Q6_K) (required)");
    auto* tokens_opt = app.add_option("--tokens", tokens_path,
                                      "Token ids: text with one sequence per line, all the same "
                                      "length ('-' = stdin), or an HDF5 file with a 'tokens' "
                                      "dataset such as an earlier dump");
    auto* ids_opt = app.add_option("--ids", ids_text, "One sequence of token ids, e.g. \"1 2 3\"");
    auto* sample_opt = app.add_option("--sample", sample.count,
                                      "Generate N sequences from the model itself (BOS = 1 first, "
                                      "under the model's own RoPE even with --p)");
    app.add_option("--length", sample.length, "Tokens per sampled sequence, BOS included")
        ->needs(sample_opt)
        ->capture_default_str();
    app.add_option("--seed", sample.seed, "Sampling seed")
        ->needs(sample_opt)
        ->capture_default_str();
    app.add_option("--temperature", sample.temperature, "Sampling temperature (0 = greedy)")
        ->needs(sample_opt)
        ->capture_default_str();
    tokens_opt->excludes(ids_opt)->excludes(sample_opt);
    ids_opt->excludes(sample_opt);
    app.add_option("--batch", batch,
                   "Sequences per forward pass: memory is one layer's hooks of "
                   "this many sequences")
        ->check(CLI::PositiveNumber)
        ->capture_default_str();
    app.add_option("--p", p, "p-RoPE: keep the highest fraction p of frequencies (0 = NoPE)")
        ->check(CLI::Range(0.0, 1.0));
    app.add_flag("--reverse", reverse, "With --p: keep the lowest frequencies instead (ablation)");
    app.add_option("--theta", theta, "Replace the RoPE base (plain RoPE at this theta)");
    app.add_option("--layers", layers, "Layers to dump: all, 3, 0-2,5, -1 (last)")
        ->capture_default_str();
    app.add_option("--what", what,
                   "Hooks to dump: q,k,rot_q,rot_k,pattern,scores or all "
                   "(empty = only tokens and nll)")
        ->capture_default_str();
    app.add_option("--dtype", dtype, "Stored element type of the hooks: f32 or f16")
        ->check(CLI::IsMember({"f32", "f16"}))
        ->capture_default_str();
    tool.with_output();
    tool.examples(
        "  rope-dump stories260K.bin --sample 16 --length 256 --seed 1 -o dump.h5\n"
        "  rope-dump stories260K.bin --tokens held_out.txt --p 0.75 --what '' -o p075.h5\n"
        "  rope-dump stories260K.bin --ids \"1 461 461 401\" --what pattern --layers 0 -o - "
        "| h5ls -r -\n"
        "  rope-dump stories260K.bin --sample 16 --length 256 -o - | freq-norms - -o norms.h5\n");
    return tool.run(argc, argv, [&] {
        if (model_path.empty()) throw usage_error("MODEL is required (see --help)");
        if (reverse && !p) throw usage_error("--reverse needs --p");
        if (!tokens_opt->count() && !ids_opt->count() && !sample_opt->count()) {
            throw usage_error("give the tokens: --tokens FILE, --ids \"1 2 3\" or --sample N");
        }
        const LlamaModel model = load_model(model_path);
        TokenSource source;
        if (tokens_opt->count()) source.file = tokens_path;
        if (ids_opt->count()) source.ids = ids_text;
        sample.batch = batch;
        if (sample_opt->count()) source.sample = sample;
        const Tensor<std::int64_t> ids = read_token_source(model, source, [&](std::size_t done) {
            tool.note("sampled {}/{} sequences", done, sample.count);
        });
        DumpRequest request;
        request.layers = parse_index_spec(layers, model.config().n_layers, "--layers");
        request.hooks = what.empty() ? std::vector<Hook>{} : parse_hooks(what, "--what");
        request.batch = batch;
        request.schedule = override_schedule(model, theta, p, reverse);
        request.theta = theta;
        request.p = p.value_or(1.0);
        request.reverse = reverse;
        request.stored = dtype == "f16" ? DType::f16 : DType::f32;
        H5Output out =
            H5Output::create(tool.output(), tool.write_options({model_path, tokens_path}));
        const DumpSummary s = write_model_dump(model, ids, request, out, [&](std::size_t done) {
            tool.note("ran {}/{} sequences of {} tokens", done, ids.shape[0], ids.shape[1]);
        });
        out.set_attr("/", "token_source", describe(source));
        out.commit(tool.name(), tool.command_line());
        if (tool.output() == "-") {
            tool.note("{}", summary_line(s));  // stdout carries the dump
        } else {
            std::cout << summary_line(s) << '\n';
        }
    });
}

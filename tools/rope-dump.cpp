// rope-dump: runs a Llama-family checkpoint over token sequences and dumps queries, keys and
// attention in the TransformerLens layout, with per-token NLL; --p / --theta change RoPE at
// inference time. All logic lives in lib/ropekit (model/: model_dump_run, model_dump,
// llama_model, token_sampling).
#include "ropekit/cli/cli.hpp"
#include "ropekit/cli/text_options.hpp"
#include "ropekit/model/model_dump_run.hpp"
#ifdef ROPEKIT_MPI
#include "ropekit/mpi/mpi_session.hpp"
#endif

using namespace ropekit;

namespace {

void add_token_options(Tool& tool, RopeDumpCommand& c) {
    auto& app = tool.app();
    auto* tokens = app.add_option("--tokens", c.tokens,
                                  "Token ids: text with one sequence per line, all the same "
                                  "length ('-' = stdin), or an HDF5 file with a 'tokens' "
                                  "dataset such as an earlier dump");
    auto* ids = app.add_option("--ids", c.ids, "One sequence of token ids, e.g. \"1 2 3\"");
    auto* sample = app.add_option("--sample", c.sample,
                                  "Generate N sequences from the model itself (BOS = 1 first, "
                                  "under the model's own RoPE even with --p)");
    tokens->excludes(ids)->excludes(sample);
    ids->excludes(sample);
    auto* text = add_text_options(app, c.text);
    tool.require_one_of({tokens, ids, sample, text},
                        "one of --tokens FILE, --ids \"1 2 3\", --sample N or --text FILE");
    app.add_option("--length", c.length,
                   "Tokens per sampled sequence (BOS included) or --text window (default 256)");
    app.add_option("--seed", c.seed, "Sampling seed")->needs(sample)->capture_default_str();
    app.add_option("--temperature", c.temperature, "Sampling temperature (0 = greedy)")
        ->needs(sample)
        ->capture_default_str();
}

void add_options(Tool& tool, RopeDumpCommand& c) {
    auto& app = tool.app();
    tool.require(app.add_option("MODEL", c.model,
                                "llama2.c checkpoint, Hugging Face Llama directory or llama "
                                "GGUF file (F32/F16/BF16/Q8_0/Q4_0/Q4_K/Q5_K/Q6_K) (required)"));
    add_token_options(tool, c);
    app.add_option("--batch", c.batch,
                   "Sequences per forward pass: memory is one layer's hooks of this many "
                   "sequences")
        ->check(CLI::PositiveNumber)
        ->capture_default_str();
    app.add_option("--shard-size", c.shard_size,
                   "Write the dump as shards of this many sequences, OUT-00000-of-000NN.h5 beside "
                   "-o OUT.h5 (all or none); every dump-reading tool reads them as one dump")
        ->check(CLI::PositiveNumber);
    app.add_option("--p", c.p,
                   "p-RoPE: keep the highest fraction p of frequencies (0 = NoPE); gemma3: of both "
                   "its local and its global schedule")
        ->check(CLI::Range(0.0, 1.0));
    app.add_flag("--reverse", c.reverse,
                 "With --p: keep the lowest frequencies instead (ablation)");
    app.add_option("--theta", c.theta,
                   "Replace the RoPE base (plain RoPE at this theta; gemma3: on every layer, "
                   "local and global)");
    app.add_option("--layers", c.layers, "Layers to dump: all, 3, 0-2,5, -1 (last)")
        ->capture_default_str();
    app.add_option("--what", c.what,
                   "Hooks to dump: q,k,rot_q,rot_k,pattern,scores or all (empty = only tokens "
                   "and nll)")
        ->capture_default_str();
    app.add_option("--dtype", c.dtype, "Stored element type of the hooks: f32 or f16")
        ->check(CLI::IsMember({"f32", "f16"}))
        ->capture_default_str();
    tool.with_output();
    tool.reads_hdf5();
}

}  // namespace

int main(int argc, char** argv) {
#ifdef ROPEKIT_MPI
    MpiSession mpi(argc, argv);  // before the tool, so MPI ends after it
#endif
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
    RopeDumpCommand command;
    add_options(tool, command);
    tool.examples(
        "  rope-dump stories260K.bin --sample 16 --length 256 --seed 1 -o dump.h5\n"
        "  rope-dump stories260K.bin --tokens held_out.txt --p 0.75 --what '' -o p075.h5\n"
        "  rope-dump stories260K.bin --ids \"1 461 461 401\" --what pattern --layers 0 -o p.h5 "
        "&& h5ls -r p.h5\n"
        "  rope-dump stories260K.bin --sample 16 --length 256 -o - | freq-norms - -o norms.h5\n"
        "  rope-dump llama-dir/ --text wiki.txt --length 512 -o - | freq-norms - -o norms.h5\n");
#ifdef ROPEKIT_MPI
    return tool.run(argc, argv, [&] {
        mpi.run([&](const WorkShare& share) { run_rope_dump(command, tool.context(), share); });
    });
#else
    return tool.run(argc, argv, [&] { run_rope_dump(command, tool.context()); });
#endif
}

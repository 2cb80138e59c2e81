// prope-convert: convert a checkpoint (Hugging Face directory or GGUF) or an activation dump to
// p-RoPE (paper.md section 4), so that stock loaders run it.
#include "ropekit/cli/cli.hpp"
#include "ropekit/cli/dump_options.hpp"
#include "ropekit/convert/prope_convert_run.hpp"

using namespace ropekit;

namespace {

void add_options(Tool& tool, PropeConvertCommand& c) {
    auto& app = tool.app();
    tool.require(app.add_option("INPUT", c.input,
                                "Checkpoint directory, .gguf file, or .h5 file ('-': HDF5 on "
                                "stdin)"));
    tool.require(app.add_option(
        "--p", c.p, "Fraction of frequencies kept, in [0, 1] (0 = NoPE, 1 = unchanged); required"));
    app.add_option("--theta", c.theta,
                   "Rebase RoPE to this base wavelength before truncating (e.g. 500000); "
                   "default: keep the model's");
    app.add_flag("--reverse", c.reverse,
                 "Remove the highest frequencies instead of the lowest (the paper's ablation; "
                 "Hugging Face output needs --encoding longrope)");
    app.add_option("--encoding", c.encoding,
                   "Hugging Face config encoding: llama3 (hard cut; transformers >= 4.43, "
                   "llama.cpp's converter, TransformerLens), proportional (exact; newest "
                   "transformers only) or longrope (any table, incl. --reverse)")
        ->capture_default_str();
    app.add_flag("--copy", c.copy, "Copy unchanged checkpoint files instead of hard-linking them");
    app.add_option("--input-kind", c.input_kind,
                   "Force the input kind: hf, gguf or h5 (default: detect)");
    add_dump_options(*app.add_option_group("HDF5 dumps", "Where the hooks of an HDF5 dump are"),
                     c.dump, DumpOptionSet::names_and_layout);
    tool.with_output();
    tool.reads_hdf5();
}

}  // namespace

int main(int argc, char** argv) {
    Tool tool(
        "prope-convert",
        "Convert a model to p-RoPE: keep the highest m = floor(p * d/2) RoPE frequencies and "
        "set the others to 0 (not rotated), as in Barbero et al., ICLR 2025, section 4.\n"
        "INPUT is detected: a Hugging Face checkpoint directory (config.json + safetensors; "
        "config.json gets the new schedule, weights are hard-linked, saved "
        "rotary_emb.inv_freq buffers are rewritten), a GGUF file (a rope_freqs.weight tensor "
        "that llama.cpp divides each frequency by: 1 kept, 1e30 dropped), or an HDF5 dump "
        "with post-RoPE hook_rot_q/hook_rot_k (un-rotated with the dump's schedule, "
        "re-rotated under p-RoPE, attention recomputed) or a frequency table (inv_freq, or "
        "rope_theta + rotary_dim attributes). Every output is checked by reading it back "
        "(kept frequencies to 1e-6 relative, dropped ones below 1e-20) and written only if it "
        "passes. Prints what it kept (m of d/2, lowest kept frequency and wavelength) on "
        "stderr.");
    PropeConvertCommand command;
    add_options(tool, command);
    tool.examples(
        "  prope-convert Llama-3.2-1B --p 0.25 -o Llama-3.2-1B-p025            # HF directory\n"
        "  prope-convert model.gguf --p 0.25 --theta 500000 -o model-p025.gguf  # GGUF\n"
        "  prope-convert tiny --p 0.5 --reverse --encoding longrope -o tiny-rev\n"
        "  rope-dump stories260K.bin --sample 8 --length 256 -o - |\n"
        "      prope-convert - --p 0.75 -o - | find-positional-heads - -o heads.h5  # a dump\n");
    return tool.run(argc, argv, [&] { run_prope_convert(command, tool.context()); });
}

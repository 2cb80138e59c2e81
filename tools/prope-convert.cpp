// prope-convert: convert a checkpoint (Hugging Face directory or GGUF) or an activation dump to
// p-RoPE (paper.md section 4), so that stock loaders run it.
#include <string>

#include "ropekit/cli/cli.hpp"
#include "ropekit/convert/prope_convert.hpp"
#include "ropekit/core/error.hpp"

using namespace ropekit;

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
    std::string input, kind_name, encoding_name_ = "llama3";
    PropeRequest request;
    double theta = 0.0;
    bool copy = false;
    // INPUT and --p are checked in the body: CLI11 2.1 would report them missing before an
    // unknown option.
    tool.app().add_option("INPUT", input,
                          "Checkpoint directory, .gguf file, or .h5 file ('-': HDF5 on stdin)");
    tool.app().add_option(
        "--p", request.p,
        "Fraction of frequencies kept, in [0, 1] (0 = NoPE, 1 = unchanged); required");
    tool.app().add_option("--theta", theta,
                          "Rebase RoPE to this base wavelength before truncating (e.g. 500000); "
                          "default: keep the model's");
    tool.app().add_flag(
        "--reverse", request.reverse,
        "Remove the highest frequencies instead of the lowest (the paper's ablation; "
        "Hugging Face output needs --encoding longrope)");
    tool.app()
        .add_option("--encoding", encoding_name_,
                    "Hugging Face config encoding: llama3 (hard cut; transformers >= 4.43, "
                    "llama.cpp's converter, TransformerLens), proportional (exact; newest "
                    "transformers only) or longrope (any table, incl. --reverse)")
        ->capture_default_str();
    tool.app().add_flag("--copy", copy,
                        "Copy unchanged checkpoint files instead of hard-linking them");
    tool.app().add_option("--input-kind", kind_name,
                          "Force the input kind: hf, gguf or h5 (default: detect)");
    std::vector<std::string> names;
    std::string axes = "batch,pos,head,dim", layout;
    std::size_t rotary_dim = 0;
    tool.app().add_option(
        "--name", names,
        "HDF5 dumps: hook dataset template with {layer} and {hook}, or HOOK=TEMPLATE "
        "(default blocks.{layer}.attn.{hook}); repeatable");
    tool.app()
        .add_option("--axes", axes,
                    "HDF5 dumps: axis order of q/k hooks (pos, head, dim, optional batch)")
        ->capture_default_str();
    tool.app().add_option(
        "--layout", layout,
        "HDF5 dumps: half or interleaved (default: rope_layout attribute, else half)");
    tool.app().add_option(
        "--rotary-dim", rotary_dim,
        "HDF5 dumps: rotated dims per head (default: rotary_dim attribute, else all)");
    tool.with_output();
    tool.reads_hdf5();
    tool.examples(
        "  prope-convert Llama-3.2-1B --p 0.75 -o Llama-3.2-1B-p075            # HF directory\n"
        "  prope-convert model.gguf --p 0.25 --theta 500000 -o model-p025.gguf  # GGUF\n"
        "  prope-convert tiny --p 0.5 --reverse --encoding longrope -o tiny-rev\n"
        "  rope-dump stories260K.bin --sample 8 --length 256 -o - |\n"
        "      prope-convert - --p 0.75 -o - | find-positional-heads - -o heads.h5  # a dump\n");
    return tool.run(argc, argv, [&] {
        if (input.empty()) throw usage_error("INPUT is required (see --help)");
        if (!tool.app().count("--p")) throw usage_error("--p is required (see --help)");
        if (!(request.p >= 0.0 && request.p <= 1.0)) throw usage_error("--p must be in [0, 1]");
        if (tool.app().count("--theta")) {
            if (!(theta > 1.0)) throw usage_error("--theta must be above 1");
            request.theta = theta;
        }
        request.encoding = parse_encoding(encoding_name_);
        const InputKind kind = !kind_name.empty() ? parse_input_kind(kind_name)
                               : input == "-"     ? InputKind::hdf5
                                                  : detect_input_kind(input);
        ConvertOptions options;
        options.request = request;
        options.copy = copy;
        options.force = tool.force();
        options.note = [&](const std::string& line) { tool.note("{}", line); };
        options.names = parse_dump_names(names, std::nullopt);
        options.axes = parse_vector_axes(axes);
        if (!layout.empty()) options.overrides.layout = parse_layout(layout);
        if (rotary_dim) options.overrides.rotary_dim = rotary_dim;
        options.tool = tool.name();
        options.command_line = tool.command_line();
        for (const std::string& line : convert(kind, input, tool.output(), options).lines()) {
            tool.note("{}", line);
        }
    });
}

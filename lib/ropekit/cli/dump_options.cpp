#include "ropekit/cli/dump_options.hpp"

#include "ropekit/core/error.hpp"

namespace ropekit {

void DumpCliOptions::add_to(CLI::App& app) {
    app.add_option("--name", names,
                   "Dataset names: TEMPLATE with {layer} and {hook} (default "
                   "blocks.{layer}.attn.{hook}), HOOK=TEMPLATE for one hook (q, k, rot_q, rot_k, "
                   "pattern, scores), or a TEMPLATE without {hook} for the tensor this tool reads "
                   "first. Repeatable");
    app.add_option("--axes", axes,
                   "Axis order of q/k datasets: pos, head, dim and optionally batch (e.g. "
                   "pos,head,dim or batch,head,pos,dim). Without batch, patterns are "
                   "[head, query_pos, key_pos]")
        ->capture_default_str();
    app.add_option("--theta", theta, "RoPE base (default: the dump's rope_theta attribute)");
    app.add_option("--layout", layout,
                   "half | interleaved: which dims pair into a frequency chunk (default: the "
                   "dump's rope_layout attribute, else half)");
    app.add_option("--rotary-dim", rotary_dim,
                   "Rotated dims per head (default: the dump's rotary_dim, else head_dim)");
    app.add_option("--bos", bos,
                   "1 if position 0 of every sequence is a BOS token, 0 if not (default: the "
                   "dump's bos attribute)")
        ->check(CLI::Range(0, 1));
}

DumpReader DumpCliOptions::open(const H5Input& in, std::optional<Hook> primary) const {
    DumpOverrides o;
    if (theta != 0) {
        if (!(theta > 1)) throw usage_error("--theta must be > 1");
        o.theta = theta;
    }
    if (!layout.empty()) o.layout = parse_layout(layout);
    if (rotary_dim != 0) o.rotary_dim = rotary_dim;
    if (bos >= 0) o.bos = bos;
    return DumpReader(in, parse_dump_names(names, primary), parse_vector_axes(axes), o);
}

}  // namespace ropekit

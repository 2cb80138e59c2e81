#include "ropekit/cli/dump_options.hpp"

namespace ropekit {

void add_dump_options(CLI::App& app, DumpOptions& options, DumpOptionSet set) {
    app.add_option("--name", options.names,
                   "Dataset names: TEMPLATE with {layer} and {hook} (default "
                   "blocks.{layer}.attn.{hook}), HOOK=TEMPLATE for one hook (q, k, rot_q, rot_k, "
                   "pattern, scores), or a TEMPLATE without {hook} for the tensor this tool reads "
                   "first. Repeatable");
    app.add_option("--axes", options.axes,
                   "Axis order of q/k datasets: pos, head, dim and optionally batch (e.g. "
                   "pos,head,dim or batch,head,pos,dim). Without batch, patterns are "
                   "[head, query_pos, key_pos]")
        ->capture_default_str();
    if (set == DumpOptionSet::all) {
        app.add_option("--theta", options.theta,
                       "RoPE base: plain RoPE at this base for every layer, overriding the "
                       "frequencies the dump recorded (layer_rope_inv_freq per layer, "
                       "rope_inv_freq) and its rope_theta attribute");
    }
    app.add_option("--layout", options.layout,
                   "half | interleaved: which dims pair into a frequency chunk (default: the "
                   "dump's rope_layout attribute, else half)");
    app.add_option("--rotary-dim", options.rotary_dim,
                   "Rotated dims per head (default: the dump's rotary_dim, else head_dim)");
    if (set == DumpOptionSet::all) {
        app.add_option("--bos", options.bos,
                       "1 if position 0 of every sequence is a BOS token, 0 if not (default: the "
                       "dump's bos attribute)")
            ->check(CLI::Range(0, 1));
    }
}

}  // namespace ropekit
